/**
 * A PostgreSQL password with the characters that break URLs (/ @ : #), given
 * the recommended way (DATABASE_PASSWORD_FILE) and the discouraged way (in
 * --database-url, percent-encoded): both log in, the flag warns, and, with
 * debug logging on, neither run prints it (test/support/cli.ts fails any run
 * that prints a password it was given, raw or percent-decoded).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { sql } from '../support/cdc.js';
import { cliEnv, runCli } from '../support/cli.js';
import { isolatedServices, superuserUrl, type IsolatedServices } from '../support/services.js';

const PASSWORD = `Pw/${randomBytes(4).toString('hex')}@x:y#z`;

describe('passwords', { skip: superuserUrl() === undefined && 'needs the test stack\'s superuser to create a role' }, () => {
  let services: IsolatedServices;
  const role = `wb_secret_${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(path.join(tmpdir(), 'wb-secrets-'));
  const passwordFile = path.join(dir, 'pg-password');
  before(async () => {
    services = await isolatedServices('secrets');
    const escaped = PASSWORD.replace(/'/g, "''");
    await sql(superuserUrl()!, `CREATE ROLE "${role}" LOGIN PASSWORD '${escaped}'`);
    await sql(superuserUrl(services.name)!, `GRANT ALL ON SCHEMA public TO "${role}"`);
    writeFileSync(passwordFile, `${PASSWORD}\n`);
  });
  after(async () => {
    await services.cleanup();
    await sql(superuserUrl()!, `DROP ROLE IF EXISTS "${role}"`);
    rmSync(dir, { recursive: true, force: true });
  });

  const roleUrl = (password?: string): string => {
    const url = new URL(services.databaseUrl);
    url.username = role;
    url.password = password === undefined ? '' : encodeURIComponent(password);
    return url.toString();
  };

  it('DATABASE_PASSWORD_FILE logs in; nothing printed holds the password', async () => {
    const env = { ...cliEnv(services), DATABASE_URL: roleUrl(), DATABASE_PASSWORD_FILE: passwordFile, LOG_LEVEL: 'debug' };
    const result = await runCli('migrate', ['--only', 'postgres'], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /postgres .*applied/);
    assert.doesNotMatch(result.stderr, /warning/);
  });

  it('a password in --database-url works, warns of ps, and is not printed', async () => {
    const env = { ...cliEnv(services), LOG_LEVEL: 'debug' };
    const result = await runCli('migrate', ['--only', 'postgres', '--database-url', roleUrl(PASSWORD)], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /warning: --database-url carries a password, which any local user can read in ps; give it in DATABASE_PASSWORD_FILE/);
  });

  it('a wrong password from the file: exit 2, not printed', async () => {
    const wrong = path.join(dir, 'wrong');
    writeFileSync(wrong, 'Wrong/pw@not:it#1\n');
    const env = { ...cliEnv(services), DATABASE_URL: roleUrl(), DATABASE_PASSWORD_FILE: wrong };
    const result = await runCli('migrate', ['--only', 'postgres'], env);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /PostgreSQL refused the password/);
  });
});
