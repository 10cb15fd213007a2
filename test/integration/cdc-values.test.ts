/**
 * Lossless values (int8 above 2^53, microsecond timestamps, numeric, bytea…),
 * an unchanged TOASTed column, and a transaction open across slot creation.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { parseLsn } from '../../src/core/lsn.js';
import { cliEnv, runCli, startCli } from '../support/cli.js';
import { createUserLogins, readTopic, sql, waitFor, withClient } from '../support/cdc.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

describe('cdc values', () => {
  let services: IsolatedServices;
  const cdc = (slot: string, ...args: string[]) =>
    runCli('cdc', ['start', '--slot', slot, '--topic-prefix', services.topicPrefix, '--once', ...args], cliEnv(services));

  before(async () => {
    services = await isolatedServices('cdc_values');
    await createUserLogins(services.databaseUrl);
  });
  after(async () => {
    await services.cleanup();
  });

  it('maps types losslessly: int8 above 2^53, timestamp µs, timestamptz UTC, date, numeric, bytea, bool, null', async () => {
    await sql(services.databaseUrl, `CREATE TABLE amounts (
      id bigint PRIMARY KEY, amount bigint, price numeric(30,10), at timestamp, at_tz timestamptz, day date,
      blob bytea, ok boolean, ratio double precision, note text, doc jsonb)`);
    const row = `(9007199254740993, -9223372036854775808, 12345678901234567890.0123456789, '2024-05-01 10:00:00.000001',
      '2024-05-01 15:30:00.000007+05:30', '1969-12-31', '\\x00ff7f', true, 0.1, 'naïve "quoted"', '{"a": [1, 2]}')`;
    await withClient(services.databaseUrl, async (client) => {
      await client.query(`SET TimeZone = 'Asia/Kolkata'`); // the writer's zone must not matter
      await client.query(`INSERT INTO amounts VALUES ${row}`); // before the slot: the snapshot reads it
    });
    const snapshot = await cdc('amounts', '--table', 'public.amounts', '--snapshot', 'all');
    assert.equal(snapshot.code, 0, snapshot.stderr);
    await sql(services.databaseUrl, `INSERT INTO amounts VALUES ${row.replace('9007199254740993', '9007199254740995')}, (1, null, null, null, null, null, null, null, null, null, null)`);
    const stream = await cdc('amounts', '--table', 'public.amounts');
    assert.equal(stream.code, 0, stream.stderr);
    assert.match(stream.stdout, /^sent 2 events \(2 inserts\)/);
    const messages = await readTopic(services.kafkaBrokers, `${services.topicPrefix}.public.amounts`);
    assert.deepEqual(messages.map((m) => m.key), ['{"id":9007199254740993}', '{"id":9007199254740995}', '{"id":1}']);
    for (const m of messages.slice(0, 2)) {
      const id = m.key === '{"id":9007199254740993}' ? '9007199254740993' : '9007199254740995';
      assert.ok(m.raw.includes(`"after":{"id":${id},"amount":-9223372036854775808,`), m.raw);
      const after = m.value.after;
      assert.equal(after.price, '12345678901234567890.0123456789');
      assert.equal(after.at, 1714557600000001);
      assert.equal(after.at_tz, '2024-05-01T10:00:00.000007Z');
      assert.equal(after.day, -1);
      assert.equal(after.blob, Buffer.from([0, 255, 127]).toString('base64'));
      assert.equal(after.ok, true);
      assert.equal(after.ratio, 0.1);
      assert.equal(after.note, 'naïve "quoted"');
      assert.equal(after.doc, '{"a": [1, 2]}');
    }
    assert.equal(messages[0]!.value.op, 'r');
    assert.equal(messages[1]!.value.op, 'c');
    assert.deepEqual(messages[2]!.value.after, { id: 1, amount: null, price: null, at: null, at_tz: null, day: null, blob: null, ok: null, ratio: null, note: null, doc: null });
  });

  it('an update that leaves a TOASTed (>2 KB, stored out of line) column unchanged keeps its value', async () => {
    const long = randomBytes(4096).toString('base64'); // incompressible: really toasted out of line
    await sql(services.databaseUrl, `INSERT INTO user_logins (id, username, event_type, event_time) VALUES (100, $1, 'login', now())`, [long]);
    const toasted = await sql(services.databaseUrl, `SELECT pg_column_size(username) AS stored, (SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = 'user_logins') AS toast FROM user_logins WHERE id = 100`);
    assert.ok(Number(toasted.rows[0].toast) > 0, 'the value lives in the TOAST table');
    assert.equal((await cdc('toast', '--snapshot', 'none')).code, 0); // slot created; REPLICA IDENTITY FULL set
    await sql(services.databaseUrl, `UPDATE user_logins SET event_type = 'logout' WHERE id = 100`);
    const run = await cdc('toast');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^sent 1 event \(1 update\)/);
    const [update] = await readTopic(services.kafkaBrokers, `${services.topicPrefix}.public.user_logins`);
    assert.equal(update!.value.op, 'u');
    assert.equal(update!.value.after.event_type, 'logout');
    assert.equal(update!.value.after.username, long);
    assert.equal(update!.value.before.username, long);
    await runCli('cdc', ['drop', '--slot', 'toast', '--yes'], cliEnv(services));
  });

  it('a transaction open across slot creation commits after the consistent point and wins over the snapshot row', async () => {
    await sql(services.databaseUrl, `CREATE TABLE side (n int)`);
    await sql(services.databaseUrl, `TRUNCATE user_logins`);
    await sql(services.databaseUrl, `INSERT INTO user_logins (id, username, event_type, event_time, sent_to_kafka) VALUES (1, 'before', 'login', now(), true)`);
    const connect = async () => {
      const client = new pg.Client({ connectionString: services.databaseUrl });
      await client.connect();
      return client;
    };
    const [t0, t3, t4] = await Promise.all([connect(), connect(), connect()]);
    const waitingOn = (xid: string) =>
      waitFor(`slot creation waiting on ${xid}`, async () =>
        (await sql(services.databaseUrl, `SELECT 1 FROM pg_locks WHERE locktype = 'transactionid' AND transactionid::text = $1 AND NOT granted`, [xid])).rowCount ? true : undefined);
    const xidOf = async (client: pg.Client) => (await client.query('SELECT pg_current_xact_id()::text AS x')).rows[0].x as string;
    try {
      // Slot creation waits for T0, then (snapshot FULL) for T3; T4 starts after that point,
      // so the slot becomes consistent while T4 is still open: its change is before the
      // consistent point, its commit after.
      await t0.query('BEGIN');
      await t0.query('INSERT INTO side VALUES (0)');
      const x0 = await xidOf(t0);
      const creating = startCli('cdc', ['start', '--slot', 'across', '--topic-prefix', `${services.topicPrefix}x`, '--once', '--snapshot', 'all'], cliEnv(services));
      await waitingOn(x0);
      await t3.query('BEGIN');
      await t3.query('INSERT INTO side VALUES (3)');
      const x3 = await xidOf(t3);
      await t0.query('COMMIT');
      await waitingOn(x3);
      await t4.query('BEGIN');
      await t4.query(`UPDATE user_logins SET username = 'during' WHERE id = 1`);
      await t3.query('COMMIT');
      const first = await creating.exited;
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, /^sent 1 event \(1 snapshot row\)/);
      await t4.query('COMMIT');
    } finally {
      await Promise.all([t0.end(), t3.end(), t4.end()]);
    }
    const second = await runCli('cdc', ['start', '--slot', 'across', '--topic-prefix', `${services.topicPrefix}x`, '--once'], cliEnv(services));
    assert.match(second.stdout, /^sent 1 event \(1 update\)/);
    const [snapshotRow, update] = await readTopic(services.kafkaBrokers, `${services.topicPrefix}x.public.user_logins`);
    assert.equal(snapshotRow!.value.op, 'r');
    assert.equal(snapshotRow!.value.after.username, 'before', 'the open transaction is not in the snapshot');
    assert.equal(update!.value.op, 'u');
    assert.equal(update!.value.after.username, 'during');
    const consistentPoint = parseLsn(snapshotRow!.value.source.commit_lsn);
    assert.ok(BigInt(update!.value.source.lsn) < consistentPoint, 'the change itself sits before the consistent point');
    assert.ok(parseLsn(update!.value.source.commit_lsn) > consistentPoint, 'its version (commit LSN) is later than the snapshot row\'s');
  });
});
