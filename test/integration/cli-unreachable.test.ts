/**
 * What a new user meets when a service is not where the configuration says,
 * or a name is wrong: a bounded wait, exit 2 and a message naming the service,
 * the address and the fix, never a hang or a bare client error.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { withDatabase } from '../../src/config/connections.js';
import { cliEnv, runCli } from '../support/cli.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

const NOWHERE = '127.0.0.1:1';

async function timed<T>(run: () => Promise<T>): Promise<{ result: T; seconds: number }> {
  const started = Date.now();
  const result = await run();
  return { result, seconds: (Date.now() - started) / 1000 };
}

describe('CLI against unreachable or misnamed services', () => {
  let services: IsolatedServices;
  before(async () => {
    services = await isolatedServices('cli_unreachable');
    const client = new pg.Client({ connectionString: services.databaseUrl });
    await client.connect();
    try {
      await client.query("SELECT pg_create_logical_replication_slot('status_probe', 'pgoutput')");
    } finally {
      await client.end();
    }
  });
  after(async () => {
    await services.cleanup();
  });

  for (const args of [['start', '--once'], ['replay', '--from-lsn', '0/0']]) {
    it(`sink ${args[0]} with nothing listening at the ClickHouse address: exit 2 after --wait-timeout, naming ClickHouse`, async () => {
      const env = { ...cliEnv(services), CLICKHOUSE_URL: `http://default:@${NOWHERE}/default` };
      const { result, seconds } = await timed(() => runCli('sink', [...args, '--topic-prefix', services.topicPrefix, '--wait-timeout', '3'], env, 60_000));
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /error: gave up waiting for ClickHouse at http:\/\/default:\*\*\*@127\.0\.0\.1:1\/default after 3s .*Nothing answers at ClickHouse.*CLICKHOUSE_URL/);
      assert.ok(seconds < 30, `took ${seconds}s`);
    });
  }

  for (const [cli, args] of [['cdc', ['start', '--slot', 'unreachable_kafka', '--once']], ['sink', ['start', '--once']], ['sink', ['replay', '--from-lsn', '0/0']]] as const) {
    it(`${cli} ${args[0]} with Kafka refusing connections: exit 2 within 10 s, naming Kafka, the address and the fix`, async () => {
      const env = { ...cliEnv(services), KAFKA_BROKERS: NOWHERE };
      const { result, seconds } = await timed(() => runCli(cli, [...args, '--topic-prefix', services.topicPrefix], env, 60_000));
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /Kafka is not reachable at 127\.0\.0\.1:1 \(connection refused.*KAFKA_BROKERS/);
      assert.ok(seconds < 10, `took ${seconds}s`);
      assert.equal(result.stderr.trim().split('\n').length, 1, `one line expected:\n${result.stderr}`);
    });
  }

  it('cdc status with Kafka unreachable prints the slot facts from PostgreSQL and says Kafka is unreachable', async () => {
    const env = { ...cliEnv(services), KAFKA_BROKERS: NOWHERE };
    const { result, seconds } = await timed(() => runCli('cdc', ['status', '--slot', 'status_probe', '--publication', 'none_here'], env, 60_000));
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stdout, /slot status_probe: inactive; confirmed \d+\/[0-9A-F]+/);
    assert.match(result.stderr, /Kafka is not reachable at 127\.0\.0\.1:1/);
    assert.ok(seconds < 10, `took ${seconds}s`);
  });

  it('cdc status --json gives lagBytes as a number', async () => {
    const result = await runCli('cdc', ['status', '--slot', 'status_probe', '--json'], cliEnv(services));
    assert.equal(result.code, 0, result.stderr);
    const [slot] = JSON.parse(result.stdout) as { lagBytes: unknown }[];
    assert.equal(typeof slot?.lagBytes, 'number');
  });

  for (const args of [['start', '--once'], ['replay', '--from-lsn', '0/0']]) {
    it(`sink ${args[0]} of a topic that does not exist: exit 2`, async () => {
      const result = await runCli('sink', [...args, '--topic', 'no.such.topic'], cliEnv(services));
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /no\.such\.topic does not exist/);
    });
  }

  it('a ClickHouse database that does not exist: exit 2 with the fix', async () => {
    const env = { ...cliEnv(services), CLICKHOUSE_URL: withDatabase(services.clickhouseUrl, 'no_such_db_here') };
    const result = await runCli('sink', ['start', '--once', '--topic-prefix', services.topicPrefix], env);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /ClickHouse database no_such_db_here does not exist; create it .*CLICKHOUSE_URL/);
  });

  for (const [cli, args, expected] of [
    ['sink', ['start', '--once', '--batch-rows', 'abc'], /--batch-rows must be a positive integer, got 'abc'/],
    ['sink', ['replay', '--from-lsn', '-1/0'], /--from-lsn: .*-1\/0/],
    ['cdc', ['start', '--slot', 's', '--from-lsn', '-1/0'], /--from-lsn: .*-1\/0/],
    ['cdc', ['status', '--slot', 'x;drop'], /--slot 'x;drop' is not a valid slot name/],
  ] as const) {
    it(`${cli} ${args.join(' ')}: exit 2 saying what is wrong with the value`, async () => {
      const result = await runCli(cli, [...args], cliEnv(services));
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, expected);
      assert.doesNotMatch(result.stderr, /Unknown argument|NaN|cdc start --slot/);
    });
  }

  it('sink verify --help says its topic flags only select tables (it reads no topic)', async () => {
    const result = await runCli('sink', ['verify', '--help'], cliEnv(services));
    assert.equal(result.code, 0, result.stderr);
    const help = result.stdout.replace(/\s+/g, ' ');
    assert.match(help, /--topic-prefix the prefix --topic and --topic-pattern match table names with \(no topic is read\)/);
    assert.doesNotMatch(help, /consume every topic|overriding --topic-prefix/);
  });

  it('a libpq key=value connection string or a / in a URL password is refused without printing the password', async () => {
    for (const databaseUrl of ['host=127.0.0.1 user=u password=kv-secret-4711 dbname=d', 'postgres://u:slash/secret-4711@127.0.0.1:1/d']) {
      const result = await runCli('sink', ['verify'], { ...cliEnv(services), DATABASE_URL: databaseUrl });
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /DATABASE_URL\) is not a URL/);
      assert.ok(!`${result.stdout}${result.stderr}`.includes('secret-4711'), result.stderr);
    }
  });
});
