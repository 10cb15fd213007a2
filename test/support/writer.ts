/**
 * A writer on its own PostgreSQL session that keeps committing until
 * stopped, reconnecting through outages (a restart, a killed backend), and
 * counts its committed transactions. `transaction(n)` gives the statements of
 * the n-th one (n counts from 0).
 */
import pg from 'pg';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface Writer {
  committed(): number;
  stop(): Promise<void>;
}

export function startWriter(databaseUrl: string, transaction: (n: number) => string[], pauseMs: number): Writer {
  let stopped = false;
  let committed = 0;
  const loop = (async () => {
    let client: pg.Client | null = null;
    while (!stopped) {
      try {
        if (!client) {
          client = new pg.Client({ connectionString: databaseUrl });
          client.on('error', () => {});
          await client.connect();
        }
        for (const statement of transaction(committed)) await client.query(statement);
        committed++;
      } catch {
        await client?.end().catch(() => {});
        client = null;
        await sleep(200);
      }
      await sleep(pauseMs);
    }
    await client?.end().catch(() => {});
  })();
  return {
    committed: () => committed,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}
