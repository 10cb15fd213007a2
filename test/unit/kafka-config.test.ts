import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { resolveKafka } from '../../src/config/kafka.js';
import { ConfigError } from '../../src/core/exit-codes.js';

const BROKERS = ['k:9093'];
const configError = (pattern: RegExp) => (e: unknown) => e instanceof ConfigError && pattern.test(e.message);

describe('Kafka security settings', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wb-kafka-config-'));
  const file = (name: string) => path.join(dir, name);
  before(() => {
    // A self-signed certificate and its key, and a second key that does not match it.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=t',
      '-keyout', file('key.pem'), '-out', file('cert.pem')], { stdio: 'ignore' });
    execFileSync('openssl', ['genpkey', '-algorithm', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', file('other-key.pem')], { stdio: 'ignore' });
    writeFileSync(file('password'), 'sâsl-pw\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is plaintext without authentication by default', () => {
    assert.deepEqual(resolveKafka(BROKERS, {}, {}), { brokers: BROKERS, tls: null, sasl: null });
  });

  it('turns TLS on with --kafka-ssl or any TLS file, verifying chain and host name unless told not to', () => {
    assert.deepEqual(resolveKafka(BROKERS, { kafkaSsl: true }, {}).tls, { rejectUnauthorized: true });
    const fromEnv = resolveKafka(BROKERS, {}, { KAFKA_SSL_CA: file('cert.pem'), KAFKA_SSL_CERT: file('cert.pem'), KAFKA_SSL_KEY: file('key.pem') })!;
    assert.deepEqual(fromEnv.tls?.ca, readFileSync(file('cert.pem')));
    assert.deepEqual(fromEnv.tls?.key, readFileSync(file('key.pem')));
    assert.equal(fromEnv.tls?.checkServerIdentity, undefined);
    const warnings: string[] = [];
    const unchecked = resolveKafka(BROKERS, { kafkaSslCa: file('cert.pem') }, { KAFKA_SSL_VERIFY_HOSTNAME: 'false' }, (w) => warnings.push(w));
    assert.equal(unchecked.tls?.checkServerIdentity?.('elsewhere', {} as never), undefined);
    assert.match(warnings.join(), /host name verification is off/);
    // A flag wins over the environment.
    assert.equal(resolveKafka(BROKERS, { kafkaSslVerifyHostname: true }, { KAFKA_SSL: 'true', KAFKA_SSL_VERIFY_HOSTNAME: 'false' }).tls?.checkServerIdentity, undefined);
  });

  it('refuses TLS settings that cannot work, naming the setting', () => {
    assert.throws(() => resolveKafka(BROKERS, { kafkaSslCert: file('cert.pem') }, {}), configError(/--kafka-ssl-key/));
    assert.throws(() => resolveKafka(BROKERS, { kafkaSslCa: file('missing.pem') }, {}), configError(/--kafka-ssl-ca .*missing\.pem: ENOENT/));
    assert.throws(() => resolveKafka(BROKERS, { kafkaSslCa: file('password') }, {}), configError(/--kafka-ssl-ca .*password does not hold a PEM certificate/));
    assert.throws(() => resolveKafka(BROKERS, { kafkaSslCert: file('cert.pem'), kafkaSslKey: file('other-key.pem') }, {}), configError(/--kafka-ssl-key .*other-key\.pem is not the unencrypted PEM private key of --kafka-ssl-cert/));
    assert.throws(() => resolveKafka(BROKERS, { kafkaSsl: false, kafkaSslCa: file('cert.pem') }, {}), configError(/TLS is turned off/));
    assert.throws(() => resolveKafka(BROKERS, {}, { KAFKA_SSL: 'maybe' }), configError(/KAFKA_SSL must be true or false/));
  });

  it('takes SASL from flags and environment, the password from KAFKA_SASL_PASSWORD_FILE over KAFKA_SASL_PASSWORD', () => {
    assert.deepEqual(resolveKafka(BROKERS, { kafkaSaslMechanism: 'scram-sha-512', kafkaSaslUsername: 'u' }, { KAFKA_SASL_PASSWORD: 'pw' }).sasl,
      { mechanism: 'SCRAM-SHA-512', username: 'u', password: 'pw' });
    assert.deepEqual(resolveKafka(BROKERS, {}, { KAFKA_SASL_MECHANISM: 'PLAIN', KAFKA_SASL_USERNAME: 'e', KAFKA_SASL_PASSWORD: 'pw', KAFKA_SASL_PASSWORD_FILE: file('password') }).sasl,
      { mechanism: 'PLAIN', username: 'e', password: 'sâsl-pw' });
    assert.equal(resolveKafka(BROKERS, { kafkaSaslMechanism: 'SCRAM-SHA-256', kafkaSaslUsername: 'u' }, { KAFKA_SASL_PASSWORD: 'pw' }).sasl?.mechanism, 'SCRAM-SHA-256');
  });

  it('refuses incomplete SASL settings, never printing the password', () => {
    assert.throws(() => resolveKafka(BROKERS, { kafkaSaslMechanism: 'GSSAPI', kafkaSaslUsername: 'u' }, { KAFKA_SASL_PASSWORD: 'pw' }), configError(/one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, got 'GSSAPI'/));
    assert.throws(() => resolveKafka(BROKERS, { kafkaSaslMechanism: 'PLAIN' }, { KAFKA_SASL_PASSWORD: 'pw' }), configError(/needs a user: --kafka-sasl-username/));
    assert.throws(() => resolveKafka(BROKERS, { kafkaSaslMechanism: 'PLAIN', kafkaSaslUsername: 'u' }, {}), configError(/needs a password: KAFKA_SASL_PASSWORD/));
    assert.throws(() => resolveKafka(BROKERS, {}, { KAFKA_SASL_PASSWORD: 'secret-pw' }), (e: unknown) => configError(/no mechanism/)(e) && !(e as Error).message.includes('secret-pw'));
    assert.throws(() => resolveKafka(BROKERS, { kafkaSaslMechanism: 'PLAIN', kafkaSaslUsername: 'u' }, { KAFKA_SASL_PASSWORD_FILE: file('missing') }), configError(/KAFKA_SASL_PASSWORD_FILE=.*ENOENT/));
  });
});
