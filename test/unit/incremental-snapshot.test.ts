/** The chunk driver against fakes: order of its steps, progress only after delivery, resume, replaced requests. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkWindows } from '../../src/cdc/chunk-window.js';
import { IncrementalSnapshot, type ChunkSource, type RequestStore } from '../../src/cdc/incremental-snapshot.js';
import type { Chunk, ChunkQuery } from '../../src/cdc/postgres/chunk-reader.js';
import type { DecodedChange } from '../../src/cdc/postgres/decode.js';
import type { SnapshotRequest } from '../../src/cdc/postgres/snapshot-requests.js';
import type { Watermark } from '../../src/cdc/postgres/watermarks.js';
import { createLogger } from '../../src/observability/logger.js';

const logger = createLogger('test');
logger.level = 'silent';
const columns = [{ name: 'id', typeOid: 23, typmod: -1 }];

/** A table of ids 1..n read by key, and a "stream" that meets each watermark right after it is emitted. */
class FakeDatabase implements ChunkSource {
  readonly log: string[] = [];
  windows!: ChunkWindows;
  version = 1000n;
  constructor(private readonly ids: number[]) {}
  async emit(watermark: Watermark): Promise<void> {
    this.log.push(`${watermark.kind}${watermark.chunk}`);
    const version = (this.version += 10n);
    setImmediate(() => this.windows.watermark(watermark, version));
  }
  async settle(): Promise<void> {
    this.log.push('settle');
  }
  async highestKey(): Promise<string[] | null> {
    this.log.push('max');
    return this.ids.length ? [String(Math.max(...this.ids))] : null;
  }
  async read(query: ChunkQuery): Promise<Chunk> {
    const after = query.after === null ? -Infinity : Number(query.after[0]);
    const upTo = query.upTo === null ? Infinity : Number(query.upTo[0]);
    const rows = this.ids.filter((id) => id > after && id <= upTo).slice(0, query.maxRows).map((id) => [String(id)]);
    this.log.push(`read>${query.after?.[0] ?? '-'}`);
    const lastKey = rows.length ? [rows.at(-1)![0]!] : null;
    return { columns, rows, snapshot: '900:1000:', lastKey, last: rows.length < query.maxRows };
  }
}

class FakeStore implements RequestStore {
  recorded: { lastKey: string[]; rows: number }[] = [];
  finished = 0;
  replaced = false;
  constructor(public requests: SnapshotRequest[]) {}
  async list(): Promise<SnapshotRequest[]> {
    return this.requests.filter((r) => r.state !== 'done');
  }
  async start(request: SnapshotRequest, maxKey: string[]): Promise<boolean> {
    request.state = 'running';
    request.maxKey = maxKey;
    return true;
  }
  async record(request: SnapshotRequest, lastKey: string[], rows: number): Promise<boolean> {
    if (this.replaced) return false;
    this.recorded.push({ lastKey, rows });
    request.lastKey = lastKey;
    request.chunks++;
    return true;
  }
  async finish(request: SnapshotRequest): Promise<boolean> {
    request.state = 'done';
    this.finished++;
    return true;
  }
}

function request(lastKey: string[] | null = null, chunks = 0, maxKey: string[] | null = null): SnapshotRequest {
  const state = maxKey === null ? 'requested' : 'running';
  return { slot: 's', table: { schema: 'public', table: 't' }, mode: 'all', state, generation: 1, maxKey, lastKey, chunks, rows: 0 };
}

function setup(ids: number[], store: FakeStore, delivered: () => Promise<void> = async () => {}) {
  const db = new FakeDatabase(ids);
  const pushed: string[] = [];
  const windows = new ChunkWindows({
    run: 'r',
    encode: (_t, _c, row) => ({ op: 'r', key: `{"id":${row[0]}}`, value: '' }) as DecodedChange,
    push: (change) => pushed.push(change.key!),
  });
  db.windows = windows;
  const snapshot = new IncrementalSnapshot({
    slot: 's', run: 'r', source: db, store, windows, delivered, chunkRows: 3, chunkBytes: 1 << 20, pollMs: 5, logger,
    describe: async (t) => ({ ...t, primaryKey: ['id'], columns: ['id'], sentFlag: null }),
  });
  return { db, pushed, snapshot };
}

describe('IncrementalSnapshot', () => {
  it('reads every row once, chunk by chunk: low watermark, read, high watermark; records each chunk, then finishes', async () => {
    const store = new FakeStore([request()]);
    const { db, pushed, snapshot } = setup([1, 2, 3, 4, 5, 6, 7], store);
    const running = snapshot.run();
    while (store.finished === 0) await new Promise((r) => setTimeout(r, 2));
    snapshot.stop();
    await running;
    assert.deepEqual(pushed, ['1', '2', '3', '4', '5', '6', '7'].map((id) => `{"id":${id}}`));
    assert.deepEqual(db.log, ['settle', 'max', 'low1', 'read>-', 'high1', 'low2', 'read>3', 'high2', 'low3', 'read>6', 'high3']);
    assert.deepEqual(store.recorded, [{ lastKey: ['3'], rows: 3 }, { lastKey: ['6'], rows: 3 }, { lastKey: ['7'], rows: 1 }]);
  });

  it('reads up to the highest key it found at the start: rows inserted above it later stream anyway, so it never chases the inserts', async () => {
    const ids = [1, 2, 3, 4, 5];
    const store = new FakeStore([request()]);
    const { db, pushed, snapshot } = setup(ids, store);
    const read = db.read.bind(db);
    db.read = async (query) => {
      ids.push(ids.length + 1, ids.length + 2, ids.length + 3); // a busy table: inserts outpace the chunks
      return read(query);
    };
    const running = snapshot.run();
    while (store.finished === 0) await new Promise((r) => setTimeout(r, 2));
    snapshot.stop();
    await running;
    assert.deepEqual(pushed, [1, 2, 3, 4, 5].map((id) => `{"id":${id}}`));
  });

  it('an empty table finishes at once', async () => {
    const store = new FakeStore([request()]);
    const { db, snapshot } = setup([], store);
    const running = snapshot.run();
    while (store.finished === 0) await new Promise((r) => setTimeout(r, 2));
    snapshot.stop();
    await running;
    assert.deepEqual(db.log, ['settle', 'max']);
  });

  it('resumes after the recorded key, numbering chunks on', async () => {
    const store = new FakeStore([request(['6'], 2, ['7'])]);
    const { db, pushed, snapshot } = setup([1, 2, 3, 4, 5, 6, 7], store);
    const running = snapshot.run();
    while (store.finished === 0) await new Promise((r) => setTimeout(r, 2));
    snapshot.stop();
    await running;
    assert.deepEqual(db.log, ['low3', 'read>6', 'high3']);
    assert.deepEqual(pushed, ['{"id":7}']);
  });

  it('records a chunk only after its events are delivered; a stop before that leaves it unrecorded', async () => {
    const store = new FakeStore([request()]);
    const deliveries: { resolve: () => void; reject: (error: Error) => void }[] = [];
    const { snapshot } = setup([1, 2, 3, 4], store, () => new Promise<void>((resolve, reject) => deliveries.push({ resolve, reject })));
    const running = snapshot.run();
    while (deliveries.length === 0) await new Promise((r) => setTimeout(r, 2));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(store.recorded.length, 0, 'not recorded while undelivered');
    deliveries[0]!.resolve();
    while (deliveries.length < 2) await new Promise((r) => setTimeout(r, 2));
    assert.equal(store.recorded.length, 1);
    snapshot.stop();
    deliveries[1]!.reject(new Error('stopped before delivery'));
    await running;
    assert.equal(store.recorded.length, 1, 'the second chunk, undelivered at the stop, is not recorded');
    assert.equal(store.finished, 0);
  });

  it('a delivery failure (not a stop) fails the run: nothing is recorded', async () => {
    const store = new FakeStore([request()]);
    const { snapshot } = setup([1, 2, 3, 4], store, () => Promise.reject(new Error('Kafka is gone')));
    await assert.rejects(snapshot.run(), /Kafka is gone/);
    assert.equal(store.recorded.length, 0);
  });

  it('a request replaced while running is dropped, and the next list is taken up', async () => {
    const store = new FakeStore([request()]);
    store.replaced = true;
    const { db, snapshot } = setup([1, 2, 3, 4], store);
    const running = snapshot.run();
    while (db.log.filter((l) => l === 'low1').length < 2) await new Promise((r) => setTimeout(r, 2));
    snapshot.stop();
    await running;
    assert.equal(store.recorded.length, 0);
  });
});
