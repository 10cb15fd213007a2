/** Every preflight error: the message says what is wrong and how to fix it; exit code 2. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { formatLsn, parseLsn } from '../../src/core/lsn.js';
import { cliEnv, runCli, startCli } from '../support/cli.js';
import { createUserLogins, readTopic, serverMajor, slotRow, sql, waitFor } from '../support/cdc.js';
import { isolatedServices, superuserUrl, type IsolatedServices } from '../support/services.js';

/** The newest installed PostgreSQL's binaries, as scripts/stack.sh picks them (or `pg_config --bindir`). */
function postgresBin(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const versions = existsSync('/usr/lib/postgresql')
    ? readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v) && existsSync(`/usr/lib/postgresql/${v}/bin/initdb`)).sort((a, b) => Number(a) - Number(b))
    : [];
  if (versions.length > 0) return `/usr/lib/postgresql/${versions.at(-1)}/bin`;
  return execFileSync('pg_config', ['--bindir']).toString().trim();
}
const PG_BIN = postgresBin();

function withUser(url: string, user: string, password: string): string {
  const parsed = new URL(url);
  parsed.username = user;
  parsed.password = password;
  return parsed.toString();
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

describe('cdc preflight', () => {
  let services: IsolatedServices;
  const roles: string[] = [];
  const start = (args: string[], env = cliEnv(services)) =>
    runCli('cdc', ['start', '--topic-prefix', services.topicPrefix, '--once', ...args], env);
  const assertConfigError = (result: { code: number | null; stderr: string }, pattern: RegExp) => {
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, pattern);
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  };
  const superuser = () => {
    const url = superuserUrl(services.name);
    assert.ok(url, 'these tests need the stack started by scripts/test.sh (superuser socket)');
    return url;
  };

  before(async () => {
    services = await isolatedServices('cdc_pre');
    await createUserLogins(services.databaseUrl);
  });
  after(async () => {
    await services.cleanup();
    for (const role of roles) await sql(superuserUrl()!, `DROP ROLE IF EXISTS "${role}"`);
  });

  it('wal_level replica: says to set wal_level=logical and restart', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'walbridge-replica-'));
    const port = await freePort();
    // PostgreSQL refuses to run as root: as root, its commands run as the `postgres` user.
    const root = process.getuid?.() === 0;
    const asPostgres = (cmd: string, args: string[]) =>
      execFileSync(root ? 'runuser' : cmd, root ? ['-u', 'postgres', '--', cmd, ...args] : args, { stdio: 'pipe' });
    if (root) {
      const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
      chownSync(dir, id('-u'), id('-g'));
    }
    try {
      asPostgres(`${PG_BIN}/initdb`, ['-D', `${dir}/data`, '-U', 'postgres', '--auth=trust', '-E', 'UTF8']);
      appendFileSync(`${dir}/data/postgresql.conf`, `\nwal_level = replica\nport = ${port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${dir}'\n`);
      asPostgres(`${PG_BIN}/pg_ctl`, ['-D', `${dir}/data`, '-l', `${dir}/log`, '-w', 'start']);
      try {
        const result = await start(['--slot', 'replica'], { ...cliEnv(services), DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/postgres` });
        assertConfigError(result, /wal_level is 'replica'; set wal_level=logical and restart PostgreSQL/);
      } finally {
        asPostgres(`${PG_BIN}/pg_ctl`, ['-D', `${dir}/data`, '-m', 'immediate', '-w', 'stop']);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a role without REPLICATION: says ALTER ROLE … REPLICATION', async () => {
    const role = `${services.name}_norepl`;
    roles.push(role);
    await sql(superuser(), `CREATE ROLE "${role}" LOGIN PASSWORD 'pw-norepl'`);
    const result = await start(['--slot', 'norepl'], { ...cliEnv(services), DATABASE_URL: withUser(services.databaseUrl, role, 'pw-norepl') });
    assertConfigError(result, new RegExp(`role ${role} may not replicate; as a superuser run: ALTER ROLE "${role}" REPLICATION`));
  });

  it('missing EXECUTE on the replication-origin functions: names the GRANT (or --no-mark-sent); on 13 and 14 the superuser it takes', async () => {
    const role = `${services.name}_noorigin`;
    roles.push(role);
    await sql(superuser(), `CREATE ROLE "${role}" LOGIN REPLICATION PASSWORD 'pw-noorigin'`);
    await sql(superuser(), `GRANT SELECT, UPDATE ON user_logins TO "${role}"; ALTER TABLE user_logins REPLICA IDENTITY FULL`);
    const result = await start(['--slot', 'noorigin'], { ...cliEnv(services), DATABASE_URL: withUser(services.databaseUrl, role, 'pw-noorigin') });
    if ((await serverMajor(services.databaseUrl)) < 15) {
      assertConfigError(result, new RegExp(`only superusers use replication origins \\(PostgreSQL 15 made them grantable\\); run cdc as a superuser \\(ALTER ROLE "${role}" SUPERUSER\\) or pass --no-mark-sent`));
    } else {
      assertConfigError(result, new RegExp(`GRANT EXECUTE ON FUNCTION pg_replication_origin_create\\(text\\) TO "${role}" \\(or pass --no-mark-sent\\)`));
    }
  });

  it('missing EXECUTE on pg_replication_origin_drop when a snapshot is to be taken: names the GRANT (or --snapshot none)', async () => {
    const role = `${services.name}_nodrop`;
    roles.push(role);
    await sql(superuser(), `CREATE ROLE "${role}" LOGIN REPLICATION PASSWORD 'pw-nodrop'`);
    await sql(superuser(), `GRANT SELECT, UPDATE ON user_logins TO "${role}"; ALTER TABLE user_logins REPLICA IDENTITY FULL;
      GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_oid(text), pg_replication_origin_session_setup(text) TO "${role}"`);
    const env = { ...cliEnv(services), DATABASE_URL: withUser(services.databaseUrl, role, 'pw-nodrop') };
    // Without that grant the unfinished-snapshot flag could never be cleared: refused, not silently skipped.
    if ((await serverMajor(services.databaseUrl)) < 15) {
      assertConfigError(await start(['--slot', 'nodrop', '--no-mark-sent'], env), new RegExp(
        `may not call pg_replication_origin_create\\(text\\), pg_replication_origin_drop\\(text\\), which flags the initial snapshot as unfinished.*only superusers use replication origins.*or pass --snapshot none`));
    } else {
      assertConfigError(await start(['--slot', 'nodrop'], env), new RegExp(
        `may not call pg_replication_origin_drop\\(text\\), which flags the initial snapshot as unfinished.*GRANT EXECUTE ON FUNCTION pg_replication_origin_drop\\(text\\) TO "${role}" \\(or pass --snapshot none\\)`));
    }
    assert.equal((await slotRow(services.databaseUrl, 'nodrop')), undefined, 'nothing created');
  });

  it('a missing table, and a table without a primary key', async () => {
    assertConfigError(await start(['--slot', 'nope', '--table', 'public.nope']), /table public\.nope does not exist in this database/);
    await sql(services.databaseUrl, 'CREATE TABLE nopk (a int, sent_to_kafka boolean DEFAULT false)');
    assertConfigError(await start(['--slot', 'nopk', '--table', 'nopk']), /table public\.nopk has no primary key.*ALTER TABLE public\.nopk ADD PRIMARY KEY/);
    assert.equal((await sql(services.databaseUrl, 'SELECT 1 FROM pg_replication_slots WHERE database = current_database()')).rowCount, 0, 'nothing created');
  });

  it('a publication that lacks a selected table: the table is added, and says so', async () => {
    await sql(services.databaseUrl, 'CREATE TABLE other (id int PRIMARY KEY); CREATE PUBLICATION walbridge_pubtest FOR TABLE other');
    const result = await start(['--slot', 'pubtest']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /added to the publication/);
    const tables = await sql(services.databaseUrl, `SELECT tablename FROM pg_publication_tables WHERE pubname = 'walbridge_pubtest' ORDER BY 1`);
    assert.deepEqual(tables.rows.map((r) => r.tablename), ['other', 'user_logins']);
    const dropped = await runCli('cdc', ['drop', '--slot', 'pubtest', '--yes'], cliEnv(services));
    assert.equal(dropped.code, 0, dropped.stderr);
  });

  it('a wrong password: exit 2, the password is not printed', async () => {
    const result = await start(['--slot', 'pw'], { ...cliEnv(services), DATABASE_URL: withUser(services.databaseUrl, 'walbridge', 'not-the-secret') });
    assertConfigError(result, /PostgreSQL refused the password/);
    assert.doesNotMatch(result.stderr + result.stdout, /not-the-secret/);
  });

  it('a slot in use by another process: gives its PID; the running one stops cleanly on SIGTERM', async () => {
    const running = startCli('cdc', ['start', '--slot', 'busy', '--topic-prefix', services.topicPrefix], cliEnv(services));
    try {
      await waitFor('the slot to be active', async () => ((await slotRow(services.databaseUrl, 'busy'))?.active_pid ? true : undefined));
      const result = await start(['--slot', 'busy']);
      assertConfigError(result, new RegExp(`slot busy is in use by another process \\(PID \\d+, client 'walbridge-cdc pid=${running.child.pid}' from 127\\.0\\.0\\.1`));
    } finally {
      running.child.kill('SIGTERM');
    }
    const startedStop = Date.now();
    const stopped = await running.exited;
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.ok(Date.now() - startedStop < 5_000, 'stopped within seconds');
    assert.match(stopped.stdout, /^sent \d+ events? .*from slot busy/);
  });

  it('--from-lsn before the confirmed LSN is refused (that WAL is gone); after it, skips ahead', async () => {
    const slot = await slotRow(services.databaseUrl, 'busy');
    const confirmed = parseLsn(slot!.confirmed_flush_lsn);
    assertConfigError(await start(['--slot', 'busy', '--from-lsn', formatLsn(confirmed - 1n)]), /is before the slot's confirmed_flush_lsn .* those changes are gone/);
    assertConfigError(await start(['--slot', 'busy', '--from-lsn', 'yesterday']), /--from-lsn: not an LSN/);
    // A typo such as 10/0 for 0/10: ahead of the WAL written so far, it would skip every change until the WAL got there.
    const current = parseLsn((await sql(services.databaseUrl, 'SELECT pg_current_wal_lsn()::text AS l')).rows[0].l as string);
    assertConfigError(await start(['--slot', 'busy', '--from-lsn', formatLsn(current + (1n << 32n))]), /is ahead of the server's current WAL position .*\(a typo, such as 10\/0 for 0\/10/);
    assert.equal(parseLsn((await slotRow(services.databaseUrl, 'busy'))!.confirmed_flush_lsn), confirmed, 'nothing confirmed by the refused start');
    await sql(services.databaseUrl, `INSERT INTO user_logins (username) VALUES ('skipped')`);
    const after = (await sql(services.databaseUrl, 'SELECT pg_current_wal_lsn()::text AS l')).rows[0].l as string;
    const skipped = await start(['--slot', 'busy', '--from-lsn', after]);
    assert.equal(skipped.code, 0, skipped.stderr);
    assert.match(skipped.stdout, /^sent 0 events/);
    assert.ok(parseLsn((await slotRow(services.databaseUrl, 'busy'))!.confirmed_flush_lsn) >= parseLsn(after));
  });

  it('usage errors exit 2: a bad slot name, --slot missing', async () => {
    assertConfigError(await start(['--slot', 'Bad-Name']), /not a valid slot name/);
    const missing = await runCli('cdc', ['start'], cliEnv(services));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /Missing required argument: slot/);
  });

  it('a lost slot (dropped, failover) is not silently recreated: says the changes are gone and how to recover', async () => {
    const first = await start(['--slot', 'lost']);
    assert.equal(first.code, 0, first.stderr);
    await sql(services.databaseUrl, `SELECT pg_drop_replication_slot('lost')`);
    assertConfigError(await start(['--slot', 'lost']), new RegExp(
      `slot lost does not exist, but walbridge's replication origin walbridge_lost does: cdc streamed from this slot before, so it was dropped or lost ` +
        `\\(e\\.g\\. a failover to a standby, or invalidated by max_slot_wal_keep_size\\)\\. The changes since its last confirmed position are gone\\. ` +
        `To recover: cdc start --slot lost --snapshot all \\(see docs/operations\\.md, "A lost slot"\\); or to start over: cdc drop --slot lost --yes`));
    assert.equal(await slotRow(services.databaseUrl, 'lost'), undefined, 'no slot created');
    // Saying which snapshot to take is the way through.
    const recovered = await start(['--slot', 'lost', '--snapshot', 'all']);
    assert.equal(recovered.code, 0, recovered.stderr);
    assert.ok(await slotRow(services.databaseUrl, 'lost'));
    // A slot that never streamed (no origin) is created as before, with the default snapshot.
    const fresh = await start(['--slot', 'fresh']);
    assert.equal(fresh.code, 0, fresh.stderr);
    for (const slot of ['lost', 'fresh']) assert.equal((await runCli('cdc', ['drop', '--slot', slot, '--yes'], cliEnv(services))).code, 0);
  });
});

describe('cdc with the least-privilege role of docs/operations.md', () => {
  let services: IsolatedServices;
  let role: string;

  before(async () => {
    services = await isolatedServices('cdc_least');
    await createUserLogins(services.databaseUrl);
    role = `${services.name}_cdc`;
  });
  after(async () => {
    await services.cleanup();
    await sql(superuserUrl()!, `DROP ROLE IF EXISTS "${role}"`);
  });

  it('exactly the documented grants (UPDATE on the sent_to_kafka column only) are enough; the owner sets the identity and publication', async () => {
    const superuser = superuserUrl(services.name);
    assert.ok(superuser, 'this test needs the stack started by scripts/test.sh (superuser socket)');
    // The role and grants, as docs/operations.md "Least-privilege role for cdc" writes them.
    await sql(superuser, `CREATE ROLE "${role}" LOGIN REPLICATION PASSWORD 'pw-least'`);
    await sql(superuser, `GRANT CONNECT ON DATABASE "${services.name}" TO "${role}";
      GRANT USAGE ON SCHEMA public TO "${role}";
      GRANT SELECT ON public.user_logins TO "${role}";
      GRANT UPDATE (sent_to_kafka) ON public.user_logins TO "${role}";
      GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text) TO "${role}";
      GRANT EXECUTE ON FUNCTION pg_replication_origin_oid(text) TO "${role}";
      GRANT EXECUTE ON FUNCTION pg_replication_origin_session_setup(text) TO "${role}";
      GRANT EXECUTE ON FUNCTION pg_replication_origin_drop(text) TO "${role}"`);
    // The owner's steps.
    await sql(services.databaseUrl, `ALTER TABLE public.user_logins REPLICA IDENTITY FULL;
      CREATE PUBLICATION walbridge_user_logins FOR TABLE public.user_logins`);
    await sql(services.databaseUrl, `INSERT INTO user_logins (username, event_type, event_time) VALUES ('alice', 'login', now())`);
    const env = { ...cliEnv(services), DATABASE_URL: withUser(services.databaseUrl, role, 'pw-least') };
    const cdc = (...extra: string[]) => runCli('cdc', ['start', '--slot', 'least', '--publication', 'walbridge_user_logins', '--topic-prefix', services.topicPrefix, '--once', ...extra], env);

    if ((await serverMajor(services.databaseUrl)) < 15) {
      // 13 and 14: replication origins are superuser-only, so the grants cannot make marking work;
      // refused, and without marking and the snapshot flag the same role streams.
      const refused = await cdc();
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, /only superusers use replication origins \(PostgreSQL 15 made them grantable\)/);
      const none = await cdc('--no-mark-sent', '--snapshot', 'none');
      assert.equal(none.code, 0, none.stderr);
      assert.match(none.stdout, /^sent 0 events/);
      await sql(services.databaseUrl, `INSERT INTO user_logins (username, event_type, event_time) VALUES ('bob', 'login', now())`);
      const streamed = await cdc('--no-mark-sent');
      assert.equal(streamed.code, 0, streamed.stderr);
      assert.match(streamed.stdout, /^sent 1 event \(1 insert\)/);
      return;
    }

    const first = await cdc();
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^sent 1 event \(1 snapshot row\)/);
    await sql(services.databaseUrl, `INSERT INTO user_logins (username, event_type, event_time) VALUES ('bob', 'login', now())`);
    const second = await cdc();
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /^sent 1 event \(1 insert\)/);
    assert.equal((await sql(services.databaseUrl, 'SELECT count(*)::int AS n FROM user_logins WHERE NOT sent_to_kafka')).rows[0].n, 0, 'both marked');
    assert.equal((await readTopic(services.kafkaBrokers, `${services.topicPrefix}.public.user_logins`)).length, 2);
  });
});
