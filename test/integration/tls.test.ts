/**
 * TLS to PostgreSQL (sslmode=verify-full, a private CA in sslrootcert) and to
 * ClickHouse (https, the CA in CLICKHOUSE_CA_FILE), against servers of the
 * test's own that scripts/stack.sh starts with a certificate made here for
 * `localhost`. Its PostgreSQL accepts TCP logins over TLS only (hostssl), so
 * every connection cdc opens, the replication one included, must be TLS for
 * the run to pass. Kafka is the test stack's (plaintext).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from '../support/cdc.js';
import { cliEnv, runCli } from '../support/cli.js';
import { ownStack } from '../support/own-stack.js';
import { stackPortPrefix } from '../support/ports.js';
import { isolatedServices, serviceUrls, type IsolatedServices } from '../support/services.js';
import { makeCertificates, type TestCertificates } from '../support/tls.js';

/** A port of the test stack's own range, <prefix><fourDigits>, beside the stack's <prefix>5432, <prefix>8123, … */
const prefixedPort = (fourDigits: string): number => Number(`${stackPortPrefix(serviceUrls().databaseUrl)}${fourDigits}`);

describe('TLS: PostgreSQL with sslmode=verify-full, ClickHouse over https', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wb-tls-'));
  const ports = { postgres: prefixedPort('5433'), https: prefixedPort('8443') };
  const stack = ownStack({
    STACK_DIR: path.join(dir, 'stack'), STACK_SERVICES: 'postgres clickhouse', STACK_TLS_DIR: dir,
    STACK_PG_PORT: String(ports.postgres), STACK_CH_HTTPS_PORT: String(ports.https),
    STACK_CH_HTTP_PORT: String(prefixedPort('8133')), STACK_CH_TCP_PORT: String(prefixedPort('9030')), STACK_CH_INTERSERVER_PORT: String(prefixedPort('9039')),
  });
  let certificates: TestCertificates;
  let services: IsolatedServices;
  /** The test's services reached at `host`, trusting `caFile`. */
  const reached = (host: string, caFile: string): NodeJS.ProcessEnv => {
    const databaseUrl = new URL(services.databaseUrl);
    databaseUrl.hostname = host;
    databaseUrl.searchParams.set('sslrootcert', caFile);
    const clickhouseUrl = new URL(services.clickhouseUrl);
    clickhouseUrl.hostname = host;
    return cliEnv({ ...services, databaseUrl: databaseUrl.toString(), clickhouseUrl: clickhouseUrl.toString(), clickhouseCaFile: caFile });
  };

  before(async () => {
    certificates = makeCertificates(dir);
    const up = stack('up');
    assert.equal(up.status, 0, `${up.stdout}${up.stderr}`);
    services = await isolatedServices('tls', {
      databaseUrl: `postgres://walbridge:walbridge@localhost:${ports.postgres}/walbridge?sslmode=verify-full&sslrootcert=${encodeURIComponent(certificates.caFile)}`,
      clickhouseUrl: `https://default:@localhost:${ports.https}/default`,
      clickhouseCaFile: certificates.caFile,
      kafkaBrokers: serviceUrls().kafkaBrokers,
    });
  });
  after(async () => {
    await services?.cleanup();
    stack('destroy');
    rmSync(dir, { recursive: true, force: true });
  });

  it('the PostgreSQL server refuses a login without TLS', async () => {
    const plaintext = new URL(services.databaseUrl);
    plaintext.searchParams.set('sslmode', 'disable');
    await assert.rejects(sql(plaintext.toString(), 'SELECT 1'), /no pg_hba.conf entry .* no encryption/);
  });

  it('migrate, cdc (snapshot and stream), sink and verify run end to end', async () => {
    const env = cliEnv(services);
    const topicPrefix = ['--topic-prefix', services.topicPrefix];
    const migrated = await runCli('migrate', [], env);
    assert.equal(migrated.code, 0, migrated.stderr);
    await sql(services.databaseUrl, `INSERT INTO user_logins (username, event_type) VALUES ('alice', 'login'), ('bob', 'login')`);
    const snapshot = await runCli('cdc', ['start', '--slot', 'tls', '--once', ...topicPrefix], env);
    assert.equal(snapshot.code, 0, snapshot.stderr);
    assert.match(snapshot.stdout, /sent 2 events \(2 snapshot rows\)/);
    // Streamed through the replication connection this time.
    await sql(services.databaseUrl, `INSERT INTO user_logins (username, event_type) VALUES ('carol', 'login'); UPDATE user_logins SET event_type = 'logout' WHERE username = 'alice'`);
    const streamed = await runCli('cdc', ['start', '--slot', 'tls', '--once', ...topicPrefix], env);
    assert.equal(streamed.code, 0, streamed.stderr);
    assert.match(streamed.stdout, /sent 2 events \(1 insert, 1 update\)/);
    const sunk = await runCli('sink', ['start', '--once', ...topicPrefix], env);
    assert.equal(sunk.code, 0, sunk.stderr);
    assert.match(sunk.stdout, /wrote 3 rows to user_logins/);
    const verified = await runCli('sink', ['verify'], env);
    assert.equal(verified.code, 0, `${verified.stdout}${verified.stderr}`);
    assert.match(verified.stdout, /rows: PostgreSQL 3, ClickHouse 3.*\nEQUAL/);
  });

  it('a CA that did not sign the certificate: exit 2, the certificate is not trusted', async () => {
    const env = reached('localhost', certificates.otherCaFile);
    const cdc = await runCli('cdc', ['start', '--slot', 'tls_wrong_ca', '--once', '--topic-prefix', services.topicPrefix], env);
    assert.equal(cdc.code, 2, cdc.stderr);
    assert.match(cdc.stderr, /error: TLS: the server's certificate is not trusted \(unable to verify the first certificate\); give the CA that signed it \(PostgreSQL: sslrootcert=/);
    const sink = await runCli('sink', ['start', '--once', '--topic-prefix', services.topicPrefix], env);
    assert.equal(sink.code, 2, sink.stderr);
    assert.match(sink.stderr, /error: TLS: the server's certificate is not trusted .*ClickHouse: --clickhouse-ca \/ CLICKHOUSE_CA_FILE/);
  });

  it('a host name the certificate does not hold (127.0.0.1 for localhost): exit 2', async () => {
    const env = reached('127.0.0.1', certificates.caFile);
    const cdc = await runCli('cdc', ['start', '--slot', 'tls_wrong_host', '--once', '--topic-prefix', services.topicPrefix], env);
    assert.equal(cdc.code, 2, cdc.stderr);
    assert.match(cdc.stderr, /error: TLS: the server's certificate is not valid for the host 127\.0\.0\.1 .*the certificate holds DNS:localhost/);
    const verify = await runCli('sink', ['verify'], { ...env, DATABASE_URL: cliEnv(services).DATABASE_URL });
    assert.equal(verify.code, 2, verify.stderr);
    assert.match(verify.stderr, /error: TLS: the server's certificate is not valid for the host 127\.0\.0\.1/);
  });
});
