import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RowBatch } from '../../src/sink/row-batch.js';
import { backoffDelay } from '../../src/core/retry.js';

const limits = { maxRows: 3, maxBytes: 1000, lingerMs: 100 };
const row = (line: string, version: bigint, generation = 1) => ({ table: 't', line, version, deleted: false, source: line, generation });

describe('RowBatch', () => {
  it('collapses by key, last wins, and keeps the last change last', () => {
    const batch = new RowBatch<string>(limits);
    batch.addRow('{"id":1}', row('a1', 1n));
    batch.addRow('{"id":2}', row('b1', 1n));
    batch.addRow('{"id":1}', row('a2', 1n));
    assert.deepEqual([...batch.rows.values()].map((r) => r.line), ['b1', 'a2']);
    assert.equal(batch.bytes, 4);
    assert.equal(batch.collapsed, 1);
  });
  it('never replaces a row with one of a lower version (a message read again)', () => {
    const batch = new RowBatch<string>(limits);
    batch.addRow('k', row('new', 5n));
    batch.addRow('k', row('old', 4n));
    assert.deepEqual([...batch.rows.values()].map((r) => r.line), ['new']);
  });
  it('replaces a row read before a rebalance by the same key read after it, whatever the versions', () => {
    const batch = new RowBatch<string>(limits);
    batch.addRow('k', row('before', 5n, 1));
    batch.addRow('k', row('after', 4n, 2));
    assert.deepEqual([...batch.rows.values()].map((r) => r.line), ['after']);
  });
  it('does not collapse rows without a key', () => {
    const batch = new RowBatch<string>(limits);
    batch.addRow(null, row('x', 1n));
    batch.addRow(null, row('y', 1n));
    assert.equal(batch.rows.size, 2);
  });
  it('is full at maxRows distinct rows, at maxBytes, or when sealed by a truncate', () => {
    const byRows = new RowBatch<string>(limits);
    for (const k of ['a', 'b', 'c']) byRows.addRow(k, row(k, 1n));
    assert.equal(byRows.full, true);
    const byBytes = new RowBatch<string>({ ...limits, maxBytes: 5 });
    byBytes.addRow('a', row('123456', 1n));
    assert.equal(byBytes.full, true);
    const sealed = new RowBatch<string>(limits);
    assert.equal(sealed.full, false);
    sealed.seal({ table: 't', position: { version: 9n, seq: 2n }, generation: 1 });
    assert.equal(sealed.full, true);
  });
  it('counts dead letters against maxBytes, so a run of poison messages cannot grow a batch without bound', () => {
    const batch = new RowBatch<string>({ ...limits, maxBytes: 100 });
    batch.addDeadLetter({ source: 'p1', error: 'not JSON', generation: 1 }, 60);
    assert.equal(batch.full, false);
    batch.addDeadLetter({ source: 'p2', error: 'not JSON', generation: 1 }, 60);
    assert.equal(batch.full, true);
  });
  it('tracks the next offset per partition (committed only in the generation it was read in)', () => {
    const batch = new RowBatch<string>(limits);
    assert.equal(batch.empty, true);
    batch.take('a', 0, 5n, 1);
    batch.take('a', 1, 2n, 1);
    batch.take('a', 0, 6n, 1);
    batch.take('b', 0, 1n, 2);
    assert.deepEqual([...batch.nextOffsets(1).get('a') ?? []], [[0, 7n], [1, 3n]]);
    assert.equal(batch.nextOffsets(1).has('b'), false, 'read in another generation: not committed');
    assert.deepEqual([...batch.nextOffsets(2).get('b') ?? []], [[0, 2n]]);
    assert.equal(batch.messages, 4);
    batch.take('a', 1, 3n, 2);
    assert.deepEqual([...batch.nextOffsets(1).get('a') ?? []], [[0, 7n]], 'read again in a newer generation: no longer committed in the old one');
    assert.deepEqual([...batch.nextOffsets(2).get('a') ?? []], [[1, 4n]]);
  });
});

describe('backoffDelay', () => {
  it('doubles up to the cap, with jitter in the upper half', () => {
    assert.equal(backoffDelay(0, 500, 10_000, () => 1), 500);
    assert.equal(backoffDelay(3, 500, 10_000, () => 1), 4000);
    assert.equal(backoffDelay(10, 500, 10_000, () => 1), 10_000);
    assert.equal(backoffDelay(10, 500, 10_000, () => 0), 5000);
  });
});
