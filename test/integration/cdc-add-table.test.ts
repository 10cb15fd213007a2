/**
 * A table added to an existing slot by restarting with one more --table: its
 * rows arrive through an incremental snapshot (the slot is not recreated, the
 * other table is not read again); --snapshot none adds it without its rows.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseLsn } from '../../src/core/lsn.js';
import { cliEnv, runCli } from '../support/cli.js';
import { createUserLogins, readTopic, serverMajor, slotRow, sql } from '../support/cdc.js';
import { isolatedServices, serviceUrls, type IsolatedServices } from '../support/services.js';

/** PostgreSQL 13's pgoutput has no logical messages, so no incremental snapshot there: the refusal is tested instead. */
const WITHOUT_WATERMARKS = (await serverMajor(serviceUrls().databaseUrl)) < 14;

describe('cdc start with a table added to an existing slot', () => {
  let services: IsolatedServices;
  const cdc = (...args: string[]) => runCli('cdc', ['start', '--slot', 'grow', '--topic-prefix', services.topicPrefix, '--once', ...args], cliEnv(services));
  const topic = (table: string): string => `${services.topicPrefix}.public.${table}`;

  before(async () => {
    services = await isolatedServices('cdc_add_table');
    await createUserLogins(services.databaseUrl);
    await sql(services.databaseUrl, `INSERT INTO user_logins (username, event_type, event_time) SELECT 'u' || g, 'login', now() FROM generate_series(1, 50) g`);
    await sql(services.databaseUrl, `CREATE TABLE lines (order_id int, line int, product text, PRIMARY KEY (order_id, line))`);
    await sql(services.databaseUrl, `INSERT INTO lines SELECT g / 10, g % 10, 'p' || g FROM generate_series(1, 5000) g`);
    await sql(services.databaseUrl, `CREATE TABLE quiet (id int PRIMARY KEY)`);
    await sql(services.databaseUrl, `INSERT INTO quiet SELECT generate_series(1, 10)`);
  });
  after(async () => {
    await services.cleanup();
  });

  it('on PostgreSQL 13: a table joining an existing slot is refused with the version and --snapshot none', { skip: !WITHOUT_WATERMARKS && 'runs on PostgreSQL 13 only' }, async () => {
    assert.equal((await cdc('--table', 'public.user_logins')).code, 0);
    const refused = await cdc('--table', 'public.user_logins', '--table', 'public.lines');
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /needs PostgreSQL 14 or later \(this server is 13\.\d+\)\. Pass --snapshot none/);
  });

  it('snapshots the added table incrementally through the same slot, and only it', { skip: WITHOUT_WATERMARKS && 'incremental snapshots need PostgreSQL 14+' }, async () => {
    const first = await cdc('--table', 'public.user_logins');
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^sent 50 events \(50 snapshot rows\)/);
    const slotBefore = (await slotRow(services.databaseUrl, 'grow'))!;
    await sql(services.databaseUrl, `UPDATE lines SET product = 'changed' WHERE order_id = 7`);

    const second = await cdc('--table', 'public.user_logins', '--table', 'public.lines');
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /^sent 5000 events \(5000 snapshot rows\)/, 'every row of lines, none of user_logins again');
    const lines = await readTopic(services.kafkaBrokers, topic('lines'));
    assert.equal(new Set(lines.map((m) => m.key)).size, 5000);
    assert.ok(lines.every((m) => m.value.op === 'r' && m.value.source.snapshot === 'incremental'));
    assert.equal(lines.find((m) => m.key === '{"order_id":7,"line":3}')!.value.after.product, 'changed');
    assert.equal((await readTopic(services.kafkaBrokers, topic('user_logins'))).length, 50);
    const slotAfter = (await slotRow(services.databaseUrl, 'grow'))!;
    assert.ok(parseLsn(slotAfter.confirmed_flush_lsn) >= parseLsn(slotBefore.confirmed_flush_lsn), 'the same slot, moved forward');
    assert.deepEqual(
      (await sql(services.databaseUrl, 'SELECT slot_name FROM pg_replication_slots WHERE database = current_database()')).rows.map((r) => r.slot_name),
      ['grow'],
      'no new slot',
    );

    const again = await cdc('--table', 'public.user_logins', '--table', 'public.lines');
    assert.match(again.stdout, /^sent 0 events/, 'done once, not again');
  });

  it('--snapshot none adds a table without reading its rows', { skip: WITHOUT_WATERMARKS && 'incremental snapshots need PostgreSQL 14+' }, async () => {
    const result = await cdc('--table', 'public.user_logins', '--table', 'public.lines', '--table', 'public.quiet', '--snapshot', 'none');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^sent 0 events/);
    const requests = await sql(services.databaseUrl, `SELECT table_name FROM walbridge_snapshot_requests WHERE slot = 'grow' ORDER BY 1`);
    assert.deepEqual(requests.rows.map((r) => r.table_name), ['lines']);
  });
});
