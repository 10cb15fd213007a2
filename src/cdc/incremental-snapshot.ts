/**
 * Incremental snapshots (issue 9): reads requested tables chunk by chunk
 * while the stream goes on, DBLog style (chunk-window.ts has the merge rule).
 *
 * Per chunk: low watermark → read the next rows by primary key → hand them
 * to the window → high watermark → wait until the stream met the high
 * watermark (the surviving rows are then pushed) → wait until they are
 * delivered (acknowledged by Kafka and marked) → record the chunk's last key.
 * A request finishes with the chunk that reaches the end of the table.
 *
 * Contract: one chunk in flight at a time, so memory is one chunk (rows and
 * bytes bounded) plus the keys changed during its window and the table's
 * changes streamed since the previous chunk that its read may not see
 * (chunk-window.ts); the stream is never paused for it. Progress is recorded only after delivery, so a killed
 * cdc resumes after the last delivered chunk. `run` resolves when `stop` is
 * called (or, with `untilIdle`, when no request is left); it rejects on a
 * database failure.
 */
import type { Logger } from '../observability/logger.js';
import type { ChunkWindows } from './chunk-window.js';
import type { Chunk, ChunkQuery, ChunkTable } from './postgres/chunk-reader.js';
import type { SnapshotRequest } from './postgres/snapshot-requests.js';
import type { Watermark } from './postgres/watermarks.js';

/** Where chunks come from: watermarks and reads on one session, in call order. */
export interface ChunkSource {
  emit(watermark: Watermark): Promise<void>;
  highestKey(table: ChunkTable, unsentOnly: boolean): Promise<string[] | null>;
  /** Resolves once the transactions running now have ended (chunk-reader.ts says why), or once `stopped()` says so. */
  settle(onWait: () => void, stopped: () => boolean): Promise<void>;
  read(query: ChunkQuery): Promise<Chunk>;
}

/** The durable requests (snapshot-requests.ts, bound to a session). */
export interface RequestStore {
  list(): Promise<SnapshotRequest[]>;
  /** Fixes where the reading ends; false: the request was replaced meanwhile. */
  start(request: SnapshotRequest, maxKey: string[]): Promise<boolean>;
  /** false: the request was replaced meanwhile. */
  record(request: SnapshotRequest, lastKey: string[], rows: number): Promise<boolean>;
  finish(request: SnapshotRequest): Promise<boolean>;
}

export interface IncrementalSnapshotOptions {
  slot: string;
  /** The watermark run id, the same as the windows'. */
  run: string;
  source: ChunkSource;
  store: RequestStore;
  windows: ChunkWindows;
  /** The table's key and flag column as the catalog has them now. */
  describe(table: { schema: string; table: string }): Promise<ChunkTable>;
  /** Resolves when every event pushed so far is delivered (the batcher's drain). */
  delivered(): Promise<void>;
  chunkRows: number;
  chunkBytes: number;
  /** How often to look for new requests when there is nothing to do. */
  pollMs: number;
  /** End `run` once no request is left (`cdc start --once`) instead of waiting for new ones. */
  untilIdle?: boolean;
  logger: Logger;
}

export class IncrementalSnapshot {
  private stopping = false;
  private wake: () => void = () => {};

  constructor(private readonly options: IncrementalSnapshotOptions) {}

  /** No new chunk; a chunk whose high watermark the stream has not met yet is given up (read again next time). */
  stop(): void {
    this.stopping = true;
    this.options.windows.abort(new Error('cdc is stopping'));
    this.wake();
  }

  async run(): Promise<void> {
    while (!this.stopping) {
      const requests = await this.options.store.list();
      for (const request of requests) {
        if (this.stopping) return;
        if (!(await this.snapshotTable(request))) return;
      }
      if (requests.length === 0) {
        if (this.options.untilIdle) return;
        await this.sleep(this.options.pollMs);
      }
    }
  }

  /** Reads one request to its end (true), or until stopped (false). A replaced request ends early (true): the next list has its successor. */
  private async snapshotTable(request: SnapshotRequest): Promise<boolean> {
    const { logger, windows, source, store, slot, run } = this.options;
    const name = `${request.table.schema}.${request.table.table}`;
    const table = await this.options.describe(request.table);
    const unsentOnly = request.mode === 'unsent' && table.sentFlag !== null;
    let upTo = request.maxKey;
    if (request.state === 'requested' || upTo === null) {
      await source.settle(() => logger.info({ table: name }, 'incremental snapshot: waiting for transactions older than the request to end'), () => this.stopping);
      if (this.stopping) return false;
      // Bounded by today's highest key: rows inserted above it later stream anyway.
      upTo = await source.highestKey(table, unsentOnly);
      if (upTo === null) {
        await store.finish(request);
        logger.info({ table: name }, 'incremental snapshot: no rows to read');
        return true;
      }
      if (!(await store.start(request, upTo))) return true;
    }
    let after = request.lastKey;
    let chunk = request.chunks;
    logger.info({ table: name, mode: request.mode, resumedAfterChunk: chunk || undefined }, chunk ? 'incremental snapshot: resuming' : 'incremental snapshot: starting');
    // Changes of the table streamed from here on are kept while a chunk read may not see them (chunk-window.ts).
    windows.track(name);
    try {
      for (;;) {
        if (this.stopping) return false;
        chunk++;
        const mark = (kind: Watermark['kind']): Watermark => ({ slot, run, table: name, chunk, kind });
        const pushed = windows.open(name, chunk);
        pushed.catch(() => {}); // awaited below; a stop may reject it while the chunk is still being read
        let read: Chunk;
        try {
          await source.emit(mark('low'));
          read = await source.read({ table, after, upTo, unsentOnly, maxRows: this.options.chunkRows, maxBytes: this.options.chunkBytes });
          windows.rowsRead(name, chunk, { columns: read.columns, rows: read.rows, snapshot: read.snapshot });
          await source.emit(mark('high'));
        } catch (error) {
          if (this.stopping) return false; // `stop` closed the window under the read
          windows.abort(error as Error);
          throw error;
        }
        let count: number;
        try {
          count = await pushed;
          await this.options.delivered();
        } catch (error) {
          // Not recorded: the chunk is read again next time. Only a stop ends quietly.
          logger.info({ table: name, chunk, reason: (error as Error).message }, 'incremental snapshot: chunk not completed');
          if (this.stopping) return false;
          throw error;
        }
        const recorded = read.lastKey === null ? true : await store.record(request, read.lastKey, count);
        if (!recorded) {
          logger.info({ table: name }, 'incremental snapshot: request replaced while running; starting over');
          return true;
        }
        logger.debug({ table: name, chunk, read: read.rows.length, pushed: count }, 'incremental snapshot: chunk delivered');
        after = read.lastKey ?? after;
        if (read.last) {
          await store.finish(request);
          logger.info({ table: name, chunks: chunk }, 'incremental snapshot: done');
          return true;
        }
      }
    } finally {
      windows.untrack(name);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
