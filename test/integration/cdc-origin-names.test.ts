/**
 * Replication-origin names cannot collide: slot `x`'s snapshot flag used to
 * be `walbridge_x_snapshot`, which is also the marker origin of a slot named
 * `x_snapshot`. Flags are now `walbridge:<slot>:snapshot[_all]` (a slot name
 * never holds `:`); a flag left under the old name by an interrupted snapshot
 * before an upgrade is still honoured, unless it is another slot's origin.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cliEnv, runCli } from '../support/cli.js';
import { createUserLogins, sql } from '../support/cdc.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

describe('replication-origin names', () => {
  let services: IsolatedServices;
  let suffix: string;
  before(async () => {
    services = await isolatedServices('cdc_origin_names');
    await createUserLogins(services.databaseUrl);
    await sql(services.databaseUrl, `INSERT INTO user_logins (username, event_type, event_time) SELECT 'u' || g, 'login', now() FROM generate_series(1, 10) g`);
    // Origins are cluster-wide: slot names of their own per run.
    suffix = services.name.slice(-6);
  });
  after(async () => {
    await services.cleanup();
  });

  const cdc = (args: string[]) => runCli('cdc', [...args, '--topic-prefix', services.topicPrefix], cliEnv(services));
  const origins = async (pattern: string): Promise<string[]> =>
    (await sql(services.databaseUrl, 'SELECT roname FROM pg_replication_origin WHERE roname LIKE $1 ORDER BY roname', [pattern])).rows.map((r) => r.roname as string);

  it('slot x and slot x_snapshot keep their own origins', async () => {
    const x = `o${suffix}`;
    const first = await cdc(['start', '--slot', `${x}_snapshot`, '--once']);
    assert.equal(first.code, 0, first.stderr);
    const second = await cdc(['start', '--slot', x, '--once', '--snapshot', 'all']);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /^sent 10 events \(10 snapshot rows\)/);
    // The old flag name of slot x was this marker origin: clearing x's flag dropped it.
    assert.deepEqual(await origins(`walbridge%${x}%`), [`walbridge_${x}`, `walbridge_${x}_snapshot`]);
    const status = await cdc(['status', '--slot', x]);
    assert.doesNotMatch(status.stdout, /initial snapshot unfinished/);
    const again = await cdc(['start', '--slot', `${x}_snapshot`, '--once']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^sent 0 events/);
  });

  it('a flag under the old name (an interrupted snapshot before an upgrade) is resumed and cleared', async () => {
    const slot = `l${suffix}`;
    const created = await cdc(['start', '--slot', slot, '--once']);
    assert.equal(created.code, 0, created.stderr);
    await sql(services.databaseUrl, 'UPDATE user_logins SET sent_to_kafka = false WHERE id <= 3');
    await sql(services.databaseUrl, 'SELECT pg_replication_origin_create($1)', [`walbridge_${slot}_snapshot`]);
    const status = await cdc(['status', '--slot', slot]);
    assert.match(status.stdout, /initial snapshot unfinished \(--snapshot unsent/);
    const resumed = await cdc(['start', '--slot', slot, '--once']);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr + resumed.stdout, /snapshot rows/);
    assert.deepEqual(await origins(`walbridge%${slot}%`), [`walbridge_${slot}`], 'the legacy flag is cleared');
  });
});
