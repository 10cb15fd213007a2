/**
 * Many tables through one slot: table selection (names, patterns, exclusions),
 * one topic per table with its own key (composite included), a partitioned
 * table's changes under its root's name (partitions attached later too), the
 * schema header on every message, and publications that would lose changes
 * refused with the fix.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cliEnv, runCli } from '../support/cli.js';
import { createUserLogins, readTopic, sql, type TopicMessage } from '../support/cdc.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

const SLOT = 'many_tables';

describe('cdc with many tables', () => {
  let services: IsolatedServices;
  const topic = (table: string): string => `${services.topicPrefix}.public.${table}`;
  const cdc = (...args: string[]) => runCli('cdc', ['start', '--topic-prefix', services.topicPrefix, '--once', ...args], cliEnv(services));
  const byOp = (messages: TopicMessage[]): Record<string, number> =>
    messages.reduce<Record<string, number>>((counts, m) => ({ ...counts, [m.value?.op ?? 'tombstone']: (counts[m.value?.op ?? 'tombstone'] ?? 0) + 1 }), {});

  before(async () => {
    services = await isolatedServices('cdc_many');
    await createUserLogins(services.databaseUrl);
    await sql(services.databaseUrl, `
      CREATE TABLE order_lines (order_id int, line int, product text, PRIMARY KEY (order_id, line), sent_to_kafka boolean DEFAULT false);
      CREATE TABLE measurements (id bigint, taken date NOT NULL, value numeric(10, 2), PRIMARY KEY (id, taken)) PARTITION BY RANGE (taken);
      CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
      CREATE TABLE audit_no_key (note text);
      INSERT INTO user_logins (username, event_type, event_time) VALUES ('alice', 'login', '2024-05-01 10:00:00');
      INSERT INTO order_lines (order_id, line, product) VALUES (1, 1, 'tea'), (1, 2, 'milk');
      INSERT INTO measurements VALUES (1, '2024-03-01', 1.5);`);
  });
  after(async () => {
    await services.cleanup();
  });

  it('refuses a table without a primary key, naming the fix', async () => {
    const result = await cdc('--slot', `${SLOT}_nokey`, '--table', 'public.*');
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /public\.audit_no_key has no primary key.*--exclude-table public\.audit_no_key/);
    const slot = await sql(services.databaseUrl, 'SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [`${SLOT}_nokey`]);
    assert.equal(slot.rowCount, 0, 'nothing created');
  });

  it('refuses a partition named on its own', async () => {
    const result = await cdc('--slot', `${SLOT}_leaf`, '--table', 'public.measurements_2024');
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /is a partition of public\.measurements.*--table public\.measurements/);
  });

  it('refuses a publication that does not publish every operation, or filters rows', async () => {
    await sql(services.databaseUrl, `CREATE PUBLICATION inserts_only FOR TABLE order_lines WITH (publish = 'insert')`);
    const inserts = await cdc('--slot', `${SLOT}_pub`, '--table', 'public.order_lines', '--publication', 'inserts_only');
    assert.equal(inserts.code, 2, inserts.stderr);
    assert.match(inserts.stderr, /publication inserts_only does not publish update, delete, truncate.*ALTER PUBLICATION "inserts_only" SET \(publish = 'insert, update, delete, truncate'/);
    const version = Number((await sql(services.databaseUrl, `SELECT current_setting('server_version_num') AS v`)).rows[0]?.v);
    if (version >= 150000) { // row filters exist from PostgreSQL 15 on
      await sql(services.databaseUrl, `CREATE PUBLICATION filtered FOR TABLE order_lines WHERE (line > 1)`);
      const filtered = await cdc('--slot', `${SLOT}_pub`, '--table', 'public.order_lines', '--publication', 'filtered');
      assert.equal(filtered.code, 2, filtered.stderr);
      assert.match(filtered.stderr, /publication filtered filters public\.order_lines \(a row filter\)/);
    }
    await sql(services.databaseUrl, `CREATE PUBLICATION leaves FOR TABLE measurements`);
    const leaves = await cdc('--slot', `${SLOT}_pub`, '--table', 'public.measurements', '--publication', 'leaves');
    assert.equal(leaves.code, 2, leaves.stderr);
    assert.match(leaves.stderr, /under their partitions' names.*publish_via_partition_root = true/);
  });

  it('captures every selected table through one slot, each to its own topic, partitions under their root', async () => {
    const first = await cdc('--slot', SLOT, '--table', 'public.*', '--exclude-table', 'public.audit_no_key');
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^sent 4 events \(4 snapshot rows\) from slot many_tables to 3 topics/);
    const publication = await sql(services.databaseUrl, `SELECT pubviaroot FROM pg_publication WHERE pubname = $1`, [`walbridge_${SLOT}`]);
    assert.equal(publication.rows[0]?.pubviaroot, true);

    // After the snapshot: a partition attached later, changes in every table, a truncate of one.
    await sql(services.databaseUrl, `
      CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
      INSERT INTO measurements VALUES (2, '2024-07-01', 2.25), (3, '2025-02-01', 3.75);
      UPDATE measurements SET value = 9 WHERE id = 1;
      INSERT INTO order_lines (order_id, line, product) VALUES (2, 1, 'bread');
      UPDATE order_lines SET product = 'oat milk' WHERE order_id = 1 AND line = 2;
      DELETE FROM order_lines WHERE order_id = 1 AND line = 1;
      INSERT INTO user_logins (username, event_type, event_time) VALUES ('bob', 'register', '2024-05-02 10:00:00');
      TRUNCATE order_lines;`);
    const second = await cdc('--slot', SLOT, '--table', 'public.*', '--exclude-table', 'public.audit_no_key');
    assert.equal(second.code, 0, second.stderr);

    const measurements = await readTopic(services.kafkaBrokers, topic('measurements'));
    assert.deepEqual(byOp(measurements), { r: 1, c: 2, u: 1 }, 'every change of every partition, under the root');
    assert.deepEqual(measurements.map((m) => m.key), ['{"id":1,"taken":19783}', '{"id":2,"taken":19905}', '{"id":3,"taken":20120}', '{"id":1,"taken":19783}']);
    assert.ok(measurements.every((m) => m.value.source.table === 'measurements'));

    const lines = await readTopic(services.kafkaBrokers, topic('order_lines'));
    assert.deepEqual(byOp(lines), { r: 2, c: 1, u: 1, d: 1, t: 1 });
    assert.deepEqual(lines.filter((m) => m.value.op !== 't').map((m) => m.key),
      ['{"order_id":1,"line":1}', '{"order_id":1,"line":2}', '{"order_id":2,"line":1}', '{"order_id":1,"line":2}', '{"order_id":1,"line":1}']);
    const flags = await sql(services.databaseUrl, 'SELECT count(*)::int AS n FROM user_logins WHERE NOT sent_to_kafka');
    assert.equal(flags.rows[0]?.n, 0, 'user_logins rows marked sent');

    const logins = await readTopic(services.kafkaBrokers, topic('user_logins'));
    assert.deepEqual(byOp(logins), { r: 1, c: 1 });
    for (const m of [...measurements, ...lines, ...logins]) {
      const header = JSON.parse(m.headers['walbridge.schema'] ?? 'null');
      assert.equal(header?.table, m.value.source.table, 'every message carries its table\'s schema header');
    }
    const schema = JSON.parse(measurements[0]!.headers['walbridge.schema']!);
    assert.deepEqual(schema.columns.map((c: { name: string; key: boolean; typeOid: number; typmod: number }) => [c.name, c.key, c.typeOid, c.typmod]),
      [['id', true, 20, -1], ['taken', true, 1082, -1], ['value', false, 1700, (10 << 16 | 2) + 4]]);

    const status = await runCli('cdc', ['status', '--slot', SLOT, '--topic-prefix', services.topicPrefix], cliEnv(services));
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /3 captured tables/);
    for (const table of ['measurements', 'order_lines', 'user_logins']) assert.match(status.stdout, new RegExp(`table public\\.${table} → topic ${topic(table).replace(/\./g, '\\.')}`));
  });
});
