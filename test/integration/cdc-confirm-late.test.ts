/**
 * "Confirm late, never early" as an ordering, observed from PostgreSQL: an
 * event already acknowledged by Kafka is not confirmed while its
 * sent_to_kafka follow-up cannot commit (a user's transaction holds the row
 * lock); once the lock is released, the marking commits and the slot moves.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { formatLsn, parseLsn } from '../../src/core/lsn.js';
import { cliEnv, runCli, startCli, type RunningCli } from '../support/cli.js';
import { createUserLogins, readTopic, slotRow, sql, waitFor } from '../support/cdc.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

const SLOT = 'late';

describe('cdc confirms late', () => {
  let services: IsolatedServices;
  let running: RunningCli | null = null;
  let locker: pg.Client | null = null;
  const confirmed = async () => parseLsn((await slotRow(services.databaseUrl, SLOT))!.confirmed_flush_lsn);

  before(async () => {
    services = await isolatedServices('cdc_late');
    await createUserLogins(services.databaseUrl);
  });
  after(async () => {
    await locker?.end().catch(() => {});
    if (running && running.child.exitCode === null) running.child.kill('SIGKILL');
    await services.cleanup();
  });

  it('an acknowledged event whose sent_to_kafka update is blocked is not confirmed until that update commits', async () => {
    const created = await runCli('cdc', ['start', '--slot', SLOT, '--topic-prefix', services.topicPrefix, '--once', '--snapshot', 'none'], cliEnv(services));
    assert.equal(created.code, 0, created.stderr);

    // A committed insert, whose row a user's transaction then locks: the marker's UPDATE of it will wait.
    await sql(services.databaseUrl, `INSERT INTO user_logins (id, username, event_type, event_time) VALUES (1, 'alice', 'login', now())`);
    locker = new pg.Client({ connectionString: services.databaseUrl });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('SELECT * FROM user_logins WHERE id = 1 FOR UPDATE');

    running = startCli('cdc', ['start', '--slot', SLOT, '--topic-prefix', services.topicPrefix], cliEnv(services));
    await waitFor('the marker to wait for the row lock', async () =>
      (await sql(services.databaseUrl, `SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, [`walbridge-marker-${SLOT}`])).rowCount
        ? true : undefined);
    const [event] = await readTopic(services.kafkaBrokers, `${services.topicPrefix}.public.user_logins`);
    assert.equal(event!.value.op, 'c', 'Kafka has acknowledged the insert');
    const commitLsn = parseLsn(event!.value.source.commit_lsn);
    // Several status rounds (each delivery or keepalive would send one within 100 ms).
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const held = await confirmed();
    assert.ok(held <= commitLsn, `confirmed ${formatLsn(held)} must stay before the insert's commit (${formatLsn(commitLsn)}) while its marking is blocked`);
    assert.equal((await sql(services.databaseUrl, 'SELECT sent_to_kafka FROM user_logins WHERE id = 1')).rows[0].sent_to_kafka, false);

    await locker.query('COMMIT');
    await waitFor('the slot to confirm the insert', async () => ((await confirmed()) > commitLsn ? true : undefined), 20_000);
    assert.equal((await sql(services.databaseUrl, 'SELECT sent_to_kafka FROM user_logins WHERE id = 1')).rows[0].sent_to_kafka, true);

    running.child.kill('SIGINT');
    const stopped = await running.exited;
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, /^sent 1 event \(1 insert\)/);
  });
});
