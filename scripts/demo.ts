/**
 * The seed's walkthrough (shared/seed/README.en.md) with walbridge's commands,
 * step by step, checking after each step what a person would look at: the
 * flags in PostgreSQL, the messages in Kafka, the rows in ClickHouse.
 *
 * It works in its own database `walbridge_demo` (PostgreSQL and ClickHouse),
 * topic prefix `demo` and consumer group `walbridge-demo`, recreated on every
 * run, so it is repeatable and leaves anything else on the stack alone.
 * Exits non-zero when any check fails.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import pg from 'pg';
import { redactUrl, resolveConnections, withDatabase } from '../src/config/connections.js';
import { resolveKafka } from '../src/config/kafka.js';
import { topicName } from '../src/core/envelope.js';
import { ensureDatabase, openClickHouse, quoteIdentifier } from '../src/sink/clickhouse/client.js';
import { createKafka } from '../src/kafka/client.js';
import { topicOffsets } from '../src/kafka/topics.js';
import { createLogger } from '../src/observability/logger.js';

const DEMO_DATABASE = 'walbridge_demo';
const TOPIC_PREFIX = 'demo';
const GROUP = 'walbridge-demo';
// Slot names are global to the PostgreSQL cluster: the demo's own name keeps
// `cdc start --slot user_logins` free for your database.
const SLOT = 'user_logins_demo';
const TOPIC = topicName(TOPIC_PREFIX, 'public', 'user_logins');
const CLI_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/cli');

const base = resolveConnections({});
const databaseUrl = withDatabase(base.databaseUrl, DEMO_DATABASE);
const clickhouseUrl = withDatabase(base.clickhouseUrl, DEMO_DATABASE);
const kafka = createKafka(resolveKafka(base.kafkaBrokers, {}), 'walbridge-demo', createLogger('demo'));
const failures: string[] = [];
let stepNumber = 0;

function step(title: string): void {
  stepNumber += 1;
  console.log(`\n── ${stepNumber}. ${title}`);
}

function check(what: string, ok: boolean, detail: string): void {
  console.log(`   ${ok ? '✔' : '✘'} ${what}: ${detail}`);
  if (!ok) failures.push(`step ${stepNumber}: ${what} (${detail})`);
}

/** Runs a walbridge CLI as a user would, echoing the command and its output. */
function cli(name: 'cdc' | 'sink' | 'migrate', args: string[]): number {
  console.log(`   $ ${name} ${args.join(' ')}`);
  const result = spawnSync(process.execPath, [path.join(CLI_DIR, `${name}.js`), ...args], {
    env: { ...process.env, DATABASE_URL: databaseUrl, CLICKHOUSE_URL: clickhouseUrl, KAFKA_BROKERS: base.kafkaBrokers.join(','), LOG_LEVEL: 'warn' },
    encoding: 'utf8',
  });
  for (const line of `${result.stdout}${result.stderr}`.trimEnd().split('\n')) if (line) console.log(`     ${line}`);
  return result.status ?? 1;
}

async function sql<T extends pg.QueryResultRow>(text: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return (await client.query<T>(text, params)).rows;
  } finally {
    await client.end();
  }
}

async function clickhouseRows(): Promise<Array<{ id: number; username: string; event_type: string }>> {
  const { client } = openClickHouse(clickhouseUrl);
  try {
    const result = await client.query({
      query: 'SELECT id, username, event_type FROM user_logins FINAL WHERE _is_deleted = 0 ORDER BY id',
      format: 'JSONEachRow',
    });
    return await result.json();
  } finally {
    await client.close();
  }
}

async function clickhouseCommand(query: string): Promise<void> {
  const { client } = openClickHouse(clickhouseUrl);
  try {
    await client.command({ query });
  } finally {
    await client.close();
  }
}

async function messagesInTopic(): Promise<bigint> {
  return (await topicOffsets(kafka, TOPIC)).reduce((sum, p) => sum + p.high - p.low, 0n);
}

async function showFlags(): Promise<Array<{ username: string; sent_to_kafka: boolean }>> {
  const rows = await sql<{ id: number; username: string; event_type: string; sent_to_kafka: boolean }>(
    'SELECT id, username, event_type, sent_to_kafka FROM user_logins ORDER BY id');
  for (const row of rows) console.log(`     postgres  id=${row.id} ${row.username} ${row.event_type} sent_to_kafka=${row.sent_to_kafka}`);
  return rows;
}

async function showClickHouse(expected: string[]): Promise<void> {
  const rows = await clickhouseRows();
  for (const row of rows) console.log(`     clickhouse id=${row.id} ${row.username} ${row.event_type}`);
  const names = rows.map((r) => r.username);
  check('ClickHouse rows (FINAL, not deleted)', names.join(',') === expected.join(','), names.join(', ') || 'none');
}

async function cdcRound(expectedTotal: bigint, label: string): Promise<void> {
  check(`cdc exit code (${label})`, cli('cdc', ['start', '--slot', SLOT, '--topic-prefix', TOPIC_PREFIX, '--once']) === 0, 'expected 0');
  const total = await messagesInTopic();
  check('messages in Kafka topic ' + TOPIC, total === expectedTotal, `${total} (expected ${expectedTotal})`);
  const flags = await showFlags();
  check('every row marked sent_to_kafka', flags.every((r) => r.sent_to_kafka), `${flags.filter((r) => r.sent_to_kafka).length}/${flags.length}`);
}

async function resetDemo(): Promise<void> {
  const admin = new pg.Client({ connectionString: base.databaseUrl });
  await admin.connect();
  try {
    // The demo's slot, publication and replication origins, removed the way a user would. The origins
    // are cluster-wide and outlive the database: left behind, the next run's cdc would see the slot as
    // lost and refuse to recreate it.
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DEMO_DATABASE]);
    if (exists.rowCount) {
      console.log('   cleaning up the previous run:');
      if (cli('cdc', ['drop', '--slot', SLOT, '--yes']) !== 0) throw new Error(`cdc drop --slot ${SLOT} failed`);
    } else {
      const origins = [`walbridge_${SLOT}`, `walbridge_${SLOT}_snapshot`, `walbridge_${SLOT}_snapshot_all`];
      await admin.query('SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE roname = ANY($1)', [origins]);
    }
    await admin.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active`, [DEMO_DATABASE]);
    await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(DEMO_DATABASE)} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(DEMO_DATABASE)}`);
  } finally {
    await admin.end();
  }
  const { client } = openClickHouse(base.clickhouseUrl);
  try {
    await client.command({ query: `DROP DATABASE IF EXISTS ${quoteIdentifier(DEMO_DATABASE)}` });
  } finally {
    await client.close();
  }
  await ensureDatabase(clickhouseUrl);
  const kafkaAdmin = kafka.admin();
  await kafkaAdmin.connect();
  try {
    const topics = (await kafkaAdmin.listTopics()).filter((t) => t.startsWith(`${TOPIC_PREFIX}.`));
    if (topics.length > 0) await kafkaAdmin.deleteTopics({ topics });
    const groups = (await kafkaAdmin.listGroups()).groups.map((g) => g.groupId);
    if (groups.includes(GROUP)) await kafkaAdmin.deleteGroups([GROUP]);
  } finally {
    await kafkaAdmin.disconnect();
  }
}

async function main(): Promise<number> {
  console.log('walbridge demo: the seed walkthrough, PostgreSQL → Kafka → ClickHouse');
  console.log(`   PostgreSQL ${redactUrl(databaseUrl)}\n   Kafka      ${base.kafkaBrokers.join(',')}  topic ${TOPIC}\n   ClickHouse ${redactUrl(clickhouseUrl)}`);

  step('a fresh demo database, topic and consumer group');
  await resetDemo();
  console.log(`   recreated ${DEMO_DATABASE} in PostgreSQL and ClickHouse; deleted topics ${TOPIC_PREFIX}.* and group ${GROUP}`);

  step('create user_logins in PostgreSQL and ClickHouse (seed step 1)');
  check('migrate exit code', cli('migrate', []) === 0, 'expected 0');

  step("insert alice and bob (seed step 1)");
  await sql(`INSERT INTO user_logins (username, event_type, event_time, sent_to_kafka)
             VALUES ('alice', 'login', now(), False), ('bob', 'register', now(), False)`);
  await showFlags();

  step('run the producer: rows go from PostgreSQL to Kafka (seed step 2)');
  await cdcRound(2n, 'first run');

  step('run the producer again: nothing is sent a second time (seed step 3)');
  await cdcRound(2n, 'second run');

  step('run the consumer: rows from Kafka are written into ClickHouse (seed step 4)');
  check('sink exit code', cli('sink', ['start', '--topic-prefix', TOPIC_PREFIX, '--group', GROUP, '--once']) === 0, 'expected 0');
  await showClickHouse(['alice', 'bob']);

  step('clean slate: TRUNCATE TABLE user_logins in ClickHouse; reset the flags in PostgreSQL');
  await clickhouseCommand('TRUNCATE TABLE user_logins');
  await showClickHouse([]);
  await sql('UPDATE user_logins SET sent_to_kafka = FALSE');
  await showFlags();

  step('run the producer: the rows go to Kafka again');
  await cdcRound(4n, 'clean-slate run');

  step('run the producer again: nothing is sent a second time');
  await cdcRound(4n, 'clean-slate second run');

  step('run the consumer: the rows are in ClickHouse again');
  check('sink exit code', cli('sink', ['start', '--topic-prefix', TOPIC_PREFIX, '--group', GROUP, '--once']) === 0, 'expected 0');
  await showClickHouse(['alice', 'bob']);

  step('verify: PostgreSQL equals ClickHouse');
  check('sink verify exit code', cli('sink', ['verify']) === 0, 'expected 0 (tables equal)');

  if (failures.length > 0) {
    console.log(`\nDEMO FAILED: ${failures.length} check(s) did not hold:\n  ${failures.join('\n  ')}`);
    return 1;
  }
  console.log('\nDemo passed: alice and bob reached ClickHouse twice, and PostgreSQL equals ClickHouse.');
  console.log('The stack is still running for you to explore; stop it with: npm run stack:down');
  console.log(`The demo's data is in its own database ${DEMO_DATABASE} (PostgreSQL and ClickHouse), slot ${SLOT}, topic ${TOPIC};`);
  console.log('.stack/env points at the database walbridge, which is yours to fill. To look at the demo\'s:');
  console.log(`  source .stack/env; export DATABASE_URL=\${DATABASE_URL%/*}/${DEMO_DATABASE} CLICKHOUSE_URL=\${CLICKHOUSE_URL%/*}/${DEMO_DATABASE}`);
  console.log(`  npx cdc status --slot ${SLOT} --topic-prefix ${TOPIC_PREFIX}; npx sink verify`);
  return 0;
}

process.exitCode = await main();
