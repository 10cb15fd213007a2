/**
 * Helpers for cdc tests: the seed's table in a test database, SQL as the
 * test's role, and every message of a topic read back from Kafka.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import kafkajs from 'kafkajs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export async function withClient<T>(url: string, body: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await body(client);
  } finally {
    await client.end();
  }
}

export async function sql(url: string, text: string, values: unknown[] = []): Promise<pg.QueryResult> {
  return withClient(url, (client) => client.query(text, values));
}

/** Creates user_logins exactly as migrations/postgres does. */
export async function createUserLogins(url: string): Promise<void> {
  const ddl = await readFile(path.join(ROOT, 'migrations/postgres/001_user_logins.sql'), 'utf8');
  await sql(url, ddl);
}

export interface TopicMessage {
  partition: number;
  offset: bigint;
  key: string | null;
  /** Kafka's message timestamp (the producer's send time), ms. */
  timestamp: number;
  /** The value's raw JSON text (int8 digits intact). */
  raw: string;
  headers: Record<string, string>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  value: any;
}

/** Every message of the topic, per partition in offset order (partitions concatenated in order). */
export async function readTopic(brokers: string, topic: string): Promise<TopicMessage[]> {
  const kafka = new kafkajs.Kafka({ brokers: brokers.split(','), logLevel: kafkajs.logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  let ends: Map<number, bigint>;
  try {
    ends = new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, BigInt(o.high)]));
  } finally {
    await admin.disconnect();
  }
  const wanted = [...ends.values()].reduce((a, b) => a + b, 0n);
  const messages: TopicMessage[] = [];
  if (wanted === 0n) return messages;
  const consumer = kafka.consumer({ groupId: `test-read-${Math.random().toString(36).slice(2)}`, maxWaitTimeInMs: 200 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${messages.length} of ${wanted} messages of ${topic}`)), 60_000);
      consumer
        .run({
          eachMessage: async ({ partition, message }) => {
            if (BigInt(message.offset) >= (ends.get(partition) ?? 0n)) return;
            const raw = message.value?.toString() ?? '';
            const headers = Object.fromEntries(Object.entries(message.headers ?? {}).map(([name, value]) => [name, String(value)]));
            messages.push({ partition, offset: BigInt(message.offset), key: message.key?.toString() ?? null, timestamp: Number(message.timestamp), raw, headers, value: raw ? JSON.parse(raw) : null });
            if (BigInt(messages.length) >= wanted) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return messages.sort((a, b) => a.partition - b.partition || Number(a.offset - b.offset));
}

/** Waits until `probe` returns a value (not undefined), polling. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export async function slotRow(url: string, slot: string): Promise<{ active_pid: number | null; confirmed_flush_lsn: string } | undefined> {
  return (await sql(url, 'SELECT active_pid, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0];
}

/** The server's major version (13, 14, …), for tests whose expectation depends on it. */
export async function serverMajor(url: string): Promise<number> {
  return Math.floor(Number((await sql(url, `SELECT current_setting('server_version_num') AS n`)).rows[0].n) / 10_000);
}
