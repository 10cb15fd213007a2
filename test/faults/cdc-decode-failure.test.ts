/**
 * A change that cannot be decoded stops cdc (exit 1) without confirming the
 * transaction it belongs to: pg-protocol hands the rest of the socket chunk
 * (that transaction's Commit included) on after the failure, and the final
 * standby status on stop must not confirm it either.
 *
 * The undecodable change: REPLICA IDENTITY set back to DEFAULT behind cdc's
 * back, then an update that leaves a TOASTed value unchanged: PostgreSQL logs
 * no old row, so the value is not in the WAL at all.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { formatLsn, parseLsn } from '../../src/core/lsn.js';
import { cliEnv, runCli } from '../support/cli.js';
import { createUserLogins, readTopic, slotRow, sql } from '../support/cdc.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

const SLOT = 'decfail';

describe('cdc decode failure', () => {
  let services: IsolatedServices;
  const cdc = (...args: string[]) =>
    runCli('cdc', ['start', '--slot', SLOT, '--topic-prefix', services.topicPrefix, '--once', ...args], cliEnv(services));
  const walLsn = async () => parseLsn((await sql(services.databaseUrl, 'SELECT pg_current_wal_lsn()::text AS l')).rows[0].l);
  const confirmed = async () => parseLsn((await slotRow(services.databaseUrl, SLOT))!.confirmed_flush_lsn);

  before(async () => {
    services = await isolatedServices('cdc_decfail');
    await createUserLogins(services.databaseUrl);
  });
  after(async () => {
    await services.cleanup();
  });

  it('exits 1 and does not confirm the failed transaction; a restart reads it again', async () => {
    const long = randomBytes(4096).toString('base64'); // incompressible: stored out of line
    await sql(services.databaseUrl, `INSERT INTO user_logins (id, username, event_type, event_time) VALUES (100, $1, 'login', now())`, [long]);
    const first = await cdc(); // slot, snapshot (the row), REPLICA IDENTITY FULL
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^sent 1 event \(1 snapshot row\)/);

    await sql(services.databaseUrl, 'ALTER TABLE user_logins REPLICA IDENTITY DEFAULT');
    const beforeUpdate = await walLsn();
    await sql(services.databaseUrl, `UPDATE user_logins SET event_type = 'logout' WHERE id = 100`);
    const afterUpdate = await walLsn();

    const failed = await cdc();
    assert.equal(failed.code, 1, failed.stderr);
    assert.match(failed.stderr, /unchanged TOAST value/);
    assert.match(failed.stderr, /nothing from it on was confirmed/);
    const held = await confirmed();
    assert.ok(held <= beforeUpdate, `the slot (${formatLsn(held)}) did not pass the failed transaction (began after ${formatLsn(beforeUpdate)}, ended by ${formatLsn(afterUpdate)})`);

    // Fixing the identity does not put the missing value into WAL already written:
    // the restart reads the same transaction again (it was not skipped) and refuses again.
    await sql(services.databaseUrl, 'ALTER TABLE user_logins REPLICA IDENTITY FULL');
    const again = await cdc();
    assert.equal(again.code, 1, again.stderr);
    assert.match(again.stderr, /unchanged TOAST value/);
    assert.equal(await confirmed(), held);

    // The operator's way out: skip that one transaction, and send the row again (clean slate).
    const commitLsn = /committed at ([0-9A-F]+\/[0-9A-F]+)/.exec(again.stderr)?.[1];
    assert.ok(commitLsn, again.stderr);
    assert.ok(parseLsn(commitLsn) > beforeUpdate && parseLsn(commitLsn) < afterUpdate);
    await sql(services.databaseUrl, 'UPDATE user_logins SET sent_to_kafka = false WHERE id = 100');
    const resent = await cdc('--from-lsn', formatLsn(parseLsn(commitLsn) + 1n));
    assert.equal(resent.code, 0, resent.stderr);
    assert.match(resent.stdout, /^sent 1 event \(1 update\)/);
    const last = (await readTopic(services.kafkaBrokers, `${services.topicPrefix}.public.user_logins`)).at(-1)!;
    assert.equal(last.value.after.event_type, 'logout');
    assert.equal(last.value.after.username, long);
    assert.ok((await confirmed()) >= afterUpdate);
  });
});
