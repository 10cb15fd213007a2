/**
 * Many tables through one sink, each ClickHouse table created and evolved
 * from the `walbridge.schema` header of the events (issue 9, sink side):
 * composite keys, every mapped type, a sequence of schema versions, a
 * ClickHouse column dropped by hand, a topic created after the start.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import kafkajs from 'kafkajs';
import { openClickHouse } from '../../src/sink/clickhouse/client.js';
import { cliEnv, runCli, startCli } from '../support/cli.js';
import { SchemaFeed } from '../support/schema-feed.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(500);
  }
}

describe('sink: many tables, tables from the schema header', () => {
  let services: IsolatedServices;
  let feed: SchemaFeed;
  let clickhouse: ReturnType<typeof openClickHouse>['client'];
  const sink = (args: string[]) => runCli('sink', [...args, '--topic-prefix', services.topicPrefix], cliEnv(services));
  const query = async <T>(sql: string): Promise<T[]> => (await clickhouse.query({ query: sql, format: 'JSONEachRow' })).json<T>();

  before(async () => {
    services = await isolatedServices('sink_tables');
    feed = await SchemaFeed.open(services.databaseUrl, services.kafkaBrokers, services.topicPrefix);
    clickhouse = openClickHouse(services.clickhouseUrl).client;
  });
  after(async () => {
    await feed.close();
    await clickhouse.close();
    await services.cleanup();
  });

  it('creates a composite-key table and an every-type table, and verify says EQUAL for both', async () => {
    await feed.db.query(`CREATE TABLE pairs (tenant int4, code text, qty int8, PRIMARY KEY (tenant, code))`);
    await feed.db.query(`INSERT INTO pairs SELECT t, 'c' || c, t * 1000 + c FROM generate_series(1, 3) t, generate_series(1, 40) c`);
    await feed.db.query(`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`);
    await feed.db.query(`CREATE TABLE everything (
      id uuid PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, n30 numeric(30, 6), n10 numeric(10, 2), nu numeric, f4 float4, f8 float8,
      t text, vc varchar(20), ch char(3), d date, tm time, ts timestamp, tstz timestamptz, by bytea, j json, jb jsonb, m mood,
      ai int4[], at text[], ab bool[], a8 int8[])`);
    await feed.db.query(`INSERT INTO everything VALUES
      ('00000000-0000-4000-8000-000000000001', true, -32768, 2147483647, 9223372036854775807, '123456789012345678901234.123456', 12345678.90,
       '3.14159265358979323846264338327950288419716939937510', 1.5, 0.1, 'héllo ✓ 🦆 "q" \\ back', 'vary', 'ab', '2024-02-29', '23:59:59.999999',
       '2024-05-01 10:00:00.123456', '2024-05-01 10:00:00.654321+02', '\\x00ff10', '{"a": [1, 2]}', '{"b": {"c": null}}', 'happy',
       '{1,NULL,3}', '{"x y",NULL,"ü"}', '{t,f}', '{9007199254740993,-9223372036854775808}'),
      ('00000000-0000-4000-8000-000000000002', false, 0, 0, -9007199254740993, '-0.000001', 0, 'NaN', -0.25, 1e300, '', '', 'x', '1970-01-01',
       '00:00:00', '1970-01-01 00:00:01', '2038-01-19 03:14:08+00', '\\x', '[]', '[]', 'sad', '{}', '{}', '{}', '{}'),
      ('00000000-0000-4000-8000-000000000003', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`);
    for (const table of ['pairs', 'everything']) await feed.createTopic(table, 2);
    await feed.sendRows('pairs', 'true', await feed.header('pairs'));
    await feed.sendRows('everything', 'true', await feed.header('everything'));
    await feed.sendDelete('pairs', '{"tenant":2,"code":"c7"}', await feed.header('pairs'));
    await feed.db.query(`DELETE FROM pairs WHERE tenant = 2 AND code = 'c7'`);

    const run = await sink(['start', '--once', '--table', 'public.*']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /wrote 3 rows to everything \(3 upserts, 0 deletes\) from \S+\.public\.everything/);
    assert.match(run.stdout, /wrote 120 rows to pairs \(119 upserts, 1 delete\) from \S+\.public\.pairs/);
    const [created] = await query<{ sorting_key: string; engine_full: string }>(
      `SELECT sorting_key, engine_full FROM system.tables WHERE database = '${services.name}' AND name = 'pairs'`);
    assert.equal(created?.sorting_key, 'tenant, code');
    assert.match(created?.engine_full ?? '', /^ReplacingMergeTree\(_version\)/);
    const [big] = await query<{ i8: string; n30: string; a8: string }>(`SELECT toString(i8) AS i8, toString(n30) AS n30, toString(a8) AS a8 FROM everything WHERE b = 1`);
    assert.deepEqual(big, { i8: '9223372036854775807', n30: '123456789012345678901234.123456', a8: '[9007199254740993,-9223372036854775808]' });

    const verify = await sink(['verify', '--table', 'public.*']);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, /public\.everything: EQUAL\npublic\.pairs: EQUAL/);
    assert.match(verify.stdout, /rows: PostgreSQL 3, ClickHouse 3;/);
    assert.match(verify.stdout, /rows: PostgreSQL 119, ClickHouse 119;/);

    // verify can fail: a changed value in a composite-key row is named by its key
    await clickhouse.command({ query: `INSERT INTO pairs (tenant, code, qty, _version, _is_deleted) VALUES (3, 'c5', -1, 18446744073709551615, 0)` });
    const differs = await sink(['verify', '--table', 'public.pairs']);
    assert.equal(differs.code, 1, differs.stdout);
    assert.match(differs.stdout, /\(tenant, code\) \["3","c5"\]: qty: PostgreSQL "3005", ClickHouse "-1"/);
  });

  it('follows ADD COLUMN … DEFAULT, DROP COLUMN and ALTER COLUMN TYPE bigint as schema versions', async () => {
    await feed.db.query(`CREATE TABLE evolving (id int4 PRIMARY KEY, name text, n int4)`);
    await feed.db.query(`INSERT INTO evolving SELECT g, 'n' || g, g FROM generate_series(1, 10) g`);
    await feed.createTopic('evolving', 1);
    await feed.sendRows('evolving', 'true', await feed.header('evolving'));
    await feed.db.query(`ALTER TABLE evolving ADD COLUMN note text DEFAULT 'x'`);
    await feed.db.query(`INSERT INTO evolving VALUES (11, 'n11', 11, 'eleven'), (12, 'n12', 12, DEFAULT)`);
    const v2 = await feed.header('evolving', { note: '"x"' });
    await feed.sendRows('evolving', 'id > 10', v2);
    await feed.db.query(`ALTER TABLE evolving DROP COLUMN name`);
    await feed.db.query(`INSERT INTO evolving VALUES (13, 13, 'thirteen')`);
    await feed.db.query(`UPDATE evolving SET note = 'updated' WHERE id = 1`);
    const v3 = await feed.header('evolving', { note: '"x"' });
    await feed.sendRows('evolving', 'id = 13', v3);
    await feed.sendRows('evolving', 'id = 1', v3, 'u');
    await feed.db.query(`ALTER TABLE evolving ALTER COLUMN n TYPE bigint`);
    await feed.db.query(`INSERT INTO evolving VALUES (14, 9007199254740993, 'big')`);
    await feed.sendRows('evolving', 'id = 14', await feed.header('evolving', { note: '"x"' }));

    const run = await sink(['start', '--once', '--table', 'public.evolving']);
    assert.equal(run.code, 0, run.stderr);
    // Each schema change writes the rows in hand first, so id 1's insert and update need not collapse: 15 rows or 14.
    assert.match(run.stdout, /^wrote 1[45] rows to evolving/);
    const rows = await query<{ id: number; name: string | null; n: string; note: string | null }>(
      'SELECT id, name, toString(n) AS n, note FROM evolving FINAL WHERE _is_deleted = 0 ORDER BY id');
    assert.deepEqual(rows.map((r) => [r.id, r.name, r.n, r.note]), [
      [1, null, '1', 'updated'], ...Array.from({ length: 9 }, (_, i) => [i + 2, `n${i + 2}`, String(i + 2), 'x']),
      [11, 'n11', '11', 'eleven'], [12, 'n12', '12', 'x'], [13, null, '13', 'thirteen'], [14, null, '9007199254740993', 'big'],
    ]);
    const [types] = await query<{ t: string }>(`SELECT type AS t FROM system.columns WHERE database = '${services.name}' AND table = 'evolving' AND name = 'n'`);
    assert.equal(types?.t, 'Nullable(Int64)');
    const verify = await sink(['verify', '--table', 'evolving']);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, /columns: id, n, note\n/); // name is gone from PostgreSQL, kept in ClickHouse

    // A non-Nullable column with a DEFAULT, added in ClickHouse only: rows take the default (none dead-lettered).
    await clickhouse.command({ query: `ALTER TABLE evolving ADD COLUMN origin String DEFAULT 'pg'` });
    await feed.db.query(`INSERT INTO evolving VALUES (15, 15, 'fifteen')`);
    await feed.sendRows('evolving', 'id = 15', await feed.header('evolving', { note: '"x"' }));
    const more = await sink(['start', '--once', '--table', 'public.evolving']);
    assert.equal(more.code, 0, more.stderr);
    assert.equal(more.stdout.trim(), `wrote 1 row to evolving (1 upsert, 0 deletes) from ${feed.topic('evolving')}`);
    assert.deepEqual(await query('SELECT id, origin FROM evolving FINAL WHERE id = 15'), [{ id: 15, origin: 'pg' }]);
  });

  it('pauses on a ClickHouse column dropped by hand, resumes once it is back, dead-letters nothing; picks up a topic created after the start', async () => {
    await feed.db.query(`CREATE TABLE handled (id int8 PRIMARY KEY, label text)`);
    await feed.db.query(`INSERT INTO handled SELECT g, 'l' || g FROM generate_series(1, 5) g`);
    await feed.createTopic('handled', 1);
    const header = await feed.header('handled');
    await feed.sendRows('handled', 'true', header);
    const group = `wb-follow-${services.name}`;
    const running = startCli('sink', ['start', '--table', 'public.handled', '--table', 'public.later*', '--topic-prefix', services.topicPrefix,
      '--group', group, '--linger-ms', '0'], { ...cliEnv(services), LOG_LEVEL: 'info' });
    const count = async (table: string): Promise<number> =>
      Number((await query<{ n: string }>(`SELECT count() AS n FROM ${table} FINAL WHERE _is_deleted = 0`))[0]?.n ?? 0);
    try {
      await until('the first rows', 60_000, async () => (await query<{ n: string }>(
        `SELECT count() AS n FROM system.tables WHERE database = '${services.name}' AND name = 'handled'`))[0]?.n === '1' && await count('handled') === 5);
      await clickhouse.command({ query: 'ALTER TABLE handled DROP COLUMN label' });
      await feed.db.query(`INSERT INTO handled SELECT g, 'l' || g FROM generate_series(6, 10) g`);
      await feed.sendRows('handled', 'id > 5', header);
      await until('the pause message', 30_000, async () => /sink paused on ClickHouse table handled .*has no column label any more .*ADD COLUMN `label` Nullable\(String\)/
        .test(running.output().stderr));
      assert.equal(await count('handled'), 5);
      await clickhouse.command({ query: 'ALTER TABLE handled ADD COLUMN label Nullable(String)' });
      await until('the rows after the pause', 30_000, async () => await count('handled') === 10);
      assert.match(running.output().stderr, /sink resumed on ClickHouse table handled/);
      const [labels] = await query<{ n: string }>(`SELECT count() AS n FROM handled FINAL WHERE id > 5 AND label = concat('l', toString(id))`);
      assert.equal(labels?.n, '5');

      await feed.db.query(`CREATE TABLE later_one (k text PRIMARY KEY, v float8)`);
      await feed.db.query(`INSERT INTO later_one VALUES ('a', 1.25), ('b', NULL)`);
      await feed.createTopic('later_one', 1);
      await feed.sendRows('later_one', 'true', await feed.header('later_one'));
      await until('the topic created after the start', 60_000, async () => (await query<{ n: string }>(
        `SELECT count() AS n FROM system.tables WHERE database = '${services.name}' AND name = 'later_one'`))[0]?.n === '1' && await count('later_one') === 2);
    } finally {
      running.child.kill('SIGTERM');
    }
    const result = await running.exited;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /new topic\(s\) \S+\.public\.later_one/);
    const admin = new kafkajs.Kafka({ brokers: services.kafkaBrokers.split(','), logLevel: kafkajs.logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      assert.ok(!(await admin.listTopics()).some((t) => t.endsWith('.dlq')), 'nothing was dead-lettered');
    } finally {
      await admin.disconnect();
    }
    // The values of the dropped column are gone from ClickHouse (verify says so); a replay restores them.
    const lost = await sink(['verify', '--table', 'public.handled', '--table', 'public.later_one']);
    assert.equal(lost.code, 1, lost.stdout + lost.stderr);
    assert.match(lost.stdout, /DIFFERENT: 5 ids differ\n  id 1: label: PostgreSQL "l1", ClickHouse null/);
    const replay = await sink(['replay', '--from-lsn', '0/0', '--table', 'public.handled']);
    assert.equal(replay.code, 0, replay.stderr);
    const verify = await sink(['verify', '--table', 'public.handled', '--table', 'public.later_one']);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  });

  it('--once refuses a topic that does not exist, and --no-create-tables a missing table (exit 2)', async () => {
    const run = await sink(['start', '--once', '--table', 'public.nowhere']);
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.match(run.stderr, /topic \S+\.public\.nowhere does not exist/);

    await feed.db.query(`CREATE TABLE refused (id int4 PRIMARY KEY)`);
    await feed.db.query(`INSERT INTO refused VALUES (1)`);
    await feed.createTopic('refused', 1);
    await feed.sendRows('refused', 'true', await feed.header('refused'));
    const refused = await sink(['start', '--once', '--table', 'public.refused', '--no-create-tables']);
    assert.equal(refused.code, 2, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /ClickHouse table \S+\.refused does not exist and --no-create-tables is set/);
  });
});
