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
});
