/** pgoutput bytes → envelopes, with hand-built protocol messages. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChangeDecoder } from '../../src/cdc/postgres/decode.js';
import { readPgoutput, UNCHANGED_TOAST, type PgoutputMessage } from '../../src/cdc/postgres/pgoutput-reader.js';
import type { CapturedTable } from '../../src/cdc/postgres/table.js';
import { topicName } from '../../src/core/envelope.js';

const table: CapturedTable = {
  schema: 'public', table: 'user_logins', qualified: 'public.user_logins', primaryKey: ['id'], columns: ['id', 'username', 'event_time', 'sent_to_kafka'], primaryKeyTypes: ['integer'],
  sentFlag: 'sent_to_kafka', replicaIdentity: 'f', partitioned: false, owned: true,
};
const decoderOptions = { topicPrefix: 'walbridge', database: 'db1', markSent: true, tombstones: false, missingValues: async () => new Map<string, string>() };

function cstring(text: string): Buffer {
  return Buffer.concat([Buffer.from(text, 'utf8'), Buffer.from([0])]);
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function tuple(values: (string | null | 'u')[]): Buffer {
  return Buffer.concat([u16(values.length), ...values.map((v) =>
    v === null ? Buffer.from('n') : v === 'u' ? Buffer.from('u') : Buffer.concat([Buffer.from('t'), u32(Buffer.byteLength(v)), Buffer.from(v)]))]);
}
const columns: [string, number][] = [['id', 20], ['username', 25], ['event_time', 1114], ['sent_to_kafka', 16]];
const relationMessage = Buffer.concat([
  Buffer.from('R'), u32(16400), cstring('public'), cstring('user_logins'), Buffer.from('f'), u16(columns.length),
  ...columns.map(([name, oid]) => Buffer.concat([Buffer.from([1]), cstring(name), u32(oid), u32(0xffffffff)])),
]);

function expectTag<T extends PgoutputMessage['tag']>(message: PgoutputMessage, tag: T): Extract<PgoutputMessage, { tag: T }> {
  assert.equal(message.tag, tag);
  return message as Extract<PgoutputMessage, { tag: T }>;
}

describe('pgoutput reader and decoder', () => {
  it('reads Begin with its final (commit) LSN, and Commit with its end LSN', () => {
    const begin = Buffer.alloc(21);
    begin.write('B');
    begin.writeBigUInt64BE(0x1_0000_0010n, 1);
    begin.writeBigInt64BE(1_000_000n, 9); // 1 s after 2000-01-01
    begin.writeUInt32BE(777, 17);
    assert.deepEqual(readPgoutput(begin), { tag: 'begin', finalLsn: 0x1_0000_0010n, commitTimeUs: 946_684_801_000_000, xid: 777 });
    const commit = Buffer.alloc(26);
    commit.write('C');
    commit.writeBigUInt64BE(0x10n, 2);
    commit.writeBigUInt64BE(0x40n, 10);
    assert.deepEqual(readPgoutput(commit), { tag: 'commit', commitLsn: 0x10n, endLsn: 0x40n, commitTimeUs: 946_684_800_000_000 });
  });

  it('builds insert and update envelopes; key from the primary key, not the FULL identity flags', () => {
    const decoder = new ChangeDecoder([table], decoderOptions);
    decoder.relation(expectTag(readPgoutput(relationMessage), 'relation').relation);
    assert.equal(decoder.captures(16400), true);
    const txn = { xid: 9, finalLsn: 0x500n, commitTimeUs: 1_700_000_000_123_456, lastCommitLsn: 0x480n, order: 1 };

    const insert = expectTag(readPgoutput(Buffer.concat([Buffer.from('I'), u32(16400), Buffer.from('N'), tuple(['9007199254740993', 'alice', '2024-05-01 10:00:00.000001', 'f'])])), 'insert');
    const c = decoder.insert(16400, insert.newTuple, 0x4f0n, txn);
    assert.equal(c.key, '{"id":9007199254740993}');
    assert.deepEqual(c.markKey, ['9007199254740993']);
    assert.match(c.value!, /"after":\{"id":9007199254740993,"username":"alice","event_time":1714557600000001,"sent_to_kafka":false\}/);
    const envelope = JSON.parse(c.value!);
    assert.equal(c.topic, 'walbridge.public.user_logins');
    // Debezium's fields: commit time in ms/µs/ns, and [last commit LSN, LSN] as text.
    assert.equal(envelope.source.ts_ms, 1_700_000_000_123);
    assert.equal(envelope.source.ts_us, 1_700_000_000_123_456);
    assert.match(c.value!, /"ts_ns":1700000000123456000,/);
    assert.equal(envelope.source.sequence, `["${0x480}","${0x4f0}"]`);
    assert.equal(typeof envelope.ts_us, 'number');
    assert.equal(envelope.op, 'c');
    assert.equal(envelope.before, null);
    assert.equal(envelope.source.commit_lsn, '0/500');
    assert.equal(envelope.source.lsn, 0x4f0);
    assert.equal(envelope.source.txId, 9);
    assert.equal(envelope.source.snapshot, 'false');
    assert.equal(envelope.source.db, 'db1');
    assert.equal(envelope.transaction.total_order, 1);

    const u = expectTag(readPgoutput(Buffer.concat([Buffer.from('U'), u32(16400), Buffer.from('O'), tuple(['1', 'x'.repeat(3000), null, 'f']), Buffer.from('N'), tuple(['1', 'u', null, 't'])])), 'update');
    assert.equal(u.newTuple[1], UNCHANGED_TOAST);
    const updates = decoder.update(16400, u.oldTuple, null, u.newTuple, 0x4f8n, txn);
    assert.deepEqual(updates.map((e) => e.op), ['u']);
    const changed = JSON.parse(updates[0]!.value!);
    assert.equal(changed.after.username, 'x'.repeat(3000), 'unchanged TOAST value taken from the old row');
    assert.equal(changed.before.sent_to_kafka, false);
    assert.equal(changed.transaction.total_order, 2);
    assert.throws(() => decoder.update(16400, null, null, u.newTuple, 0x4f8n, txn), /REPLICA IDENTITY FULL/);
    // A Relation saying the identity was not FULL when the change was written: the error says so, and how to get past it.
    const defaultIdentity = Buffer.from(relationMessage);
    defaultIdentity[1 + 4 + 'public'.length + 1 + 'user_logins'.length + 1] = 'd'.charCodeAt(0);
    const relation = expectTag(readPgoutput(defaultIdentity), 'relation').relation;
    assert.equal(relation.replicaIdentity, 'd');
    decoder.relation(relation);
    assert.throws(() => decoder.update(16400, null, null, u.newTuple, 0x4f8n, txn), /had REPLICA IDENTITY DEFAULT when the change was written.*--from-lsn just past its commit LSN/);
  });

  it('an update that changes the primary key: a delete of the old key, then an insert of the new one, one version', () => {
    const decoder = new ChangeDecoder([table], decoderOptions);
    decoder.relation(expectTag(readPgoutput(relationMessage), 'relation').relation);
    const txn = { xid: 3, finalLsn: 0x700n, commitTimeUs: 0, lastCommitLsn: null, order: 1 };
    const [d, c, ...rest] = decoder.update(16400, ['7', 'x'.repeat(3000), null, 't'], null, ['8', UNCHANGED_TOAST, null, 'f'], 0x6f0n, txn);
    assert.equal(rest.length, 0);
    assert.equal(d!.op, 'd');
    assert.equal(d!.key, '{"id":7}');
    assert.equal(d!.markKey, null);
    assert.deepEqual(d!.headers, [['__debezium.newkey', '{"id":8}']]);
    const deleted = JSON.parse(d!.value!);
    assert.deepEqual(deleted.before, { id: 7, username: 'x'.repeat(3000), event_time: null, sent_to_kafka: true });
    assert.equal(deleted.after, null);
    assert.equal(c!.op, 'c');
    assert.equal(c!.key, '{"id":8}');
    assert.deepEqual(c!.markKey, ['8']);
    assert.deepEqual(c!.headers, [['__debezium.oldkey', '{"id":7}']]);
    const created = JSON.parse(c!.value!);
    assert.equal(created.before, null);
    assert.deepEqual(created.after, { id: 8, username: 'x'.repeat(3000), event_time: null, sent_to_kafka: false });
    assert.equal(deleted.source.commit_lsn, '0/700');
    assert.equal(created.source.commit_lsn, '0/700');
    assert.deepEqual([deleted.transaction.total_order, created.transaction.total_order], [1, 2]);
    // With REPLICA IDENTITY DEFAULT, PostgreSQL sends the old key only when it changed: same split.
    const keyed = decoder.update(16400, null, ['7', null, null, null], ['8', 'bob', null, 'f'], 0x6f8n, txn);
    assert.deepEqual(keyed.map((e) => [e.op, e.key]), [['d', '{"id":7}'], ['c', '{"id":8}']]);
  });

  it('delete carries the old row and no mark; truncate has no key', () => {
    const decoder = new ChangeDecoder([table], decoderOptions);
    decoder.relation(expectTag(readPgoutput(relationMessage), 'relation').relation);
    const txn = { xid: 1, finalLsn: 0x900n, commitTimeUs: 0, lastCommitLsn: null, order: 1 };
    const del = expectTag(readPgoutput(Buffer.concat([Buffer.from('D'), u32(16400), Buffer.from('O'), tuple(['5', 'bob', null, 't'])])), 'delete');
    const [d, ...none] = decoder.delete(16400, del.oldTuple, null, 0x800n, txn);
    assert.equal(none.length, 0, 'no tombstone unless asked for');
    assert.equal(d!.key, '{"id":5}');
    assert.equal(d!.markKey, null);
    assert.deepEqual(JSON.parse(d!.value!).before, { id: 5, username: 'bob', event_time: null, sent_to_kafka: true });
    const t = decoder.truncate(16400, 0x880n, txn);
    assert.equal(t.key, null);
    assert.equal(JSON.parse(t.value!).op, 't');
    assert.equal(JSON.parse(t.value!).source.commit_lsn, '0/900');
    const withTombstones = new ChangeDecoder([table], { ...decoderOptions, tombstones: true });
    withTombstones.relation(expectTag(readPgoutput(relationMessage), 'relation').relation);
    const [deletion, tombstone] = withTombstones.delete(16400, del.oldTuple, null, 0x800n, { ...txn, order: 1 });
    assert.equal(deletion!.op, 'd');
    assert.deepEqual([tombstone!.key, tombstone!.value], ['{"id":5}', null], 'a tombstone after the delete');
  });

  it('carries the relation\'s schema header, with the stored value of an added column', async () => {
    const decoder = new ChangeDecoder([table], { ...decoderOptions, missingValues: async () => new Map([['event_time', '2024-05-01 10:00:00']]) });
    decoder.relation(expectTag(readPgoutput(relationMessage), 'relation').relation);
    const c = decoder.insert(16400, ['1', 'a', null, 'f'], 0x10n, { xid: 1, finalLsn: 0x20n, commitTimeUs: 0, lastCommitLsn: null, order: 1 });
    await c.schema!.ready;
    const header = JSON.parse(c.schema!.value!.toString());
    assert.deepEqual(header.columns.map((col: { name: string; key: boolean }) => [col.name, col.key]), [['id', true], ['username', false], ['event_time', false], ['sent_to_kafka', false]]);
    assert.equal(header.columns[2].typeOid, 1114);
    assert.equal(header.columns[2].missing, 1714557600000000, 'in the event mapping (epoch microseconds)');
    assert.equal(header.columns[1].missing, undefined);
  });

  it('ignores tables it does not capture, and decodes each captured table to its own topic', () => {
    const other: CapturedTable = { ...table, table: 'orders', qualified: 'public.orders', sentFlag: null };
    const decoder = new ChangeDecoder([table, other], decoderOptions);
    decoder.relation({ ...expectTag(readPgoutput(relationMessage), 'relation').relation, oid: 1, schema: 'public', table: 'elsewhere' });
    assert.equal(decoder.captures(1), false);
    decoder.relation({ ...expectTag(readPgoutput(relationMessage), 'relation').relation, oid: 2, table: 'orders' });
    const c = decoder.insert(2, ['1', 'a', null, 'f'], 0x10n, { xid: 1, finalLsn: 0x20n, commitTimeUs: 0, lastCommitLsn: null, order: 1 });
    assert.equal(c.topic, 'walbridge.public.orders');
    assert.equal(c.markKey, null, 'orders has no sent_to_kafka column here');
  });

  it('names topics <prefix>.<schema>.<table>', () => {
    assert.equal(topicName('walbridge', 'public', 'user_logins'), 'walbridge.public.user_logins');
  });
});
