/**
 * Kafka over TLS with SASL, for real: a second broker whose only listener is
 * SASL_SSL with client certificates (test/support/secure-kafka.ts). cdc
 * (@platformatic/kafka) streams changes through it and the sink (kafkajs)
 * writes them to ClickHouse, with SCRAM-SHA-512 and with PLAIN; cdc status
 * (kafkajs admin) reads offsets with SCRAM-SHA-256. A wrong password, a CA
 * that did not sign the broker's certificate, a host name the certificate
 * does not hold and a missing client certificate each end the command fast
 * with exit 2 and a message naming the cause. Every run is checked for the
 * SASL password (test/support/cli.ts: KAFKA_SASL_PASSWORD and *_PASSWORD_FILE).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createUserLogins, sql } from '../support/cdc.js';
import { cliEnv, runCli, type CliName } from '../support/cli.js';
import { startSecureKafka, type SecureKafka } from '../support/secure-kafka.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';
import { openClickHouse } from '../../src/sink/clickhouse/client.js';

/** A refused setting must be told well before the clients' ~40 s of retries. */
const FAIL_FAST_MS = 20_000;

describe('Kafka over SASL_SSL', () => {
  let kafka: SecureKafka;
  let services: IsolatedServices;
  /** The test's services, with the broker's client settings (SCRAM-SHA-512, password from the file). */
  let env: NodeJS.ProcessEnv;
  const slot = 'kafka_security';

  before(async () => {
    kafka = startSecureKafka();
    services = await isolatedServices('kafka_security');
    env = { ...cliEnv(services), ...kafka.env, LOG_LEVEL: 'debug' };
    await createUserLogins(services.databaseUrl);
    const migrated = await runCli('migrate', ['--only', 'clickhouse'], env);
    assert.equal(migrated.code, 0, migrated.stderr);
  });
  after(async () => {
    await services?.cleanup();
    kafka?.stop();
  });

  const insert = (...names: string[]) => sql(services.databaseUrl, `INSERT INTO user_logins (username, event_type) SELECT unnest($1::text[]), 'login'`, [names]);
  const clickhouseNames = async (): Promise<string[]> => {
    const { client } = openClickHouse(services.clickhouseUrl);
    try {
      const rows = await (await client.query({ query: 'SELECT username FROM user_logins FINAL WHERE _is_deleted = 0 ORDER BY id', format: 'JSONEachRow' })).json<{ username: string }>();
      return rows.map((r) => r.username);
    } finally {
      await client.close();
    }
  };
  const run = (cli: CliName, args: string[], extra: NodeJS.ProcessEnv = {}) =>
    runCli(cli, [...args, '--topic-prefix', services.topicPrefix], { ...env, ...extra });
  /** Runs a command that must be refused: exit 2, fast. Returns its stderr. */
  const refused = async (t: TestContext, cli: CliName, args: string[], extra: NodeJS.ProcessEnv): Promise<string> => {
    const started = Date.now();
    const result = await run(cli, args, extra);
    const elapsed = Date.now() - started;
    assert.equal(result.code, 2, `${result.stdout}${result.stderr}`);
    assert.ok(elapsed < FAIL_FAST_MS, `took ${elapsed} ms`);
    t.diagnostic(`${cli} ${args[0]}: exit 2 after ${elapsed} ms (process start included)`);
    return result.stderr;
  };

  it('SCRAM-SHA-512 with mutual TLS: cdc streams a change to the sink, which writes it to ClickHouse', async () => {
    await insert('alice');
    const created = await run('cdc', ['start', '--slot', slot, '--once']);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /sent 1 event \(1 snapshot row\)/);
    await insert('bob');
    const streamed = await run('cdc', ['start', '--slot', slot, '--once']);
    assert.equal(streamed.code, 0, streamed.stderr);
    assert.match(streamed.stdout, /sent 1 event \(1 insert\)/);
    const sink = await run('sink', ['start', '--once']);
    assert.equal(sink.code, 0, sink.stderr);
    assert.match(sink.stdout, /wrote 2 rows to user_logins/);
    assert.deepEqual(await clickhouseNames(), ['alice', 'bob']);
  });

  it('PLAIN, configured by flags with the password from KAFKA_SASL_PASSWORD: the next change arrives too', async () => {
    await insert('carol');
    const flags = ['--kafka-brokers', kafka.broker, '--kafka-ssl-ca', path.join(kafka.tlsDir, 'ca.pem'), '--kafka-ssl-cert', path.join(kafka.tlsDir, 'client.pem'),
      '--kafka-ssl-key', path.join(kafka.tlsDir, 'client.key'), '--kafka-sasl-mechanism', 'PLAIN', '--kafka-sasl-username', 'walbridge'];
    const onlyFlags = {
      KAFKA_BROKERS: '', KAFKA_SSL_CA: '', KAFKA_SSL_CERT: '', KAFKA_SSL_KEY: '', KAFKA_SASL_MECHANISM: '', KAFKA_SASL_USERNAME: '', KAFKA_SASL_PASSWORD_FILE: '',
      KAFKA_SASL_PASSWORD: kafka.password,
    };
    const cdc = await run('cdc', ['start', '--slot', slot, '--once', ...flags], onlyFlags);
    assert.equal(cdc.code, 0, cdc.stderr);
    assert.match(cdc.stdout, /sent 1 event \(1 insert\)/);
    const sink = await run('sink', ['start', '--once', ...flags], onlyFlags);
    assert.equal(sink.code, 0, sink.stderr);
    assert.match(sink.stdout, /wrote 1 row to user_logins/);
    assert.deepEqual(await clickhouseNames(), ['alice', 'bob', 'carol']);
  });

  it('SCRAM-SHA-256: cdc status reads the topic\'s end offset through the admin client', async () => {
    const status = await run('cdc', ['status', '--slot', slot], { KAFKA_SASL_MECHANISM: 'SCRAM-SHA-256' });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /topic .*\.public\.user_logins: p0=3/);
  });

  // cdc's producer (@platformatic/kafka), the sink's consumer and cdc status's admin client (kafkajs) alike.
  const everyClient: Array<[CliName, string[]]> = [['cdc', ['start', '--slot', slot]], ['sink', ['start', '--once']], ['cdc', ['status', '--slot', slot]]];

  it('a wrong password: exit 2 naming Kafka and the SASL authentication', async (t) => {
    const wrong = { KAFKA_SASL_PASSWORD_FILE: '', KAFKA_SASL_PASSWORD: `${kafka.password}-wrong` };
    for (const [cli, args] of everyClient) {
      assert.match(await refused(t, cli, args, wrong),
        /Kafka at 127\.0\.0\.1:\d+ refused the SASL SCRAM-SHA-512 authentication of user walbridge .*KAFKA_SASL_PASSWORD/);
    }
  });

  it('a CA that did not sign the broker\'s certificate: exit 2 naming TLS and the certificate', async (t) => {
    const otherCa = path.join(kafka.tlsDir, 'other-ca.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=another CA',
      '-keyout', path.join(kafka.tlsDir, 'other-ca.key'), '-out', otherCa], { stdio: 'ignore' });
    for (const [cli, args] of everyClient) {
      assert.match(await refused(t, cli, args, { KAFKA_SSL_CA: otherCa }),
        /Kafka is not reachable at 127\.0\.0\.1:\d+ \(TLS: the broker's certificate is not trusted .*--kafka-ssl-ca/);
    }
  });

  it('a host name the broker\'s certificate does not hold: exit 2; --no-kafka-ssl-verify-hostname lets it through', async (t) => {
    const byName = { KAFKA_BROKERS: `localhost:${kafka.port}` };
    assert.match(await refused(t, 'sink', ['start'], byName), /Kafka is not reachable at localhost:\d+ \(TLS: the broker's certificate is not for this host/);
    // The broker advertises 127.0.0.1, which its certificate holds: only the bootstrap connection is by name.
    const unchecked = await run('cdc', ['status', '--slot', slot, '--no-kafka-ssl-verify-hostname'], byName);
    assert.equal(unchecked.code, 0, unchecked.stderr);
    assert.match(unchecked.stderr, /warning: Kafka host name verification is off/);
  });

  it('no client certificate for a broker that requires one: exit 2 saying so', async (t) => {
    assert.match(await refused(t, 'cdc', ['start', '--slot', slot], { KAFKA_SSL_CERT: '', KAFKA_SSL_KEY: '' }),
      /Kafka at 127\.0\.0\.1:\d+: TLS: the broker ended the handshake .*client certificate/);
  });
});
