/** Ports for servers a test starts: a free one the system picks, or one derived from the test stack's port prefix. */
import { createServer } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * The port-prefix digit of the test stack (PostgreSQL on <P>5432), for a
 * server a test starts on a fixed port of its own range (<P>xxxx).
 */
export function stackPortPrefix(databaseUrl: string): string {
  const port = new URL(databaseUrl).port;
  if (!/^\d5432$/.test(port)) throw new Error(`cannot tell the stack's port prefix from PostgreSQL port ${port} (expected <digit>5432)`);
  return port[0]!;
}
