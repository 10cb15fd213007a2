/**
 * What differs by PostgreSQL version, on whichever server the stack runs
 * (scripts/test-matrix.sh runs this file on 13, 14, 15, 16 and 17): the slot is
 * created in that server's syntax, and `--failover` makes a failover slot on
 * 17 and is refused, naming the version, before it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cliEnv, runCli } from '../support/cli.js';
import { createUserLogins, serverMajor, sql } from '../support/cdc.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

describe('cdc on this PostgreSQL version', () => {
  let services: IsolatedServices;
  let major: number;
  const start = (args: string[]) => runCli('cdc', ['start', '--topic-prefix', services.topicPrefix, '--once', ...args], cliEnv(services));
  const status = async (slot: string) => {
    const result = await runCli('cdc', ['status', '--topic-prefix', services.topicPrefix, '--slot', slot, '--json'], cliEnv(services));
    assert.equal(result.code, 0, result.stderr);
    return (JSON.parse(result.stdout) as { failover: boolean | null }[])[0]!;
  };
  const slotFailover = async (slot: string) =>
    (await sql(services.databaseUrl, `SELECT ${major >= 17 ? 'failover' : 'NULL::boolean AS failover'} FROM pg_replication_slots WHERE slot_name = $1`, [slot])).rows[0]?.failover;

  before(async () => {
    services = await isolatedServices('cdc_ver');
    await createUserLogins(services.databaseUrl);
    await sql(services.databaseUrl, `INSERT INTO user_logins (username, event_type) VALUES ('alice', 'login'), ('bob', 'login')`);
    major = await serverMajor(services.databaseUrl);
  });
  after(async () => services.cleanup());

  it('runs on the PostgreSQL major the stack was asked for', () => {
    const asked = process.env.STACK_PG_VERSION;
    if (asked) assert.equal(major, Number(asked), `the stack was started with STACK_PG_VERSION=${asked}`);
    assert.ok(major >= 13, `walbridge supports PostgreSQL 13 and later, the stack runs ${major}`);
  });

  it('creates its slot with an exported snapshot and sends the initial snapshot', async () => {
    const result = await start(['--slot', 'ver_plain']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /sent 2 events/);
    assert.equal((await status('ver_plain')).failover, major >= 17 ? false : null, 'status says failover off on 17, nothing before');
  });

  it('--failover: a failover slot on 17 that status shows; before 17 refused with exit 2, naming the version', async () => {
    const result = await start(['--slot', 'ver_failover', '--failover']);
    if (major >= 17) {
      assert.equal(result.code, 0, result.stderr);
      assert.equal(await slotFailover('ver_failover'), true);
      assert.equal((await status('ver_failover')).failover, true);
      const text = await runCli('cdc', ['status', '--topic-prefix', services.topicPrefix, '--slot', 'ver_failover'], cliEnv(services));
      assert.match(text.stdout, /failover on/);
    } else {
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, new RegExp(`--failover needs PostgreSQL 17 or later \\(failover slots\\); this server is PostgreSQL ${major}\\.`));
      assert.doesNotMatch(result.stderr, /syntax error/);
      assert.equal(await slotFailover('ver_failover'), undefined, 'no slot was created');
    }
  });

  it('--failover on an existing slot without it: refused on 17 with the command that enables it, before 17 for the version', async () => {
    const result = await start(['--slot', 'ver_plain', '--failover']);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, major >= 17 ? /slot ver_plain exists without failover; .*ALTER_REPLICATION_SLOT ver_plain \(FAILOVER\)/ : /--failover needs PostgreSQL 17 or later/);
  });
});
