/**
 * The chaos run's writer: a mixed stream of transactions on the captured
 * tables (inserts, updates, deletes, primary-key changes, truncates, and
 * transactions that insert and delete or truncate the same rows), at a
 * steady rate, through PostgreSQL restarts: a failed transaction is counted
 * and the connection made again. What PostgreSQL ends up holding is the
 * truth `sink verify` compares ClickHouse with, so the writer never needs to
 * know whether a transaction cut by a crash committed.
 */
import pg from 'pg';

export const CHAOS_TABLES_DDL = `
CREATE TABLE IF NOT EXISTS chaos_orders (
  id bigserial PRIMARY KEY, customer int NOT NULL, amount numeric(12,2) NOT NULL,
  status text NOT NULL, note text, updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS chaos_accounts (
  id bigserial PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL,
  sent_to_kafka boolean NOT NULL DEFAULT false);
CREATE TABLE IF NOT EXISTS chaos_probe (id bigserial PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT clock_timestamp());`;

/** A seeded generator, so a run's sequence of choices can be repeated. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface WorkloadTotals {
  transactions: number;
  failed: number;
  byKind: Record<string, number>;
}

/** One transaction's statements; `pick(n)` is a random integer below n, `pickId()` one below the largest id so far. */
type Step = (client: pg.Client, pick: (max: number) => number, pickId: () => number) => Promise<void>;

const someOrder = 'SELECT id FROM chaos_orders WHERE id >= $1 ORDER BY id LIMIT 1';
const someAccount = 'SELECT id FROM chaos_accounts WHERE id >= $1 ORDER BY id LIMIT 1';

/** The transaction kinds and their weights. */
const KINDS: { kind: string; weight: number; step: Step }[] = [
  { kind: 'insert', weight: 35, step: async (c, pick) => {
    await c.query(`INSERT INTO chaos_orders (customer, amount, status, note)
      SELECT $1, round((random() * 1000)::numeric, 2), 'new', repeat('x', $2) FROM generate_series(1, $3)`, [pick(1000), pick(200), 1 + pick(5)]);
  } },
  { kind: 'update', weight: 20, step: async (c, _pick, pickId) => {
    await c.query(`UPDATE chaos_orders SET status = 'paid', amount = amount + 1, updated_at = now() WHERE id = (${someOrder})`, [pickId()]);
  } },
  { kind: 'delete', weight: 8, step: async (c, _pick, pickId) => {
    await c.query(`DELETE FROM chaos_orders WHERE id = (${someOrder})`, [pickId()]);
  } },
  { kind: 'key-change', weight: 5, step: async (c, _pick, pickId) => {
    await c.query(`UPDATE chaos_orders SET id = nextval('chaos_orders_id_seq') WHERE id = (${someOrder})`, [pickId()]);
  } },
  { kind: 'account', weight: 20, step: async (c, pick, pickId) => {
    if (pick(3) === 0) await c.query(`INSERT INTO chaos_accounts (owner, balance) VALUES ('o' || $1, $2)`, [pick(10_000), pick(1_000_000)]);
    else await c.query(`UPDATE chaos_accounts SET balance = balance - 7 WHERE id = (${someAccount})`, [pickId()]);
  } },
  { kind: 'insert-delete-same-txn', weight: 6, step: async (c) => {
    const { rows } = await c.query<{ id: string }>(`INSERT INTO chaos_orders (customer, amount, status) VALUES (0, 1, 'gone') RETURNING id`);
    await c.query('UPDATE chaos_orders SET status = $2 WHERE id = $1', [rows[0]!.id, 'changed']);
    await c.query('DELETE FROM chaos_orders WHERE id = $1', [rows[0]!.id]);
  } },
  { kind: 'insert-truncate-insert', weight: 1, step: async (c, pick) => {
    await c.query(`INSERT INTO chaos_accounts (owner, balance) VALUES ('before-truncate', $1)`, [pick(100)]);
    await c.query('TRUNCATE chaos_accounts');
    await c.query(`INSERT INTO chaos_accounts (owner, balance) SELECT 'after-truncate', g FROM generate_series(1, $1) g`, [1 + pick(20)]);
  } },
];
const TOTAL_WEIGHT = KINDS.reduce((sum, k) => sum + k.weight, 0);

export class Workload {
  readonly totals: WorkloadTotals = { transactions: 0, failed: 0, byKind: {} };
  private running = false;
  private done: Promise<void> = Promise.resolve();
  /** Ids are picked below this; it follows the sequences every 200 transactions (an estimate is enough). */
  private maxId = 1;

  constructor(private readonly databaseUrl: string, private readonly ratePerSecond: number, private readonly random: () => number) {}

  start(): void {
    this.running = true;
    this.done = this.loop();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }

  private async loop(): Promise<void> {
    const pick = (max: number) => Math.floor(this.random() * Math.max(1, max));
    const pickId = () => 1 + pick(this.maxId);
    let client: pg.Client | undefined;
    const interval = 1000 / this.ratePerSecond;
    let next = performance.now();
    while (this.running) {
      next += interval;
      const wait = next - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      else if (wait < -1000) next = performance.now(); // behind after an outage: no burst to catch up
      const chosen = this.choose();
      try {
        client ??= await connect(this.databaseUrl);
        await client.query('BEGIN');
        await chosen.step(client, pick, pickId);
        await client.query('COMMIT');
        this.totals.transactions++;
        this.totals.byKind[chosen.kind] = (this.totals.byKind[chosen.kind] ?? 0) + 1;
        if (this.totals.transactions % 200 === 0) this.maxId = await currentMaxId(client);
      } catch {
        this.totals.failed++;
        await client?.end().catch(() => {});
        client = undefined;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    await client?.end().catch(() => {});
  }

  private choose(): (typeof KINDS)[number] {
    let ticket = this.random() * TOTAL_WEIGHT;
    for (const kind of KINDS) {
      ticket -= kind.weight;
      if (ticket < 0) return kind;
    }
    return KINDS[0]!;
  }
}

async function connect(databaseUrl: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5_000 });
  client.on('error', () => {}); // a server restart: the next query fails and reconnects
  await client.connect();
  return client;
}

async function currentMaxId(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ n: string }>(`SELECT greatest(
    (SELECT last_value FROM chaos_orders_id_seq), (SELECT last_value FROM chaos_accounts_id_seq))::text AS n`);
  return Number(rows[0]!.n);
}
