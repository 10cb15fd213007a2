/** Each operation's envelope, field by field, from real PostgreSQL through real Kafka. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseLsn } from '../../src/core/lsn.js';
import { cliEnv, runCli } from '../support/cli.js';
import { createUserLogins, readTopic, sql, withClient } from '../support/cdc.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

const SLOT = 'envelopes';

describe('cdc envelopes', () => {
  let services: IsolatedServices;
  let topic: string;
  const cdc = (...args: string[]) =>
    runCli('cdc', ['start', '--slot', SLOT, '--topic-prefix', services.topicPrefix, '--once', ...args], cliEnv(services));

  before(async () => {
    services = await isolatedServices('cdc_env');
    topic = `${services.topicPrefix}.public.user_logins`;
    await createUserLogins(services.databaseUrl);
  });
  after(async () => {
    await services.cleanup();
  });

  it('snapshot: unsent rows as op r, versioned at the consistent point, then marked; a second run sends nothing', async () => {
    await sql(services.databaseUrl, `INSERT INTO user_logins (username, event_type, event_time, sent_to_kafka) VALUES
      ('alice', 'login', '2024-05-01 10:00:00.123456', false), ('bob', 'register', '1999-12-31 23:59:59.999999', false),
      ('carol', 'login', '2024-05-02 00:00:00', true)`);
    const first = await cdc();
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`^sent 2 events \\(2 snapshot rows\\) from slot ${SLOT} to ${topic.replace(/\./g, '\\.')}; confirmed [0-9A-F]+/[0-9A-F]+\\n$`));
    const messages = await readTopic(services.kafkaBrokers, topic);
    assert.equal(messages.length, 2);
    const slot = (await sql(services.databaseUrl, 'SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1', [SLOT])).rows[0];
    const alice = messages.find((m) => m.key === '{"id":1}')!;
    assert.deepEqual(alice.value.after, { id: 1, username: 'alice', event_type: 'login', event_time: 1714557600123456, sent_to_kafka: false });
    assert.equal(alice.value.before, null);
    assert.equal(alice.value.op, 'r');
    assert.equal(alice.value.transaction, null);
    const bob = messages.find((m) => m.key === '{"id":2}')!;
    assert.equal(bob.value.after.event_time, 946684799999999);
    const snapshotFlags = messages.map((m) => m.value.source.snapshot).sort();
    assert.deepEqual(snapshotFlags, ['first', 'last'], 'Debezium marks the first and the last snapshot row');
    for (const m of messages) {
      const s = m.value.source;
      assert.equal(s.connector, 'postgresql');
      assert.equal(s.name, services.topicPrefix);
      assert.equal(s.db, services.name);
      assert.equal(s.schema, 'public');
      assert.equal(s.table, 'user_logins');
      assert.equal(typeof s.txId, 'number', 'the snapshot transaction, as Debezium sends it');
      assert.equal(s.sequence, `[null,"${s.lsn}"]`);
      assert.equal(typeof s.ts_us, 'number');
      assert.equal(s.commit_lsn, messages[0]!.value.source.commit_lsn, 'one version for the whole snapshot');
      assert.equal(BigInt(s.lsn), parseLsn(s.commit_lsn));
      assert.equal(typeof m.value.ts_ms, 'number');
    }
    // Nothing was streamed, so the slot sits at (or, idle, past) the consistent point.
    assert.ok(parseLsn(slot!.lsn) >= parseLsn(alice.value.source.commit_lsn));
    const flags = await sql(services.databaseUrl, 'SELECT id, sent_to_kafka FROM user_logins ORDER BY id');
    assert.deepEqual(flags.rows, [{ id: 1, sent_to_kafka: true }, { id: 2, sent_to_kafka: true }, { id: 3, sent_to_kafka: true }]);

    const second = await cdc();
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /^sent 0 events from slot/);
    assert.equal((await readTopic(services.kafkaBrokers, topic)).length, 2);
  });

  it('stream: insert, update, delete, truncate envelopes with the commit LSN as version', async () => {
    const lsnAfter: bigint[] = [];
    await withClient(services.databaseUrl, async (client) => {
      const mark = async () => lsnAfter.push(parseLsn((await client.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l));
      await mark();
      await client.query(`INSERT INTO user_logins (id, username, event_type, event_time) VALUES (10, 'dave', 'login', '2024-06-01 12:34:56.000001')`);
      await mark();
      await client.query('BEGIN');
      await client.query(`UPDATE user_logins SET event_type = 'logout' WHERE id = 10`);
      await client.query(`UPDATE user_logins SET username = 'dave2' WHERE id = 10`);
      await client.query('COMMIT');
      await mark();
      await client.query('DELETE FROM user_logins WHERE id = 10');
      await mark();
      await client.query('TRUNCATE user_logins');
      await mark();
    });
    const run = await cdc();
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^sent 5 events \(1 insert, 2 updates, 1 delete, 1 truncate\)/);
    const events = (await readTopic(services.kafkaBrokers, topic)).slice(2).map((m) => ({ ...m.value, key: m.key }));
    assert.deepEqual(events.map((e) => e.op), ['c', 'u', 'u', 'd', 't']);
    const [insert, update1, update2, del, truncate] = events;

    assert.equal(insert.key, '{"id":10}');
    assert.equal(insert.before, null);
    assert.deepEqual(insert.after, { id: 10, username: 'dave', event_type: 'login', event_time: 1717245296000001, sent_to_kafka: false });

    assert.deepEqual(update1.before, { id: 10, username: 'dave', event_type: 'login', event_time: 1717245296000001, sent_to_kafka: false });
    assert.deepEqual(update1.after, { id: 10, username: 'dave', event_type: 'logout', event_time: 1717245296000001, sent_to_kafka: false });
    assert.deepEqual(update2.after, { id: 10, username: 'dave2', event_type: 'logout', event_time: 1717245296000001, sent_to_kafka: false });
    assert.equal(update1.source.commit_lsn, update2.source.commit_lsn, 'one transaction, one version');
    assert.equal(update1.source.txId, update2.source.txId);
    assert.deepEqual([update1.transaction.total_order, update2.transaction.total_order], [1, 2]);
    assert.ok(BigInt(update1.source.lsn) < BigInt(update2.source.lsn));

    assert.equal(del.key, '{"id":10}');
    assert.equal(del.after, null);
    assert.equal(del.before.id, 10);
    assert.equal(del.before.username, 'dave2');

    assert.equal(truncate.key, null);
    assert.equal(truncate.before, null);
    assert.equal(truncate.after, null);

    // Version = the commit LSN: inside each transaction's WAL window, strictly increasing, after every change of its transaction.
    for (const [i, e] of [insert, update1, del, truncate].entries()) {
      const version = parseLsn(e.source.commit_lsn);
      assert.ok(version > lsnAfter[i]! && version < lsnAfter[i + 1]!, `${e.op}: ${e.source.commit_lsn} within its transaction`);
      assert.ok(BigInt(e.source.lsn) <= version);
      assert.equal(e.source.snapshot, 'false');
      assert.equal(typeof e.source.txId, 'number');
      assert.ok(e.source.ts_ms > Date.now() - 600_000);
    }
    // The inserted row was flagged; that marking never came back as an event.
    const again = await cdc();
    assert.match(again.stdout, /^sent 0 events/);
  });

  it('clean slate: UPDATE … SET sent_to_kafka = FALSE sends the rows again, once', async () => {
    await sql(services.databaseUrl, `INSERT INTO user_logins (username, event_type, event_time) VALUES ('erin', 'login', now()), ('frank', 'login', now())`);
    assert.match((await cdc()).stdout, /^sent 2 events \(2 inserts\)/);
    assert.match((await cdc()).stdout, /^sent 0 events/);
    await sql(services.databaseUrl, 'UPDATE user_logins SET sent_to_kafka = FALSE');
    const reset = await cdc();
    assert.match(reset.stdout, /^sent 2 events \(2 updates\)/);
    assert.equal((await sql(services.databaseUrl, 'SELECT count(*)::int AS n FROM user_logins WHERE NOT sent_to_kafka')).rows[0].n, 0);
    assert.match((await cdc()).stdout, /^sent 0 events/, 'the marking does not loop');
  });

  it('primary key change: a delete of the old key, then an insert of the new key, both at the commit LSN', async () => {
    await sql(services.databaseUrl, `INSERT INTO user_logins (id, username, event_type, event_time) VALUES (20, 'gina', 'login', '2024-06-01 00:00:00')`);
    assert.match((await cdc()).stdout, /^sent 1 event \(1 insert\)/);
    const seen = (await readTopic(services.kafkaBrokers, topic)).length;
    const lsnBefore = parseLsn((await sql(services.databaseUrl, 'SELECT pg_current_wal_lsn()::text AS l')).rows[0].l);
    await sql(services.databaseUrl, `UPDATE user_logins SET id = 21, event_type = 'renamed' WHERE id = 20`);
    const run = await cdc();
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^sent 2 events \(1 insert, 1 delete\)/);
    const [del, ins, ...rest] = (await readTopic(services.kafkaBrokers, topic)).slice(seen);
    assert.equal(rest.length, 0);
    assert.equal(del!.key, '{"id":20}');
    assert.equal(del!.value.op, 'd');
    assert.deepEqual(del!.value.before, { id: 20, username: 'gina', event_type: 'login', event_time: 1717200000000000, sent_to_kafka: true });
    assert.equal(del!.value.after, null);
    assert.equal(ins!.key, '{"id":21}');
    assert.equal(ins!.value.op, 'c');
    assert.equal(ins!.value.before, null);
    assert.deepEqual(ins!.value.after, { id: 21, username: 'gina', event_type: 'renamed', event_time: 1717200000000000, sent_to_kafka: true });
    assert.equal(del!.value.source.commit_lsn, ins!.value.source.commit_lsn, 'one transaction, one version');
    assert.ok(parseLsn(del!.value.source.commit_lsn) > lsnBefore);
    assert.deepEqual([del!.value.transaction.total_order, ins!.value.transaction.total_order], [1, 2]);
    assert.match((await cdc()).stdout, /^sent 0 events/);
  });

  it('cdc status reports the slot, publication and topic offsets; drop needs --yes', async () => {
    const status = await runCli('cdc', ['status', '--slot', SLOT, '--topic-prefix', services.topicPrefix, '--json'], cliEnv(services));
    assert.equal(status.code, 0, status.stderr);
    const [report] = JSON.parse(status.stdout);
    assert.equal(report.slot, SLOT);
    assert.equal(report.active, false);
    assert.deepEqual(report.publicationTables, ['public.user_logins']);
    assert.match(report.confirmedFlushLsn, /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.equal(report.topics[0].topic, topic);
    assert.ok(Number(report.topics[0].endOffsets[0].high) >= 11);

    const refused = await runCli('cdc', ['drop', '--slot', SLOT], cliEnv(services));
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /add --yes/);
    const dropped = await runCli('cdc', ['drop', '--slot', SLOT, '--yes'], cliEnv(services));
    assert.equal(dropped.code, 0, dropped.stderr);
    assert.match(dropped.stdout, /slot envelopes dropped; publication walbridge_envelopes dropped; origins walbridge_envelopes/);
    assert.equal((await sql(services.databaseUrl, 'SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [SLOT])).rowCount, 0);
  });
});
