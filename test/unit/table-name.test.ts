import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseTableName } from '../../src/config/table-name.js';

describe('parseTableName', () => {
  it('schema.table, table (public), quoted parts keep case and dots', () => {
    assert.deepEqual(parseTableName('app.user_logins'), { schema: 'app', table: 'user_logins' });
    assert.deepEqual(parseTableName('user_logins'), { schema: 'public', table: 'user_logins' });
    assert.deepEqual(parseTableName('"My.Schema"."Odd""Name"'), { schema: 'My.Schema', table: 'Odd"Name' });
  });

  it('refuses anything else as a usage error', () => {
    assert.throws(() => parseTableName('a.b.c'), /--table must be 'schema.table' or 'table'/);
  });
});
