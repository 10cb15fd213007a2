import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeEvent, PoisonMessage } from '../../src/core/envelope.js';

const buf = (value: unknown): Buffer => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
const source = { connector: 'postgresql', schema: 'public', table: 'user_logins', commit_lsn: '1/A0' };

describe('decodeEvent', () => {
  it('takes the version from source.commit_lsn', () => {
    const event = decodeEvent(buf({ id: 1 }), buf({ op: 'c', before: null, after: { id: 1 }, source }));
    assert.deepEqual(event, { kind: 'upsert', version: 0x1_0000_00a0n, seq: 0n, after: { id: 1 } });
  });
  it('keeps a row\'s own big integer exact, also in a column named like the envelope\'s ts_ns', () => {
    const text = '{"op":"c","ts_ns":1764211200000000000,"source":{"commit_lsn":"1/A0","ts_ns":1764211200000000001},' +
      '"after":{"id":1,"ts_ns":1733160000123456789}}';
    const event = decodeEvent(null, Buffer.from(text));
    assert.equal(event.kind === 'upsert' && event.after.ts_ns, 1733160000123456789n);
  });
  it('falls back to Debezium source.lsn when there is no commit_lsn', () => {
    const event = decodeEvent(buf({ id: 1 }), buf({ op: 'u', after: { id: 1 }, source: { ...source, commit_lsn: undefined, lsn: 24023128 } }));
    assert.equal(event.kind === 'upsert' && event.version, 24023128n);
  });
  it('reads a Debezium envelope with schemas enabled ({schema, payload})', () => {
    const event = decodeEvent(null, buf({ schema: {}, payload: { op: 'r', after: { id: 3 }, source } }));
    assert.equal(event.kind, 'upsert');
  });
  it('takes the key for a delete from the message key', () => {
    const event = decodeEvent(buf({ id: 7 }), buf({ op: 'd', before: null, after: null, source }));
    assert.deepEqual(event, { kind: 'delete', version: 0x1_0000_00a0n, seq: 0n, before: null, key: { id: 7 } });
  });
  it('takes the event\'s position in its transaction from transaction.total_order (0 without one)', () => {
    const transaction = { id: '5:1/A0', total_order: 3, data_collection_order: 3 };
    assert.deepEqual(decodeEvent(null, buf({ op: 't', before: null, after: null, source, transaction })), { kind: 'truncate', version: 0x1_0000_00a0n, seq: 3n });
    assert.throws(() => decodeEvent(null, buf({ op: 't', source, transaction: { total_order: -1 } })), /total_order/);
  });
  it('reads truncate and tombstone', () => {
    assert.deepEqual(decodeEvent(null, buf({ op: 't', before: null, after: null, source })), { kind: 'truncate', version: 0x1_0000_00a0n, seq: 0n });
    assert.deepEqual(decodeEvent(buf({ id: 7 }), null), { kind: 'tombstone' });
  });
  it('names what is wrong with a poison message', () => {
    assert.throws(() => decodeEvent(null, buf('not json')), (e: unknown) => e instanceof PoisonMessage && /not JSON/.test(e.message));
    assert.throws(() => decodeEvent(null, buf([1, 2])), /not a change envelope/);
    assert.throws(() => decodeEvent(null, buf({ op: 'c', after: null, source })), /needs an "after" object/);
    assert.throws(() => decodeEvent(null, buf({ op: 'x', source })), /unknown op 'x'/);
    assert.throws(() => decodeEvent(null, buf({ op: 'c', after: { id: 1 }, source: { lsn: null } })), /neither source.commit_lsn/);
    assert.throws(() => decodeEvent(null, buf({ op: 'c', after: { id: 1 }, source: { commit_lsn: 'nope' } })), /not an LSN/);
    assert.throws(() => decodeEvent(null, buf({ op: 'd', before: null, source })), /needs a "before" image or a JSON object key/);
  });
});
