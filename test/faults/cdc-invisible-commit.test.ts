/**
 * A commit streamed before other sessions can see it (docs/design.md,
 * "sent_to_kafka"). PostgreSQL flushes a commit record, which the walsender
 * streams at once, before the transaction leaves the running set. A
 * synchronous standby that never answers holds a committing transaction
 * exactly there, for as long as the test likes (the same moment a busy
 * machine opens for milliseconds). cdc sends the insert to Kafka at once; it
 * must not mark it while it is invisible (the UPDATE would find no row and
 * leave it unmarked for good, without an error) nor confirm past it; it
 * waits, says so, and marks the row once it is visible.
 *
 * Only sessions that ask for it wait: the cluster's default becomes
 * `synchronous_commit = local` first. The file still runs alone
 * (scripts/test.sh), and both settings are reset whatever happens.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { parseLsn } from '../../src/core/lsn.js';
import { cliEnv, startCli, type RunningCli } from '../support/cli.js';
import { createUserLogins, readTopic, slotRow, sql, waitFor } from '../support/cdc.js';
import { isolatedServices, superuserUrl, type IsolatedServices } from '../support/services.js';

const SLOT = 'invisible';

const ABSENT_STANDBY = 'walbridge_test_absent_standby';

/** Applies cluster settings (null resets one) with a reload. */
async function clusterSettings(settings: Record<string, string | null>): Promise<void> {
  for (const [name, value] of Object.entries(settings)) {
    await sql(superuserUrl()!, value === null ? `ALTER SYSTEM RESET ${name}` : `ALTER SYSTEM SET ${name} = '${value}'`);
  }
  await sql(superuserUrl()!, 'SELECT pg_reload_conf()');
}

/** Starts a transaction of `url` that commits with synchronous_commit = on; resolves with its backend PID once it waits for the standby. */
async function commitWaitingForStandby(client: pg.Client, text: string): Promise<{ pid: number; committed: Promise<unknown> }> {
  await client.query('SET synchronous_commit = on');
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const committed = client.query(text);
  committed.catch(() => {}); // awaited by the caller
  return { pid, committed };
}

describe('a committed insert not yet visible to other sessions', { skip: superuserUrl() === undefined && 'needs the test stack\'s superuser to set synchronous_standby_names' }, () => {
  let services: IsolatedServices;
  let cdc: RunningCli | null = null;
  before(async () => {
    services = await isolatedServices('cdc_invisible');
    await createUserLogins(services.databaseUrl);
  });
  after(async () => {
    try {
      await clusterSettings({ synchronous_standby_names: null, synchronous_commit: null }); // whatever happened
    } finally {
      if (cdc && cdc.child.exitCode === null) {
        cdc.child.kill('SIGKILL');
        await cdc.exited.catch(() => {}); // its slot is released only once it is gone
      }
      await services?.cleanup();
    }
  });

  it('is sent at once, marked only once visible, and nothing is confirmed past it meanwhile', async () => {
    cdc = startCli('cdc', ['start', '--slot', SLOT, '--topic-prefix', services.topicPrefix], cliEnv(services));
    await waitFor('the slot to be active', async () => ((await slotRow(services.databaseUrl, SLOT))?.active_pid ? true : undefined));
    await sql(services.databaseUrl, 'CREATE TABLE sync_probe (n int)'); // not captured: its commits never reach cdc's events

    await clusterSettings({ synchronous_commit: 'local' });
    await clusterSettings({ synchronous_standby_names: ABSENT_STANDBY });
    const waitsForStandby = async (pid: number): Promise<boolean> =>
      (await sql(services.databaseUrl, 'SELECT wait_event FROM pg_stat_activity WHERE pid = $1', [pid])).rows[0]?.wait_event === 'SyncRep';
    // The checkpointer applies the standby setting a moment after the reload: probe until a commit waits.
    await waitFor('a commit to wait for the absent standby', async () => {
      const probe = new pg.Client({ connectionString: services.databaseUrl, application_name: 'sync-probe' });
      await probe.connect();
      try {
        const { pid, committed } = await commitWaitingForStandby(probe, 'INSERT INTO sync_probe VALUES (1)');
        const waiting = await waitFor('the probe', async () => ((await waitsForStandby(pid)) ? true : undefined), 1_000).catch(() => false);
        if (waiting) await sql(services.databaseUrl, 'SELECT pg_cancel_backend($1)', [pid]); // committed locally; the wait ends
        await committed;
        return waiting || undefined;
      } finally {
        await probe.end();
      }
    });
    const writer = new pg.Client({ connectionString: services.databaseUrl, application_name: 'invisible-writer' });
    await writer.connect();
    let inserting: Promise<unknown> | null = null;
    try {
      const { pid, committed } = await commitWaitingForStandby(writer, `INSERT INTO user_logins (id, username, event_type, event_time) VALUES (1, 'hidden', 'login', now())`);
      inserting = committed;
      await waitFor('the insert to wait for the standby', async () => ((await waitsForStandby(pid)) ? true : undefined));

      const topic = `${services.topicPrefix}.public.user_logins`;
      const sent = await waitFor('the insert in Kafka, though its commit has not returned', async () =>
        (await readTopic(services.kafkaBrokers, topic).catch(() => [])).find((m) => m.value?.op === 'c'));
      assert.equal(sent.value.after.id, 1);
      await waitFor('cdc to say it waits for the transaction to become visible', async () =>
        (/marking sent_to_kafka waits for 1 streamed transaction\(s\) to become visible/.test(cdc!.output().stderr) ? true : undefined), 30_000);
      assert.equal((await sql(services.databaseUrl, 'SELECT count(*)::int AS n FROM user_logins')).rows[0].n, 0, 'the row is invisible to other sessions');
      const confirmed = parseLsn((await slotRow(services.databaseUrl, SLOT))!.confirmed_flush_lsn);
      assert.ok(confirmed <= BigInt(sent.value.source.lsn), 'nothing is confirmed past an unmarked row');

      await clusterSettings({ synchronous_standby_names: null });
      await inserting;
      inserting = null;
    } finally {
      if (inserting) await clusterSettings({ synchronous_standby_names: null }); // released, so the session can end
      await writer.end();
    }
    await waitFor('the row to be marked', async () =>
      ((await sql(services.databaseUrl, 'SELECT sent_to_kafka FROM user_logins WHERE id = 1')).rows[0]?.sent_to_kafka === true ? true : undefined), 30_000);
    const written = parseLsn((await sql(services.databaseUrl, 'SELECT pg_current_wal_lsn()::text AS l')).rows[0].l);
    await waitFor('cdc to confirm past it', async () => (parseLsn((await slotRow(services.databaseUrl, SLOT))!.confirmed_flush_lsn) >= written ? true : undefined), 60_000);
    cdc.child.kill('SIGINT');
    const stopped = await cdc.exited;
    assert.equal(stopped.code, 0, stopped.stderr);
  });
});
