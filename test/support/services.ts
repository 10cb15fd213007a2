/**
 * Real services for integration tests. scripts/test.sh starts an isolated
 * stack (or takes WALBRIDGE_TEST_* URLs); each test then gets its own
 * PostgreSQL database, ClickHouse database and Kafka topic prefix, so tests
 * never see each other's tables, slots or topics, and table names stay the
 * product's own (`user_logins`).
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import kafkajs from 'kafkajs';
import { withDatabase } from '../../src/config/connections.js';
import { originName } from '../../src/cdc/postgres/marker.js';
import { snapshotFlagNames } from '../../src/cdc/postgres/snapshot-flag.js';
import { ensureDatabase, openClickHouse, quoteIdentifier } from '../../src/sink/clickhouse/client.js';

export interface ServiceUrls {
  databaseUrl: string;
  kafkaBrokers: string;
  clickhouseUrl: string;
  /** The CA of an https ClickHouse (CLICKHOUSE_CA_FILE); the test stack's is plain http. */
  clickhouseCaFile?: string | undefined;
}

export function serviceUrls(): ServiceUrls {
  const { WALBRIDGE_TEST_DATABASE_URL, WALBRIDGE_TEST_KAFKA_BROKERS, WALBRIDGE_TEST_CLICKHOUSE_URL } = process.env;
  if (!WALBRIDGE_TEST_DATABASE_URL || !WALBRIDGE_TEST_KAFKA_BROKERS || !WALBRIDGE_TEST_CLICKHOUSE_URL) {
    throw new Error('integration tests need WALBRIDGE_TEST_* service URLs: run them through `npm test` (scripts/test.sh)');
  }
  return {
    databaseUrl: WALBRIDGE_TEST_DATABASE_URL,
    kafkaBrokers: WALBRIDGE_TEST_KAFKA_BROKERS,
    clickhouseUrl: WALBRIDGE_TEST_CLICKHOUSE_URL,
  };
}

/**
 * A superuser connection over the test stack's unix socket (trust), for tests
 * that must create roles or read server settings. Only with the stack that
 * scripts/test.sh started; undefined when WALBRIDGE_TEST_* URLs were given.
 */
export function superuserUrl(database = 'postgres'): string | undefined {
  const stackDir = process.env.WALBRIDGE_TEST_STACK_DIR;
  if (!stackDir) return undefined;
  const port = new URL(serviceUrls().databaseUrl).port;
  return `postgres://postgres@localhost/${database}?host=${encodeURIComponent(path.join(stackDir, 'pg', 'run'))}&port=${port}`;
}

export interface IsolatedServices extends ServiceUrls {
  /** Name shared by the PostgreSQL and ClickHouse databases. */
  name: string;
  topicPrefix: string;
  /** Drops the databases (and the slots in the PostgreSQL one) and deletes the topics. */
  cleanup(): Promise<void>;
}

/** A fresh database pair and topic prefix on the given services (default: the test stack's). */
export async function isolatedServices(label: string, base: ServiceUrls = serviceUrls()): Promise<IsolatedServices> {
  const name = `wb_${label.replace(/\W/g, '_').toLowerCase()}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base.databaseUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
  const clickhouseUrl = withDatabase(base.clickhouseUrl, name);
  await ensureDatabase(clickhouseUrl, base.clickhouseCaFile);
  const topicPrefix = name;
  return {
    name,
    databaseUrl: withDatabase(base.databaseUrl, name),
    kafkaBrokers: base.kafkaBrokers,
    clickhouseUrl,
    clickhouseCaFile: base.clickhouseCaFile,
    topicPrefix,
    cleanup: async () => {
      const client = new pg.Client({ connectionString: base.databaseUrl });
      await client.connect();
      try {
        const slots = (await client.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots WHERE database = $1', [name])).rows.map((r) => r.slot_name);
        await client.query(
          `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`, [name]);
        await client.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1`, [name]);
        // FORCE may not terminate an autovacuum worker (no role: 42501) that
        // started on a big table just before; it ends soon, so try again.
        for (let attempt = 1; ; attempt++) {
          try {
            await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`);
            break;
          } catch (error) {
            if ((error as { code?: string }).code !== '42501' || attempt >= 20) throw error;
            await new Promise((resolve) => setTimeout(resolve, 500));
          }
        }
        // Replication origins are cluster-wide: walbridge's for these slots would make a later
        // test's slot of the same name look lost (cdc refuses to recreate it silently).
        const origins = slots.flatMap((slot) => [originName(slot), ...snapshotFlagNames(slot)]);
        const found = await client.query<{ roname: string }>('SELECT roname FROM pg_replication_origin WHERE roname = ANY($1)', [origins]);
        for (const { roname } of found.rows) await client.query('SELECT pg_replication_origin_drop($1)', [roname]);
      } finally {
        await client.end();
      }
      const { client: clickhouse } = openClickHouse(base.clickhouseUrl, { caFile: base.clickhouseCaFile });
      try {
        await clickhouse.command({ query: `DROP DATABASE IF EXISTS ${quoteIdentifier(name)}` });
      } finally {
        await clickhouse.close();
      }
      const kafkaAdmin = new kafkajs.Kafka({ brokers: base.kafkaBrokers.split(','), logLevel: kafkajs.logLevel.NOTHING }).admin();
      await kafkaAdmin.connect();
      try {
        const topics = (await kafkaAdmin.listTopics()).filter((topic) => topic.startsWith(`${topicPrefix}.`));
        if (topics.length > 0) await kafkaAdmin.deleteTopics({ topics });
      } finally {
        await kafkaAdmin.disconnect();
      }
    },
  };
}
