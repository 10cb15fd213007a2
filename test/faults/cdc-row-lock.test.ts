/**
 * Another session holds a row lock for 20 s on a row cdc must mark
 * sent_to_kafka: the marker's UPDATE gives up after its lock_timeout, cdc
 * logs the blocking PID with that session's facts, retries, and finishes by
 * itself once the lock is released; the row's LSN is confirmed only after it
 * is marked.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { cliEnv, runCli, startCli } from '../support/cli.js';
import { createUserLogins, slotRow, sql, waitFor } from '../support/cdc.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

const HOLD_MS = 20_000;

describe('a row lock held by another session', () => {
  let services: IsolatedServices;
  before(async () => {
    services = await isolatedServices('cdc_row_lock');
    await createUserLogins(services.databaseUrl);
  });
  after(async () => {
    await services.cleanup();
  });

  it('cdc logs the blocking PID and its session, retries, and continues once the lock is released', async () => {
    const args = ['start', '--slot', 'row_lock', '--topic-prefix', services.topicPrefix, '--once'];
    const env = cliEnv(services);
    const created = await runCli('cdc', args, env);
    assert.equal(created.code, 0, created.stderr);

    await sql(services.databaseUrl, `INSERT INTO user_logins (id, username, event_type, event_time) VALUES (1, 'locked', 'login', now())`);
    const holder = new pg.Client({ connectionString: services.databaseUrl, application_name: 'row-lock-holder' });
    await holder.connect();
    let released = 0;
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT * FROM user_logins WHERE id = 1 FOR UPDATE');
      const lockedAt = Date.now();
      const holderPid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      const confirmedBefore = (await slotRow(services.databaseUrl, 'row_lock'))!.confirmed_flush_lsn;

      const cdc = startCli('cdc', args, { ...env, LOG_LEVEL: 'info' });
      const blocked = new RegExp(`marking sent_to_kafka on public\\.user_logins waits for a row lock \\(lock_timeout 5s\\) held by PID ${holderPid} \\(application_name 'row-lock-holder', idle in transaction, transaction started [^;]+; last query: SELECT pg_backend_pid`);
      await waitFor('the blocking PID in the log', async () => (blocked.test(cdc.output().stderr) ? true : undefined), 60_000).catch((error: Error) => {
        throw new Error(`${error.message}; cdc's log:\n${cdc.output().stderr}`);
      });
      assert.equal(cdc.child.exitCode, null, 'cdc waits, it does not exit');
      assert.equal((await slotRow(services.databaseUrl, 'row_lock'))!.confirmed_flush_lsn, confirmedBefore, 'nothing is confirmed while the row is unmarked');
      // Held HOLD_MS in all (at least one more lock_timeout after the log line, so cdc retries at least once more).
      await new Promise((resolve) => setTimeout(resolve, Math.max(HOLD_MS - (Date.now() - lockedAt), 6_000)));
      await holder.query('COMMIT');
      released = Date.now();

      const result = await cdc.exited;
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^sent 1 events? \(1 insert\)/);
      assert.match(result.stderr, /the row lock was released; marked/);
      assert.ok(Date.now() - released < 15_000, 'continues within a lock_timeout or so of the release');
    } finally {
      if (!released) await holder.query('ROLLBACK').catch(() => {});
      await holder.end();
    }
    assert.equal((await sql(services.databaseUrl, 'SELECT count(*)::int AS n FROM user_logins WHERE NOT sent_to_kafka')).rows[0].n, 0);
  });
});
