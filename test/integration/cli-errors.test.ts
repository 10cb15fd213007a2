/**
 * What a user sees for the mistakes they can make: a usage error or a refused
 * login exits 2 with the fix in the message, and never echoes a password.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cliEnv, runCli } from '../support/cli.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

function withPassword(url: string, password: string): string {
  const parsed = new URL(url);
  parsed.username = parsed.username || 'default';
  parsed.password = password;
  return parsed.toString();
}

describe('CLI errors', () => {
  let services: IsolatedServices;
  before(async () => {
    services = await isolatedServices('cli_errors');
  });
  after(async () => {
    await services.cleanup();
  });

  for (const [cli, args] of [
    ['sink', ['start', '--bogus']],
    ['sink', ['replay']],
    ['migrate', ['--only', 'nowhere']],
    ['cdc', ['start']],
  ] as const) {
    it(`${cli} ${args.join(' ')}: usage error, exit 2`, async () => {
      const result = await runCli(cli, [...args], cliEnv(services));
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, new RegExp(`see ${cli} --help`));
    });
  }

  it('a wrong ClickHouse password exits 2, says what to fix, and hides the password', async () => {
    const env = { ...cliEnv(services), CLICKHOUSE_URL: withPassword(services.clickhouseUrl, 'not-the-password') };
    const result = await runCli('sink', ['start', '--once', '--topic-prefix', services.topicPrefix], env);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /ClickHouse refused the login .*CLICKHOUSE_URL/);
    assert.ok(!`${result.stdout}${result.stderr}`.includes('not-the-password'));
  });

  it('a wrong PostgreSQL password exits 2, says what to fix, and hides the password', async () => {
    const env = { ...cliEnv(services), DATABASE_URL: withPassword(services.databaseUrl, 'not-the-password') };
    const result = await runCli('sink', ['verify'], env);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /PostgreSQL refused the password.*DATABASE_URL/);
    assert.ok(!`${result.stdout}${result.stderr}`.includes('not-the-password'));
  });
});
