import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ValueError, epochMicros, utcTimestampText } from '../../src/sink/clickhouse/column-types.js';
import { RowMapper, targetTableOf } from '../../src/sink/clickhouse/rows.js';

const column = (name: string, type: string) => ({ name, type, default_type: '' });
const userLogins = (timeType: string) => targetTableOf('db', 'user_logins', [
  column('id', 'Int32'), column('username', 'Nullable(String)'), column('event_type', 'Nullable(String)'),
  column('event_time', `Nullable(${timeType})`), column('_version', 'UInt64'), column('_is_deleted', 'UInt8'),
  { name: '_synced_at', type: timeType, default_type: 'DEFAULT' },
], new Set(['id']));

describe('RowMapper (user_logins on ClickHouse 18.16: DateTime)', () => {
  const mapper = new RowMapper(userLogins("DateTime('UTC')"));
  it('maps an after-image: micros → unix seconds (truncated), exact version, sent_to_kafka ignored', () => {
    const line = mapper.upsert({ id: 42, username: 'a"b', event_type: null, event_time: 1_700_000_000_999_999, sent_to_kafka: true },
      18446744073709551615n, 0n, mapper.syncedAtFragment(1_700_000_005_500));
    assert.equal(line, '{"id":42,"username":"a\\"b","event_type":null,"event_time":1700000000,"_version":18446744073709551615,"_is_deleted":0,"_synced_at":1700000005}');
  });
  it('writes _seq, the event\'s position in its transaction, where the table has it', () => {
    const withSeq = new RowMapper(targetTableOf('db', 't', [column('id', 'Int32'), column('_version', 'UInt64'), column('_seq', 'UInt64'), column('_is_deleted', 'UInt8')], new Set(['id'])));
    assert.equal(withSeq.row({ kind: 'delete', version: 5n, seq: 3n, before: null, key: { id: 7 } }, ''), '{"id":7,"_version":5,"_seq":3,"_is_deleted":1}');
  });
  it('writes a delete as the key with _is_deleted = 1 and defaults elsewhere', () => {
    assert.equal(mapper.delete(null, { id: 7 }, 5n, 0n, ''), '{"id":7,"username":null,"event_type":null,"event_time":null,"_version":5,"_is_deleted":1}');
    assert.equal(mapper.delete({ id: 7, username: 'x' }, null, 5n, 0n, ''), '{"id":7,"username":"x","event_type":null,"event_time":null,"_version":5,"_is_deleted":1}');
  });
  it('refuses what does not fit the table', () => {
    assert.throws(() => mapper.upsert({ id: null }, 1n, 0n, ''), (e: unknown) => e instanceof ValueError && /id \(Int32\) is not Nullable/.test(e.message));
    assert.throws(() => mapper.upsert({ id: 2 ** 31 }, 1n, 0n, ''), /does not fit Int32/);
    assert.throws(() => mapper.upsert({ id: 1.5 }, 1n, 0n, ''), /does not fit Int32/);
    assert.throws(() => mapper.upsert({ id: 1, event_time: 'yesterday' }, 1n, 0n, ''), /event_time: .*not a timestamp/);
    assert.throws(() => mapper.upsert({ id: 1, event_time: -1 }, 1n, 0n, ''), /outside DateTime/);
    assert.throws(() => mapper.delete({ username: 'x' }, null, 1n, 0n, ''), /key column id/);
  });
  it("dead-letters Debezium's unchanged-TOAST placeholder instead of writing it over the value", () => {
    assert.throws(
      () => mapper.upsert({ id: 1, username: '__debezium_unavailable_value' }, 1n, 0n, ''),
      (e: unknown) => e instanceof ValueError && /username: .*REPLICA IDENTITY FULL/.test(e.message),
    );
  });
});

describe('RowMapper (newer servers: DateTime64(6, UTC))', () => {
  const mapper = new RowMapper(userLogins("DateTime64(6, 'UTC')"));
  it('keeps microseconds as UTC text', () => {
    const line = mapper.upsert({ id: 1, username: null, event_type: null, event_time: 1_700_000_000_000_001 }, 1n, 0n, '');
    assert.match(line, /"event_time":"2023-11-14 22:13:20\.000001"/);
  });
  it('refuses a DateTime64 column that is not UTC when reading the table', () => {
    assert.throws(() => targetTableOf('db', 't', [column('id', 'Int32'), column('t', "DateTime64(6, 'Europe/Berlin')"),
      column('_version', 'UInt64'), column('_is_deleted', 'UInt8')], new Set(['id'])), /declare it DateTime64\(6, 'UTC'\)/);
  });
});

describe('column types', () => {
  const table = targetTableOf('db', 't', [
    column('id', 'Int64'), column('amount', 'Decimal(20, 2)'), column('u', 'UInt64'), column('flag', 'UInt8'),
    column('doc', 'String'), column('d', 'Date'), column('f', 'Float64'), column('_version', 'UInt64'), column('_is_deleted', 'UInt8'),
  ], new Set(['id']));
  const mapper = new RowMapper(table);
  it('writes int8, numeric, bool, json and date values exactly', () => {
    const line = mapper.upsert({ id: 9223372036854775807n, amount: '123456789012345678.25', u: '18446744073709551615', flag: true,
      doc: { a: 1n }, d: 19675, f: 0.1 }, 3n, 0n, '');
    assert.equal(line, '{"id":9223372036854775807,"amount":123456789012345678.25,"u":18446744073709551615,"flag":1,"doc":"{\\"a\\":\\"1\\"}","d":"2023-11-14","f":0.1,"_version":3,"_is_deleted":0}');
  });
  it('needs _version and _is_deleted', () => {
    assert.throws(() => targetTableOf('db', 't', [column('id', 'Int32')], new Set(['id'])), /no _version column/);
  });
  it('reads ISO timestamps and formats UTC text', () => {
    assert.equal(epochMicros('2024-01-02T03:04:05.123456Z'), 1704164645123456n);
    assert.equal(epochMicros('2024-01-02T05:04:05.5+02:00'), 1704164645500000n);
    assert.equal(utcTimestampText(-1n, 6), '1969-12-31 23:59:59.999999');
    assert.equal(utcTimestampText(1704164645123456n, 3), '2024-01-02 03:04:05.123');
  });
});

describe('RowMapper: columns the event lacks', () => {
  const table = (omit: boolean) => targetTableOf('db', 't', [
    column('id', 'Int32'), { name: 'origin', type: 'String', default_type: 'DEFAULT', default_expression: "'pg'", default_value: '"pg"' },
    column('tags', 'Array(Nullable(String))'), column('gone', 'Nullable(String)'), column('_version', 'UInt64'), column('_is_deleted', 'UInt8'),
  ], new Set(['id']), omit);
  it("writes a DEFAULT evaluated once on 18.16 (no input_format_defaults_for_omitted_fields), [] for an Array, null for Nullable", () => {
    assert.equal(new RowMapper(table(false)).upsert({ id: 1, tags: null }, 2n, 0n, ''),
      '{"id":1,"origin":"pg","tags":[],"gone":null,"_version":2,"_is_deleted":0}');
  });
  it('omits a DEFAULT column where the server fills omitted fields from the DEFAULT', () => {
    assert.equal(new RowMapper(table(true)).upsert({ id: 1, origin: null, tags: ['a', null] }, 2n, 0n, ''),
      '{"id":1,"tags":["a",null],"gone":null,"_version":2,"_is_deleted":0}');
  });
});
