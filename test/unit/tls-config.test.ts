import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { resolveConnections } from '../../src/config/connections.js';
import { tlsUserError } from '../../src/config/tls.js';
import { ConfigError } from '../../src/core/exit-codes.js';

const dir = mkdtempSync(path.join(tmpdir(), 'wb-tls-unit-'));
const pem = path.join(dir, 'ca.pem');
writeFileSync(pem, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
const notPem = path.join(dir, 'not.pem');
writeFileSync(notPem, 'hello\n');
const missing = path.join(dir, 'missing.pem');

const configError = (pattern: RegExp) => (e: unknown) => e instanceof ConfigError && pattern.test(e.message);

describe('TLS settings', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('PostgreSQL: an unknown sslmode is refused (node-postgres would turn TLS on silently)', () => {
    assert.throws(() => resolveConnections({ databaseUrl: 'postgres://u@h:1/d?sslmode=verify_full' }, {}), configError(/sslmode=verify_full .* not one of disable, prefer, require, verify-ca, verify-full, no-verify/));
    assert.doesNotThrow(() => resolveConnections({ databaseUrl: `postgres://u@h:1/d?sslmode=verify-full&sslrootcert=${encodeURIComponent(pem)}` }, {}));
  });

  it('PostgreSQL: sslrootcert, sslcert, sslkey must be readable PEM files', () => {
    assert.throws(() => resolveConnections({ databaseUrl: `postgres://u@h:1/d?sslmode=verify-full&sslrootcert=${missing}` }, {}), configError(/cannot read sslrootcert of the database URL .*missing\.pem: ENOENT/));
    assert.throws(() => resolveConnections({ databaseUrl: `postgres://u@h:1/d?sslmode=verify-full&sslrootcert=${notPem}` }, {}), configError(/sslrootcert .* holds no PEM certificate/));
    assert.throws(() => resolveConnections({ databaseUrl: `postgres://u@h:1/d?sslmode=verify-full&sslkey=${pem}` }, {}), configError(/sslkey .* holds no PEM private key/));
  });

  it('ClickHouse: the CA from --clickhouse-ca over CLICKHOUSE_CA_FILE, for https URLs only', () => {
    const https = 'https://default:@h:8443/default';
    assert.equal(resolveConnections({ clickhouseUrl: https }, { CLICKHOUSE_CA_FILE: pem }).clickhouseCaFile, pem);
    assert.equal(resolveConnections({ clickhouseUrl: https, clickhouseCa: pem }, { CLICKHOUSE_CA_FILE: missing }).clickhouseCaFile, pem);
    assert.equal(resolveConnections({ clickhouseUrl: https }, {}).clickhouseCaFile, undefined);
    assert.throws(() => resolveConnections({ clickhouseUrl: 'http://h:8123/default' }, { CLICKHOUSE_CA_FILE: pem }), configError(/CLICKHOUSE_CA_FILE\) is given, but the ClickHouse URL .* is not https/));
    assert.throws(() => resolveConnections({ clickhouseUrl: https }, { CLICKHOUSE_CA_FILE: missing }), configError(/cannot read the ClickHouse CA file .*ENOENT/));
    assert.throws(() => resolveConnections({ clickhouseUrl: https, clickhouseCa: notPem }, {}), configError(/holds no PEM certificate/));
  });

  it('says what to fix for the TLS failures a user causes, and nothing for others', () => {
    assert.match(tlsUserError(Object.assign(new Error('unable to verify the first certificate'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }))!,
      /certificate is not trusted \(unable to verify the first certificate\); give the CA .*sslrootcert=.*--clickhouse-ca/);
    assert.match(tlsUserError(Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }))!, /not trusted/);
    const mismatch = Object.assign(new Error("Hostname/IP does not match certificate's altnames"), { code: 'ERR_TLS_CERT_ALTNAME_INVALID', host: '10.0.0.5', cert: { subjectaltname: 'DNS:db.example' } });
    assert.match(tlsUserError(mismatch)!, /not valid for the host 10\.0\.0\.5 .*the certificate holds DNS:db\.example\); connect by a name/);
    assert.match(tlsUserError(Object.assign(new Error('certificate has expired'), { code: 'CERT_HAS_EXPIRED' }))!, /not valid now .*renew/);
    assert.match(tlsUserError(new Error('The server does not support SSL connections'))!, /PostgreSQL server does not accept TLS/);
    assert.match(tlsUserError(Object.assign(new Error('write EPROTO 80:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:x.c:350:\n'), { code: 'EPROTO' }))!,
      /did not answer in TLS \(wrong version number\); is the port an https one/);
    assert.equal(tlsUserError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })), undefined);
    assert.equal(tlsUserError(undefined), undefined);
  });
});
