/** Personal-data columns: the rules from flags and environment, and the decoder writing every row image and the schema header through them. */
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ColumnPolicy, parseColumnRef, resolveColumnPolicy } from '../../src/config/column-policy.js';
import { ChangeDecoder } from '../../src/cdc/postgres/decode.js';
import type { CapturedTable } from '../../src/cdc/postgres/table.js';
import { ConfigError } from '../../src/core/exit-codes.js';
import { parseTableSchema } from '../../src/core/envelope.js';

const KEY = 'k'.repeat(32);
const hmac = (text: string, key = KEY): string => createHmac('sha256', key).update(text).digest('hex');
const configError = (pattern: RegExp) => (e: unknown) => e instanceof ConfigError && pattern.test(e.message);

const table: CapturedTable = {
  schema: 'public', table: 'user_logins', qualified: 'public.user_logins', primaryKey: ['id'], columns: ['id', 'username', 'email', 'event_time', 'sent_to_kafka'],
  primaryKeyTypes: ['integer'], sentFlag: 'sent_to_kafka', replicaIdentity: 'f', partitioned: false, owned: true,
};
const relationColumns = [
  { name: 'id', typeOid: 23, typmod: -1 }, { name: 'username', typeOid: 1043, typmod: 68 }, { name: 'email', typeOid: 25, typmod: -1 },
  { name: 'event_time', typeOid: 1114, typmod: -1 }, { name: 'sent_to_kafka', typeOid: 16, typmod: -1 },
];

describe('column policy', () => {
  it('parses schema.table.column, table.column (public) and quoted parts', () => {
    assert.deepEqual(parseColumnRef('public.user_logins.username', '--x'), { schema: 'public', table: 'user_logins', column: 'username', text: 'public.user_logins.username' });
    assert.deepEqual(parseColumnRef('user_logins.username', '--x').schema, 'public');
    assert.deepEqual(parseColumnRef('"My.Schema"."T"."E-Mail"', '--x'), { schema: 'My.Schema', table: 'T', column: 'E-Mail', text: '"My.Schema"."T"."E-Mail"' });
    assert.throws(() => parseColumnRef('username', '--exclude-column'), configError(/--exclude-column must be 'schema.table.column'/));
  });

  it('takes flags over environment, the key from CDC_HASH_KEY or CDC_HASH_KEY_FILE', () => {
    const fromEnv = resolveColumnPolicy({}, { CDC_EXCLUDE_COLUMNS: 'public.a.x, public.b.y', CDC_HASH_COLUMNS: 'public.a.z', CDC_HASH_KEY: KEY });
    assert.deepEqual(fromEnv.excluded.map((r) => r.text), ['public.a.x', 'public.b.y']);
    assert.equal(fromEnv.treatment('public.a', 'z'), 'hash');
    assert.equal(fromEnv.treatment('public.a', 'w'), 'keep');
    assert.equal(fromEnv.hashText('alice'), hmac('alice'));
    const fromFlags = resolveColumnPolicy({ excludeColumn: ['public.c.x'] }, { CDC_EXCLUDE_COLUMNS: 'public.a.x' });
    assert.deepEqual(fromFlags.excluded.map((r) => r.text), ['public.c.x']);
    const dir = mkdtempSync(path.join(tmpdir(), 'wb-key-'));
    writeFileSync(path.join(dir, 'key'), `${KEY}\n`);
    assert.equal(resolveColumnPolicy({ hashColumn: ['public.a.z'] }, { CDC_HASH_KEY_FILE: path.join(dir, 'key') }).hashText('alice'), hmac('alice'));
    assert.ok(resolveColumnPolicy({}, {}).empty);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a hash column without a key, a short key, two keys, and a column both excluded and hashed', () => {
    assert.throws(() => resolveColumnPolicy({ hashColumn: ['public.a.z'] }, {}), configError(/--hash-column public\.a\.z needs a key: set CDC_HASH_KEY, or CDC_HASH_KEY_FILE/));
    assert.throws(() => resolveColumnPolicy({ hashColumn: ['public.a.z'] }, { CDC_HASH_KEY: 'short' }), configError(/has 5 bytes; give at least 16/));
    assert.throws(() => resolveColumnPolicy({ hashColumn: ['public.a.z'] }, { CDC_HASH_KEY: KEY, CDC_HASH_KEY_FILE: '/x' }), configError(/both set/));
    assert.throws(() => resolveColumnPolicy({ hashColumn: ['public.a.z'] }, { CDC_HASH_KEY_FILE: '/nonexistent/key' }), configError(/CDC_HASH_KEY_FILE=\/nonexistent\/key: ENOENT/));
    assert.throws(() => resolveColumnPolicy({ hashColumn: ['public.a.z'], excludeColumn: ['a.z'] }, { CDC_HASH_KEY: KEY }), configError(/both excluded .* and hashed/));
  });

  it('checks the rules against the tables: known table, existing column, never a key column', () => {
    const policy = (exclude: string[], hash: string[] = []) => resolveColumnPolicy({ excludeColumn: exclude, hashColumn: hash }, { CDC_HASH_KEY: KEY });
    assert.doesNotThrow(() => policy(['public.user_logins.email'], ['public.user_logins.username']).check([table], 'captured (--table)'));
    assert.throws(() => policy(['public.user_logins.nope']).check([table], 'captured (--table)'), configError(/--exclude-column public\.user_logins\.nope: table public\.user_logins has no column nope \(its columns: id, username/));
    assert.throws(() => policy(['public.user_logins.id']).check([table], 'captured (--table)'), configError(/id is part of the primary key of public\.user_logins.*cannot be left out/));
    assert.throws(() => policy([], ['public.user_logins.id']).check([table], 'captured (--table)'), configError(/cannot be hashed/));
    assert.throws(() => policy(['public.other.x']).check([table], 'captured (--table)'), configError(/table public\.other is not captured \(--table\)/));
    assert.doesNotThrow(() => policy(['public.other.x']).check([table]), 'without `others`, rules of other tables are not this check\'s business');
  });

  it('the decoder: an excluded column is in no row image and not in the header; a hashed one is keyed hex, announced as text', async () => {
    const columns = new ColumnPolicy([parseColumnRef('public.user_logins.email', '--exclude-column')], [parseColumnRef('public.user_logins.username', '--hash-column')], Buffer.from(KEY));
    const decoder = new ChangeDecoder([table], {
      topicPrefix: 'walbridge', database: 'db', markSent: true, tombstones: false, columns,
      missingValues: async () => new Map([['username', 'nobody']]),
    });
    decoder.relation({ oid: 1, schema: 'public', table: 'user_logins', replicaIdentity: 'f', columns: relationColumns });
    const txn = { xid: 1, finalLsn: 0x10n, commitTimeUs: 0, lastCommitLsn: null, order: 1 };
    const insert = decoder.insert(1, ['1', 'alice', 'alice@example.com', '2024-05-01 10:00:00', 'f'], 0x8n, txn);
    const [update] = decoder.update(1, ['1', 'alice', 'alice@example.com', '2024-05-01 10:00:00', 't'], null, ['1', 'alice2', 'a2@example.com', '2024-05-01 10:00:00', 't'], 0x9n, txn);
    const [deletion] = decoder.delete(1, ['1', 'alice2', 'a2@example.com', '2024-05-01 10:00:00', 't'], null, 0xan, txn);
    const snapshot = decoder.snapshotRow(decoder.snapshotLayout(table, relationColumns), ['2', 'bob', 'bob@example.com', null, 'f'], { version: 0x5n, txId: null, tsMs: 0 }, 'first');
    const events = [insert, update!, deletion!, snapshot];
    for (const event of events) {
      assert.doesNotMatch(event.value!, /alice|bob|example\.com|"email"/, event.value!);
    }
    assert.deepEqual(JSON.parse(insert.value!).after, { id: 1, username: hmac('alice'), event_time: 1714557600000000, sent_to_kafka: false });
    assert.equal(JSON.parse(update!.value!).before.username, hmac('alice'), 'stable: the same value, the same hash');
    assert.equal(JSON.parse(update!.value!).after.username, hmac('alice2'));
    assert.equal(JSON.parse(deletion!.value!).before.username, hmac('alice2'));
    assert.equal(JSON.parse(snapshot.value!).after.username, hmac('bob'));
    assert.notEqual(hmac('alice'), createHash('sha256').update('alice').digest('hex'), 'keyed: not a plain SHA-256');
    assert.notEqual(hmac('alice'), hmac('alice', 'another key of 16+ bytes'));
    assert.deepEqual(insert.markKey, ['1'], 'sent_to_kafka is still marked by the raw key');

    await insert.schema!.ready;
    await snapshot.schema!.ready;
    for (const header of [insert.schema!, snapshot.schema!]) {
      const schema = parseTableSchema(header.value!.toString());
      assert.deepEqual(schema.columns.map((c) => c.name), ['id', 'username', 'event_time', 'sent_to_kafka']);
      assert.deepEqual(schema.columns[1], { name: 'username', typeOid: 25, typmod: -1, key: false, missing: hmac('nobody') });
      assert.doesNotMatch(header.value!.toString(), /nobody/);
    }
  });

  it('the decoder: an excluded first column leaves no stray comma', () => {
    const first: CapturedTable = { ...table, primaryKey: ['event_time'] };
    const columns = new ColumnPolicy([parseColumnRef('public.user_logins.id', '--exclude-column')], [], null);
    const decoder = new ChangeDecoder([first], { topicPrefix: 'w', database: 'db', markSent: false, tombstones: false, columns, missingValues: async () => new Map() });
    decoder.relation({ oid: 1, schema: 'public', table: 'user_logins', replicaIdentity: 'f', columns: relationColumns });
    const insert = decoder.insert(1, ['1', 'alice', 'a@x', '2024-05-01 10:00:00', 'f'], 0x8n, { xid: 1, finalLsn: 0x10n, commitTimeUs: 0, lastCommitLsn: null, order: 1 });
    assert.deepEqual(Object.keys(JSON.parse(insert.value!).after), ['username', 'email', 'event_time', 'sent_to_kafka']);
  });
});
