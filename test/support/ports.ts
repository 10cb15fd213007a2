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
 * `<prefix><fourDigits>`: a port of the test's own range (scripts/test.sh's
 * port prefix, WALBRIDGE_TEST_PORT_PREFIX, else the first digit of the test
 * stack's PostgreSQL port <prefix>5432), so parallel stacks on other
 * prefixes never collide with it. `fourDigits` must differ from the stack's
 * own ports (5432, 9092, 9093, 8123, 9000, 9009).
 */
export function prefixedPort(fourDigits: number): number {
  let prefix = process.env.WALBRIDGE_TEST_PORT_PREFIX;
  if (!prefix) {
    const stackPort = new URL(process.env.WALBRIDGE_TEST_DATABASE_URL ?? 'postgres://none').port;
    prefix = /^[1-5]5432$/.test(stackPort) ? stackPort[0] : undefined;
  }
  if (!prefix || !/^[1-5]$/.test(prefix)) {
    throw new Error('cannot tell the test stack\'s port prefix: set WALBRIDGE_TEST_PORT_PREFIX (a digit from 1 to 5)');
  }
  return Number(`${prefix}${String(fourDigits).padStart(4, '0')}`);
}
