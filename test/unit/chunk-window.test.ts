/** The DBLog window: which chunk rows survive, at which version, and when. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkWindows } from '../../src/cdc/chunk-window.js';
import type { DecodedChange } from '../../src/cdc/postgres/decode.js';
import type { Watermark } from '../../src/cdc/postgres/watermarks.js';

const TABLE = 'public.t';
const columns = [{ name: 'id', typeOid: 23, typmod: -1 }, { name: 'v', typeOid: 25, typmod: -1 }];
const row = (id: number, v = `v${id}`): (string | null)[] => [String(id), v];
const mark = (chunk: number, kind: Watermark['kind'], run = 'run1', table = TABLE): Watermark => ({ slot: 's', run, table, chunk, kind });
/** The read's snapshot in most tests: sees every transaction below 1000. */
const SEES_ALL = '900:1000:';

function windows(): { w: ChunkWindows; pushed: { key: string; value: string }[] } {
  const pushed: { key: string; value: string }[] = [];
  const w = new ChunkWindows({
    run: 'run1',
    encode: (_table, _columns, r, version) => ({ op: 'r', key: `{"id":${r[0]}}`, value: `${r[1]}@${version}` }) as DecodedChange,
    push: (change) => pushed.push({ key: change.key!, value: change.value! }),
  });
  return { w, pushed };
}

describe('ChunkWindows', () => {
  it('pushes the chunk rows at the high watermark, versioned with its commit LSN', async () => {
    const { w, pushed } = windows();
    const done = w.open(TABLE, 1);
    w.watermark(mark(1, 'low'), 100n);
    w.rowsRead(TABLE, 1, { columns, rows: [row(1), row(2)], snapshot: SEES_ALL });
    assert.equal(pushed.length, 0, 'nothing before the high watermark');
    w.watermark(mark(1, 'high'), 200n);
    assert.equal(await done, 2);
    assert.deepEqual(pushed, [{ key: '{"id":1}', value: 'v1@200' }, { key: '{"id":2}', value: 'v2@200' }]);
  });

  it('drops rows whose key changed inside the window, not before it, and ignores other tables', async () => {
    const { w, pushed } = windows();
    const done = w.open(TABLE, 1);
    w.observe(TABLE, '{"id":1}', 950); // before the low watermark: the read already has it
    w.watermark(mark(1, 'low'), 100n);
    w.observe(TABLE, '{"id":2}', 951);
    w.observe('public.other', '{"id":3}', 951);
    w.rowsRead(TABLE, 1, { columns, rows: [row(1), row(2), row(3)], snapshot: SEES_ALL });
    w.observe(TABLE, '{"id":9}', 952); // not in the chunk: nothing to drop
    w.watermark(mark(1, 'high'), 200n);
    assert.equal(await done, 2);
    assert.deepEqual(pushed.map((p) => p.key), ['{"id":1}', '{"id":3}']);
  });

  it('a truncate inside the window drops the whole chunk', async () => {
    const { w, pushed } = windows();
    const done = w.open(TABLE, 1);
    w.watermark(mark(1, 'low'), 100n);
    w.observe(TABLE, null, 951);
    w.rowsRead(TABLE, 1, { columns, rows: [row(1)], snapshot: SEES_ALL });
    w.watermark(mark(1, 'high'), 200n);
    assert.equal(await done, 0);
    assert.equal(pushed.length, 0);
  });

  it("ignores watermarks of another run (replayed after a restart) and of another chunk", async () => {
    const { w, pushed } = windows();
    const done = w.open(TABLE, 2);
    w.watermark(mark(2, 'low', 'old-run'), 50n);
    w.watermark(mark(1, 'low'), 60n);
    w.observe(TABLE, '{"id":1}', 950); // window not open yet
    w.watermark(mark(2, 'low'), 100n);
    w.rowsRead(TABLE, 2, { columns, rows: [row(1)], snapshot: SEES_ALL });
    w.watermark(mark(2, 'high', 'old-run'), 150n);
    w.watermark(mark(1, 'high'), 160n);
    assert.equal(pushed.length, 0);
    w.watermark(mark(2, 'high'), 200n);
    assert.equal(await done, 1);
  });

  it('a change streamed before the low watermark that the read did not see yet counts as changed in the window', async () => {
    // PostgreSQL streams a commit a moment before other sessions see it: 951 (running in the read's
    // snapshot) and 1001 (past its xmax) were streamed before the low watermark, yet missing from the read.
    const { w, pushed } = windows();
    const done = w.open(TABLE, 1);
    w.observe(TABLE, '{"id":1}', 950);
    w.observe(TABLE, '{"id":2}', 951);
    w.watermark(mark(1, 'low'), 100n);
    w.rowsRead(TABLE, 1, { columns, rows: [row(1), row(2), row(3), row(4)], snapshot: '940:1000:951' });
    w.watermark(mark(1, 'high'), 200n);
    assert.equal(await done, 3);
    assert.deepEqual(pushed.map((p) => p.key), ['{"id":1}', '{"id":3}', '{"id":4}']);

    // Streamed before the low watermark but after the rows were read (the stream lags): checked at once.
    const later = w.open(TABLE, 2);
    w.rowsRead(TABLE, 2, { columns, rows: [row(5), row(6), row(7)], snapshot: '940:1000:951' });
    w.observe(TABLE, '{"id":5}', 999);
    w.observe(TABLE, '{"id":6}', 1001);
    w.watermark(mark(2, 'low'), 300n);
    w.watermark(mark(2, 'high'), 400n);
    assert.equal(await later, 2);
    assert.deepEqual(pushed.slice(3).map((p) => p.key), ['{"id":5}', '{"id":7}']);

    // An invisible truncate before the window: the read shows rows the truncate removed.
    const third = w.open(TABLE, 3);
    w.observe(TABLE, null, 951);
    w.watermark(mark(3, 'low'), 500n);
    w.rowsRead(TABLE, 3, { columns, rows: [row(8)], snapshot: '940:1000:951' });
    w.watermark(mark(3, 'high'), 600n);
    assert.equal(await third, 0);
  });

  it('a tracked table keeps its changes from the previous high watermark on, for the next chunk', async () => {
    const { w, pushed } = windows();
    w.track(TABLE);
    w.observe(TABLE, '{"id":1}', 951); // before the first chunk was opened
    const first = w.open(TABLE, 1);
    w.watermark(mark(1, 'low'), 100n);
    w.rowsRead(TABLE, 1, { columns, rows: [row(1), row(2)], snapshot: '940:1000:951' });
    w.watermark(mark(1, 'high'), 200n);
    assert.equal(await first, 1);
    w.observe(TABLE, '{"id":3}', 960); // between the chunks
    w.observe(TABLE, '{"id":4}', 961);
    const second = w.open(TABLE, 2);
    w.watermark(mark(2, 'low'), 300n);
    w.rowsRead(TABLE, 2, { columns, rows: [row(3), row(4), row(5)], snapshot: '940:1000:960' });
    w.watermark(mark(2, 'high'), 400n);
    assert.equal(await second, 2);
    assert.deepEqual(pushed.map((p) => p.key), ['{"id":2}', '{"id":4}', '{"id":5}']);

    // Missed by the second read (960), or changed in its window (962): kept for the next read, which sees 962 only.
    const inWindow = w.open(TABLE, 3);
    w.watermark(mark(3, 'low'), 410n);
    w.observe(TABLE, '{"id":8}', 962);
    w.rowsRead(TABLE, 3, { columns, rows: [row(7)], snapshot: '940:1000:960,962' });
    w.watermark(mark(3, 'high'), 420n);
    assert.equal(await inWindow, 1);
    const fourth = w.open(TABLE, 4);
    w.watermark(mark(4, 'low'), 430n);
    w.rowsRead(TABLE, 4, { columns, rows: [row(3), row(8), row(9)], snapshot: '940:1000:960' });
    w.watermark(mark(4, 'high'), 440n);
    assert.equal(await fourth, 2);
    assert.deepEqual(pushed.slice(3).map((p) => p.key), ['{"id":7}', '{"id":8}', '{"id":9}']);

    w.untrack(TABLE);
    w.observe(TABLE, '{"id":6}', 970); // no longer tracked, no chunk registered: not kept
    const fifth = w.open(TABLE, 5);
    w.watermark(mark(5, 'low'), 500n);
    w.rowsRead(TABLE, 5, { columns, rows: [row(6)], snapshot: '940:1000:970' });
    w.watermark(mark(5, 'high'), 600n);
    assert.equal(await fifth, 1);
  });

  it('a high watermark without its low one or rows is a failure, not a silent loss', async () => {
    const { w } = windows();
    const done = w.open(TABLE, 1);
    w.watermark(mark(1, 'high'), 200n);
    await assert.rejects(done, /before its low watermark/);
  });

  it('abort rejects the open chunks and frees the table for the next one', async () => {
    const { w } = windows();
    const done = w.open(TABLE, 1);
    w.abort(new Error('stopping'));
    await assert.rejects(done, /stopping/);
    const next = w.open(TABLE, 1);
    w.abort(new Error('again'));
    await assert.rejects(next);
  });
});
