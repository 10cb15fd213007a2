/**
 * kill -9 mid-stream, then restart: every committed change is in Kafka at
 * least once, and per key the first deliveries are in commit order.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { parseLsn } from '../../src/core/lsn.js';
import { cliEnv, runCli, startCli } from '../support/cli.js';
import { createUserLogins, readTopic, slotRow, sql, waitFor } from '../support/cdc.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

const KEYS = 20;
const TRANSACTIONS = 400;

describe('cdc crash and resume', () => {
  let services: IsolatedServices;
  before(async () => {
    services = await isolatedServices('cdc_crash');
    await createUserLogins(services.databaseUrl);
    await sql(services.databaseUrl, `INSERT INTO user_logins (id, username, event_type, event_time) SELECT g, 'u' || g, '0', now() FROM generate_series(1, ${KEYS}) g`);
  });
  after(async () => {
    await services.cleanup();
  });

  it('kill -9 while transactions stream in; the restart loses nothing and keeps per-key order', async (t) => {
    const args = ['start', '--slot', 'crash', '--topic-prefix', services.topicPrefix, '--partitions', '3'];
    const env = cliEnv(services);
    const first = startCli('cdc', args, env);
    await waitFor('the slot to be active', async () => ((await slotRow(services.databaseUrl, 'crash'))?.active_pid ? true : undefined));

    // The writer: each transaction sets event_type to its number on 3 keys (in key order, like the marker).
    const committed = new Map<number, number[]>(); // key → counters, in commit order
    const writer = new pg.Client({ connectionString: services.databaseUrl });
    await writer.connect();
    let killed = false;
    try {
      for (let t = 1; t <= TRANSACTIONS; t++) {
        const keys = [...new Set([1 + (t % KEYS), 1 + ((t * 7) % KEYS), 1 + ((t * 13) % KEYS)])].sort((a, b) => a - b);
        await writer.query('BEGIN');
        for (const key of keys) await writer.query('UPDATE user_logins SET event_type = $1 WHERE id = $2', [String(t), key]);
        await writer.query('COMMIT');
        for (const key of keys) committed.set(key, [...(committed.get(key) ?? []), t]);
        if (t === TRANSACTIONS / 2) {
          first.child.kill('SIGKILL');
          killed = true;
        }
      }
    } finally {
      await writer.end();
    }
    assert.ok(killed);
    const crashed = await first.exited;
    assert.equal(crashed.signal, 'SIGKILL');

    const resumed = await runCli('cdc', [...args, '--once'], env);
    assert.equal(resumed.code, 0, resumed.stderr);

    const messages = await readTopic(services.kafkaBrokers, `${services.topicPrefix}.public.user_logins`);
    const changes = [...committed.values()].reduce((sum, c) => sum + c.length, 0);
    t.diagnostic(`before the kill: ${crashed.stdout.length ? 'printed a summary (?)' : 'no summary'}; Kafka holds ${messages.length} messages for ${KEYS} snapshot rows + ${changes} committed changes (the rest are replays)`);
    const seen = new Map<number, { counter: number; version: bigint }[]>();
    for (const m of messages) {
      const key = JSON.parse(m.key!).id as number;
      const after = m.value.after;
      seen.set(key, [...(seen.get(key) ?? []), { counter: Number(after.event_type), version: parseLsn(m.value.source.commit_lsn) }]);
    }
    for (const [key, counters] of committed) {
      const events = seen.get(key) ?? [];
      const delivered = new Set(events.map((e) => e.counter));
      for (const counter of counters) assert.ok(delivered.has(counter), `key ${key}: committed change ${counter} is in Kafka`);
      // First deliveries in commit order (a replay after the crash may repeat a tail).
      const firsts: bigint[] = [];
      const versions = new Set<bigint>();
      for (const e of events) {
        if (!versions.has(e.version)) firsts.push(e.version);
        versions.add(e.version);
      }
      for (let i = 1; i < firsts.length; i++) assert.ok(firsts[i]! > firsts[i - 1]!, `key ${key}: first deliveries in commit order`);
      const final = events.reduce((a, b) => (b.version > a.version ? b : a));
      assert.equal(final.counter, counters.at(-1), `key ${key}: highest version is the final state`);
    }
    assert.equal((await sql(services.databaseUrl, 'SELECT count(*)::int AS n FROM user_logins WHERE NOT sent_to_kafka')).rows[0].n, 0);
    const again = await runCli('cdc', [...args, '--once'], env);
    assert.match(again.stdout, /^sent 0 events/);
  });

  it('kill -9 during the initial snapshot: the restart reads the rows not yet sent, none is lost', async () => {
    const rows = 150_000;
    await sql(services.databaseUrl, `CREATE TABLE bulk (id int PRIMARY KEY, payload text, sent_to_kafka boolean DEFAULT false)`);
    await sql(services.databaseUrl, `INSERT INTO bulk SELECT g, md5(g::text) FROM generate_series(1, ${rows}) g`);
    const args = ['start', '--slot', 'bulk', '--table', 'bulk', '--topic-prefix', services.topicPrefix, '--once'];
    const topic = `${services.topicPrefix}.public.bulk`;
    const first = startCli('cdc', args, cliEnv(services));
    // Mid-snapshot means some rows are already marked sent and some are not:
    // wait for the first marks, not just the first Kafka messages.
    await waitFor('the snapshot to be under way', async () => {
      const sent = (await sql(services.databaseUrl, 'SELECT count(*)::int AS n FROM bulk WHERE sent_to_kafka')).rows[0].n as number;
      return sent > 0 ? true : undefined;
    }, 60_000);
    first.child.kill('SIGKILL');
    await first.exited;
    const unsent = (await sql(services.databaseUrl, 'SELECT count(*)::int AS n FROM bulk WHERE NOT sent_to_kafka')).rows[0].n as number;
    assert.ok(unsent > 0 && unsent < rows, `killed mid-snapshot (${unsent} of ${rows} rows unsent)`);
    const status = await runCli('cdc', ['status', '--slot', 'bulk', '--publication', 'walbridge_bulk', '--topic-prefix', services.topicPrefix], cliEnv(services));
    assert.match(status.stdout, /initial snapshot unfinished \(--snapshot unsent/);

    const resumed = await runCli('cdc', args, cliEnv(services));
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, new RegExp(`^sent ${unsent} events \\(${unsent} snapshot rows\\)`));
    assert.equal((await sql(services.databaseUrl, 'SELECT count(*)::int AS n FROM bulk WHERE NOT sent_to_kafka')).rows[0].n, 0);
    const ids = new Set((await readTopic(services.kafkaBrokers, topic)).map((m) => m.key));
    assert.equal(ids.size, rows, 'every row is in Kafka');
    assert.match((await runCli('cdc', args, cliEnv(services))).stdout, /^sent 0 events/);
  });

  it('kill -9 during --snapshot all: the restart, without --snapshot, resumes it as all, and every row reaches Kafka', async () => {
    // Every row is already flagged sent: resumed as 'unsent', the snapshot would read nothing.
    const rows = 50_000;
    await sql(services.databaseUrl, `CREATE TABLE everything (id int PRIMARY KEY, payload text, sent_to_kafka boolean DEFAULT true)`);
    await sql(services.databaseUrl, `INSERT INTO everything SELECT g, md5(g::text) FROM generate_series(1, ${rows}) g`);
    const args = ['start', '--slot', 'everything', '--table', 'everything', '--topic-prefix', services.topicPrefix, '--once'];
    const first = startCli('cdc', [...args, '--snapshot', 'all'], cliEnv(services));
    // Kill as soon as the slot exists: the snapshot is then being read, and its flag is up.
    const deadline = Date.now() + 60_000;
    while (!(await slotRow(services.databaseUrl, 'everything'))) {
      assert.ok(Date.now() < deadline && first.child.exitCode === null, 'the slot was created');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    first.child.kill('SIGKILL');
    await first.exited;
    const status = await runCli('cdc', ['status', '--slot', 'everything', '--publication', 'walbridge_everything', '--topic-prefix', services.topicPrefix], cliEnv(services));
    assert.match(status.stdout, /initial snapshot unfinished \(--snapshot all/, 'killed before the snapshot finished');

    const resumed = await runCli('cdc', args, cliEnv(services));
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /reading the remaining rows again, as --snapshot all/);
    assert.match(resumed.stdout, new RegExp(`^sent ${rows} events \\(${rows} snapshot rows\\)`));
    const ids = new Set((await readTopic(services.kafkaBrokers, `${services.topicPrefix}.public.everything`)).map((m) => m.key));
    assert.equal(ids.size, rows, 'every row is in Kafka');
    assert.match((await runCli('cdc', args, cliEnv(services))).stdout, /^sent 0 events/, 'the flag is cleared');
  });
});
