/** The long-running mode: confirms as it goes, an idle slot advances, SIGINT stops it cleanly. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseLsn } from '../../src/core/lsn.js';
import { cliEnv, startCli, type RunningCli } from '../support/cli.js';
import { createUserLogins, readTopic, slotRow, sql, waitFor } from '../support/cdc.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

describe('cdc start (running)', () => {
  let services: IsolatedServices;
  let running: RunningCli;
  const confirmed = async () => parseLsn((await slotRow(services.databaseUrl, 'live'))!.confirmed_flush_lsn);

  before(async () => {
    services = await isolatedServices('cdc_run');
    await createUserLogins(services.databaseUrl);
    await sql(services.databaseUrl, 'CREATE TABLE side (n int)'); // not in the publication
    running = startCli('cdc', ['start', '--slot', 'live', '--topic-prefix', services.topicPrefix], cliEnv(services));
    await waitFor('the slot to be active', async () => ((await slotRow(services.databaseUrl, 'live'))?.active_pid ? true : undefined));
  });
  after(async () => {
    if (running.child.exitCode === null) running.child.kill('SIGKILL');
    await services.cleanup();
  });

  it('streams and confirms each transaction while running, after Kafka and the marking', async () => {
    for (let i = 0; i < 5; i++) {
      await sql(services.databaseUrl, `INSERT INTO user_logins (username, event_type, event_time) VALUES ($1, 'login', now())`, [`user${i}`]);
    }
    const written = parseLsn((await sql(services.databaseUrl, 'SELECT pg_current_wal_lsn()::text AS l')).rows[0].l);
    await waitFor('the slot to confirm the inserts', async () => ((await confirmed()) >= written ? true : undefined), 20_000);
    // Confirmed means: in Kafka and marked.
    assert.equal((await readTopic(services.kafkaBrokers, `${services.topicPrefix}.public.user_logins`)).length, 5);
    assert.equal((await sql(services.databaseUrl, 'SELECT count(*)::int AS n FROM user_logins WHERE NOT sent_to_kafka')).rows[0].n, 0);
  });

  it('an idle table on a busy server does not pin WAL: the slot follows other tables\' writes', async () => {
    const before = await confirmed();
    for (let i = 0; i < 5; i++) await sql(services.databaseUrl, 'INSERT INTO side SELECT generate_series(1, 2000)');
    const written = parseLsn((await sql(services.databaseUrl, 'SELECT pg_current_wal_lsn()::text AS l')).rows[0].l);
    assert.ok(written > before);
    await waitFor('the idle slot to advance', async () => ((await confirmed()) >= written ? true : undefined), 30_000);
  });

  it('SIGINT: flushes, confirms, exits 0 within seconds', async () => {
    await sql(services.databaseUrl, `INSERT INTO user_logins (username, event_type, event_time) VALUES ('last', 'login', now())`);
    await waitFor('the row to be marked', async () =>
      (await sql(services.databaseUrl, `SELECT sent_to_kafka FROM user_logins WHERE username = 'last'`)).rows[0]?.sent_to_kafka ? true : undefined);
    const stoppedAt = Date.now();
    running.child.kill('SIGINT');
    const result = await running.exited;
    assert.equal(result.code, 0, result.stderr);
    assert.ok(Date.now() - stoppedAt < 5_000);
    assert.match(result.stdout, /^sent 6 events \(6 inserts\) from slot live/);
    assert.equal((await slotRow(services.databaseUrl, 'live'))!.active_pid, null);
  });
});
