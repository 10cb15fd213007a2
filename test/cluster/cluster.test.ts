/**
 * walbridge against a cluster-shaped stack: 3 Kafka brokers (replication
 * factor 3, min.insync.replicas 2) and ClickHouse as one shard of two
 * replicas with ZooKeeper. `migrate --cluster` makes the tables replicated ON
 * CLUSTER; cdc and the sink then run while a writer keeps inserting (with
 * updates, deletes and truncates), through (a) nothing, (b) ClickHouse replica
 * 2 killed -9 and started again, (c) ClickHouse replica 1 stopped, so the
 * sink holds an insert, and meanwhile the Kafka broker coordinating the sink's
 * group killed -9; both started again. After each, `sink verify` is EQUAL against
 * each replica's URL: nothing lost, both replicas hold the same rows.
 * Needs the cluster stack `npm run test:cluster` starts (scripts/test.sh with
 * STACK_KAFKA_BROKERS=3 STACK_CLICKHOUSE_REPLICAS=2).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import kafkajs from 'kafkajs';
import { withDatabase } from '../../src/config/connections.js';
import { cliEnv, runCli, startCli, type RunningCli } from '../support/cli.js';
import { sql, waitFor } from '../support/cdc.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';
import { startWriter, type Writer } from '../support/writer.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SLOT = 'cluster';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const CLUSTER = process.env.WALBRIDGE_TEST_CLICKHOUSE_CLUSTER ?? '';
const REPLICA_URLS = (process.env.WALBRIDGE_TEST_CLICKHOUSE_REPLICA_URLS ?? '').split(',').filter(Boolean);

/** scripts/stack.sh on the test's cluster stack: `kill clickhouse:2`, or `up` with STACK_SERVICES=clickhouse. */
async function stack(args: string[], services?: string): Promise<string> {
  const stackDir = process.env.WALBRIDGE_TEST_STACK_DIR;
  assert.ok(stackDir, 'this test stops and starts the stack\'s services: run it with `npm run test:cluster`');
  const prefix = new URL(process.env.WALBRIDGE_TEST_DATABASE_URL ?? '').port.slice(0, 1);
  const { stdout } = await promisify(execFile)('bash', [path.join(ROOT, 'scripts/stack.sh'), ...args], {
    env: { ...process.env, STACK_DIR: stackDir, STACK_PORT_PREFIX: prefix, ...(services ? { STACK_SERVICES: services } : {}) },
  });
  return stdout;
}

async function clickhouse(url: string, query: string): Promise<string> {
  const { protocol, host } = new URL(url);  // the stack's user `default` has no password
  const response = await fetch(`${protocol}//${host}/`, { method: 'POST', body: query });
  const text = await response.text();
  if (!response.ok) throw new Error(`${query}: ${text}`);
  return text.trim();
}

/** Inserts rows until stopped, with an update and a delete now and then; reconnects through outages. */
const startLoginWriter = (databaseUrl: string): Writer => startWriter(databaseUrl, (n) => [
  `INSERT INTO user_logins (username, event_type, event_time) SELECT 'writer', 'login', now() FROM generate_series(1, 5)`,
  ...(n % 7 === 0 ? [`UPDATE user_logins SET event_type = 'updated' WHERE id = (SELECT max(id) - 3 FROM user_logins)`] : []),
  ...(n % 11 === 0 ? ['DELETE FROM user_logins WHERE id = (SELECT min(id) FROM user_logins)'] : []),
], 30);

/**
 * The broker coordinating `group`: the leader of its __consumer_offsets partition, which Kafka picks
 * as Utils.abs(Java's String.hashCode of the group id) modulo the partition count.
 */
async function groupCoordinator(brokers: string, group: string): Promise<number> {
  let hash = 0;
  for (let i = 0; i < group.length; i += 1) hash = (Math.imul(hash, 31) + group.charCodeAt(i)) | 0;
  const admin = new kafkajs.Kafka({ brokers: brokers.split(','), logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const [offsets] = (await admin.fetchTopicMetadata({ topics: ['__consumer_offsets'] })).topics;
    assert.ok(offsets && offsets.partitions.length > 0, 'the group\'s offsets topic exists (the sink has joined)');
    const partition = (hash === -2147483648 ? 0 : Math.abs(hash)) % offsets.partitions.length; // Kafka's Utils.abs
    const leader = offsets.partitions.find((p) => p.partitionId === partition)?.leader;
    assert.ok(leader !== undefined);
    return leader;
  } finally {
    await admin.disconnect();
  }
}

describe('a replicated ClickHouse and a 3-broker Kafka', () => {
  let services: IsolatedServices;
  let env: NodeJS.ProcessEnv;
  let cdc: RunningCli;
  let sink: RunningCli;
  const tail = (log: string): string => log.split('\n').filter((line) => !line.includes('"msg":"progress: ')).join('\n').slice(-4000);
  const logs = (): string => `cdc:\n${tail(cdc.output().stderr)}\nsink:\n${tail(sink.output().stderr)}`;

  before(async () => {
    assert.ok(CLUSTER && REPLICA_URLS.length === 2, 'needs a cluster stack with 2 ClickHouse replicas: run `npm run test:cluster`');
    services = await isolatedServices('cluster');
    env = { ...cliEnv(services), CLICKHOUSE_CLUSTER: CLUSTER };
  });
  after(async () => {
    sink?.child.kill('SIGKILL');
    cdc?.child.kill('SIGKILL');
    await services?.cleanup();
  });

  /** `sink verify` against each replica until both say EQUAL (the sink and the replicas catch up), at most `ms`. */
  async function bothReplicasEqual(ms: number): Promise<void> {
    for (const replica of REPLICA_URLS) {
      const url = withDatabase(replica, services.name);
      let last = '';
      let attempts = 0;
      const started = Date.now();
      await waitFor(`verify EQUAL on ${url}`, async () => {
        attempts++;
        const verify = await runCli('sink', ['verify', '--topic-prefix', services.topicPrefix, '--clickhouse-url', url], env, 90_000);
        last = `${verify.stdout}\n${verify.stderr}`;
        return verify.code === 0 ? true : undefined;
      }, ms).catch((error: Error) => { throw new Error(`${error.message}:\n${last}\n${logs()}`); });
      assert.match(last, /EQUAL/);
      const notes = last.split('\n').filter((line) => line.startsWith('note:')).join('; ');
      console.log(`verify EQUAL on ${new URL(url).port} after ${((Date.now() - started) / 1000).toFixed(1)}s (${attempts} run(s))${notes ? `; ${notes}` : ''}`);
    }
  }

  it('migrate --cluster makes every table replicated on both replicas; an unknown cluster is exit 2', async () => {
    const wrong = await runCli('migrate', ['--cluster', 'no_such_cluster'], env);
    assert.equal(wrong.code, 2, wrong.stderr);
    assert.match(wrong.stderr, new RegExp(`ClickHouse knows no cluster no_such_cluster .*define ${CLUSTER}`));
    const migrated = await runCli('migrate', [], env);
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.match(migrated.stdout, new RegExp(`on cluster ${CLUSTER}: applied 001_user_logins.sql, 002_user_logins_seq.sql`));
    for (const replica of REPLICA_URLS) {
      const engines = await clickhouse(replica, `SELECT name, engine FROM system.tables WHERE database = '${services.name}' ORDER BY name FORMAT TSV`);
      assert.deepEqual(engines.split('\n'), ['user_logins\tReplicatedReplacingMergeTree', 'user_logins_current\tView', 'walbridge_schema_migrations\tReplicatedMergeTree']);
    }
  });

  it('(a) cdc and sink stream into both replicas, a truncate included', async () => {
    cdc = startCli('cdc', ['start', '--slot', SLOT, '--topic-prefix', services.topicPrefix], { ...env, LOG_LEVEL: 'info' });
    sink = startCli('sink', ['start', '--topic-prefix', services.topicPrefix, '--linger-ms', '200'], { ...env, LOG_LEVEL: process.env.SINK_LOG_LEVEL ?? 'info' });
    const writer = startLoginWriter(services.databaseUrl);
    try {
      await waitFor('rows in ClickHouse', async () => (Number(await clickhouse(REPLICA_URLS[0]!, `SELECT count() FROM ${services.name}.user_logins`)) > 0 ? true : undefined), 60_000)
        .catch((error: Error) => { throw new Error(`${error.message}\n${logs()}`); });
      await sql(services.databaseUrl, 'TRUNCATE user_logins');
      await sleep(2_000);
    } finally {
      await writer.stop();
    }
    await bothReplicasEqual(60_000);
    for (const replica of REPLICA_URLS) {
      const engine = await clickhouse(replica, `SELECT engine FROM system.tables WHERE database = '${services.name}' AND name = 'walbridge_sink_truncates'`);
      assert.equal(engine, 'ReplicatedMergeTree', 'the sink made its bookkeeping table replicated on both replicas');
      assert.ok(Number(await clickhouse(replica, `SELECT count() FROM ${services.name}.walbridge_sink_truncates`)) >= 1, 'the truncate is recorded on both replicas');
    }
  });

  it('(b) ClickHouse replica 2 killed -9 while inserts (and a truncate) go on, then started again: nothing lost on either', async () => {
    const writer = startLoginWriter(services.databaseUrl);
    try {
      await sleep(1_000);
      await stack(['kill', 'clickhouse:2']);
      await sleep(3_000);
      await sql(services.databaseUrl, 'TRUNCATE user_logins');
      await sleep(3_000);
      const [during] = (await sql(services.databaseUrl, 'SELECT count(*)::int AS n FROM user_logins')).rows;
      assert.ok(during.n > 0, 'rows were written after the truncate while replica 2 was down');
      await stack(['up'], 'clickhouse');
      await sleep(1_000);
    } finally {
      await writer.stop();
    }
    assert.equal(sink.child.exitCode, null, `the sink exited:\n${logs()}`);
    await bothReplicasEqual(90_000);
  });

  it('(c) the broker coordinating the sink\'s group killed -9 while the sink holds an insert (ClickHouse replica 1 down), both started again: nothing lost', async () => {
    // The chaos run that lost rows: the coordinator moved (NOT_COORDINATOR), kafkajs took it for a
    // rebalance, the fence dropped the rows in hand, and the rejoin did not happen (consumer.ts).
    const coordinator = await groupCoordinator(services.kafkaBrokers, env.SINK_GROUP!);
    const writer = startLoginWriter(services.databaseUrl);
    try {
      await sleep(1_000);
      const logged = sink.output().stderr.length; // an earlier scenario's wait is not this one
      await stack(['kill', 'clickhouse:1']);
      await waitFor('the sink waiting for ClickHouse', async () => (/waiting for ClickHouse/.test(sink.output().stderr.slice(logged)) ? true : undefined), 30_000)
        .catch((error: Error) => { throw new Error(`${error.message}\n${logs()}`); });
      await stack(['kill', `kafka:${coordinator}`]);
      await sleep(4_000);
      await stack(['up'], 'kafka');
      await sleep(3_000);
      await stack(['up'], 'clickhouse');
      await sleep(1_000);
    } finally {
      await writer.stop();
    }
    assert.ok(writer.committed() > 0);
    assert.equal(cdc.child.exitCode, null, `cdc exited:\n${logs()}`);
    assert.equal(sink.child.exitCode, null, `the sink exited:\n${logs()}`);
    await bothReplicasEqual(90_000);
    sink.child.kill('SIGTERM');
    cdc.child.kill('SIGTERM');
    assert.equal((await sink.exited).code, 0, logs());
    assert.equal((await cdc.exited).code, 0, logs());
  });
});
