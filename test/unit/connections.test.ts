import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_DATABASE_URL, redactUrl, resolveConnections } from '../../src/config/connections.js';
import { ConfigError } from '../../src/core/exit-codes.js';

describe('connections', () => {
  it('takes flags over environment over local-stack defaults', () => {
    const env = { DATABASE_URL: 'postgres://env@h:1/db', KAFKA_BROKERS: 'k:1,k:2' };
    const fromEnv = resolveConnections({}, env);
    assert.equal(fromEnv.databaseUrl, 'postgres://env@h:1/db');
    assert.deepEqual(fromEnv.kafkaBrokers, ['k:1', 'k:2']);
    assert.equal(resolveConnections({ databaseUrl: 'postgres://flag@h:1/db' }, env).databaseUrl, 'postgres://flag@h:1/db');
    assert.equal(resolveConnections({}, {}).databaseUrl, DEFAULT_DATABASE_URL);
  });
  it('rejects malformed values with a ConfigError that names the setting and hides the password', () => {
    assert.throws(() => resolveConnections({ kafkaBrokers: 'nohostport' }, {}), (e: unknown) => e instanceof ConfigError && /KAFKA_BROKERS/.test(e.message));
    assert.throws(
      () => resolveConnections({ databaseUrl: 'mysql://u:secret@h/db' }, {}),
      (e: unknown) => e instanceof ConfigError && /DATABASE_URL/.test(e.message) && !e.message.includes('secret'),
    );
  });
  it('redacts passwords', () => {
    assert.equal(redactUrl('postgres://u:secret@h:5/db'), 'postgres://u:***@h:5/db');
    assert.ok(!redactUrl('not a url //u:secret@h').includes('secret'));
  });
  it('redacts passwords holding / or @, libpq key=value settings and ?password= parameters', () => {
    for (const text of [
      'postgres://u:se/cret@h:5/db',
      'postgres://u:123/secret@h:5/db',
      'connect to postgres://u:se@cret@h:5/db failed',
      "host=h user=u password=secret dbname=d",
      "host=h password='sec ret' dbname=d",
      'http://h:8123/?user=u&password=secret&x=1',
      "error: DATABASE_URL is not a URL: 'PASSWORD = secret'",
    ]) {
      const redacted = redactUrl(text);
      assert.ok(!/secret|cret|sec ret/.test(redacted), `${text} → ${redacted}`);
      assert.match(redacted, /\*\*\*/);
    }
    assert.equal(redactUrl('host=h user=u password=secret dbname=d'), 'host=h user=u password=*** dbname=d');
  });
  it('reads passwords from DATABASE_PASSWORD_FILE / CLICKHOUSE_PASSWORD_FILE, and warns of a password in a flag', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wb-secret-'));
    const file = path.join(dir, 'pw');
    writeFileSync(file, 'p@ss/word\n');
    const warnings: string[] = [];
    const resolved = resolveConnections({ databaseUrl: 'postgres://u:flagpw@h:1/db' }, { DATABASE_PASSWORD_FILE: file, CLICKHOUSE_PASSWORD_FILE: file }, (w) => warnings.push(w));
    assert.equal(decodeURIComponent(new URL(resolved.databaseUrl).password), 'p@ss/word');
    assert.equal(decodeURIComponent(new URL(resolved.clickhouseUrl).password), 'p@ss/word');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /--database-url carries a password.*ps.*DATABASE_PASSWORD_FILE/);
    assert.ok(!warnings[0]!.includes('flagpw'));
    assert.throws(() => resolveConnections({}, { DATABASE_PASSWORD_FILE: path.join(dir, 'missing') }, () => {}),
      (e: unknown) => e instanceof ConfigError && /DATABASE_PASSWORD_FILE.*ENOENT/.test(e.message));
  });
});
