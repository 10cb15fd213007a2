/**
 * The DBLog window of an incremental snapshot chunk, on the stream's side.
 *
 * The reader emits a low watermark, reads a chunk of rows, hands them here,
 * then emits a high watermark. The stream meets the watermarks in commit
 * order among the streamed changes. Between the two (the window), a streamed
 * change of the chunk's table whose key is in the chunk makes that chunk row
 * stale or at best equal, so it is dropped: the change itself is the newer
 * state, already on its way. At the high watermark the rows left are pushed
 * as op 'r' events inside the high watermark's transaction, versioned with
 * its commit LSN: older than nothing they could overwrite (changes before the
 * low watermark are in the read; changes in the window were dropped against),
 * and every later change of the same key commits later, so has a higher
 * version. A truncate of the table in the window drops the whole chunk (its
 * rows would otherwise outlive the truncate downstream).
 *
 * Changes streamed before the low watermark are normally in the read. Not
 * always: PostgreSQL streams a commit a moment before other sessions see it
 * (postgres/visibility.ts), so a read just after the low watermark can miss
 * a transaction committed just before it, and its chunk row would be older
 * than the event already sent, yet win downstream with its higher version.
 * So while a table is tracked (`track`, from the start of its request's
 * chunks to their end), its streamed changes are kept with their xid until
 * a chunk read shows it sees their transaction: those a read does not see
 * count as changed in that chunk's window, and stay kept for the next
 * chunk (the marking makes most of them visible before it; a table without
 * `sent_to_kafka` has nothing that waits). Not covered: a transaction
 * streamed before `track` and still invisible at the first chunk's read.
 *
 * Contract: `track` before the first `open` of a table, `untrack` after its
 * last chunk; `open` before the low watermark is emitted; `rowsRead` before
 * the high watermark is emitted; `observe` for every streamed change in
 * stream order, with its transaction's xid; `watermark` when the stream
 * meets one, synchronously, before the next change. The promise of `open` resolves once the chunk's surviving rows
 * are pushed (with their count); `abort` rejects every open chunk.
 */
import type { Lsn } from '../core/lsn.js';
import type { DecodedChange } from './postgres/decode.js';
import type { RelationColumn } from './postgres/pgoutput-reader.js';
import { visibilityIn, type Visibility } from './postgres/visibility.js';
import type { Watermark } from './postgres/watermarks.js';

export interface ChunkRows {
  columns: RelationColumn[];
  rows: (string | null)[][];
  /** The read's snapshot, `pg_current_snapshot()` text. */
  snapshot: string;
}

export interface ChunkWindowOptions {
  /** This process's watermark run id: watermarks of other runs (replayed after a restart) are ignored. */
  run: string;
  /** A chunk row as an op 'r' event at `version` (the key text must be the stream's for the same row). */
  encode(table: string, columns: ChunkRows['columns'], row: (string | null)[], version: Lsn): DecodedChange;
  /** Hands an event to delivery, inside the stream's current transaction. */
  push(change: DecodedChange): void;
}

interface OpenChunk {
  chunk: number;
  /** Whether the stream has met the low watermark. */
  open: boolean;
  changed: Set<string>;
  truncated: boolean;
  /** Changes streamed before the low watermark (since the previous chunk) that the read may not see. */
  early: Early[];
  /** Changes in the window of a tracked table, handed on to the next chunk at the high watermark. */
  inWindow: Early[];
  /** What the read's snapshot sees (once the rows are read). */
  visible: Visibility | null;
  rows: ChunkRows | null;
  resolve(pushed: number): void;
  reject(error: Error): void;
}

/** A streamed change kept until a chunk read shows it saw its transaction (key null: a truncate). */
interface Early {
  key: string | null;
  xid: number;
}

export class ChunkWindows {
  /** At most one chunk per table at a time, by `schema.table`. */
  private readonly chunks = new Map<string, OpenChunk>();
  /** Tracked tables: their changes streamed since the last high watermark while no chunk is registered. */
  private readonly tracked = new Map<string, Early[]>();

  constructor(private readonly options: ChunkWindowOptions) {}

  /** Keeps `table`'s streamed changes from now on until `untrack`, so a chunk read that misses one is caught. */
  track(table: string): void {
    if (!this.tracked.has(table)) this.tracked.set(table, []);
  }

  untrack(table: string): void {
    this.tracked.delete(table);
  }

  /** Registers the chunk about to be read; resolves with the number of rows pushed at its high watermark. */
  open(table: string, chunk: number): Promise<number> {
    if (this.chunks.has(table)) throw new Error(`a chunk of ${table} is already being read`);
    const early = this.tracked.get(table)?.splice(0) ?? [];
    return new Promise<number>((resolve, reject) => {
      this.chunks.set(table, { chunk, open: false, changed: new Set(), truncated: false, early, inWindow: [], visible: null, rows: null, resolve, reject });
    });
  }

  rowsRead(table: string, chunk: number, rows: ChunkRows): void {
    const pending = this.chunks.get(table);
    if (pending?.chunk !== chunk) throw new Error(`rows of chunk ${chunk} of ${table}, which is not open`);
    pending.rows = rows;
    const visible = visibilityIn(rows.snapshot);
    pending.visible = visible;
    pending.early = pending.early.filter((change) => !visible(change.xid));
  }

  /** A streamed change of `table` (key text; null for a truncate) in transaction `xid` (null: none, nothing to check). */
  observe(table: string, key: string | null, xid: number | null): void {
    const pending = this.chunks.get(table);
    if (pending?.open) {
      if (key === null) pending.truncated = true;
      else pending.changed.add(key);
      if (xid !== null && this.tracked.has(table)) pending.inWindow.push({ key, xid });
      return;
    }
    // Before the low watermark, or between chunks: kept while a read may not see it.
    const early = pending ? pending.early : this.tracked.get(table);
    if (early === undefined || xid === null || pending?.visible?.(xid)) return;
    early.push({ key, xid });
  }

  /** The stream met a watermark in a transaction committed at `version`. */
  watermark(watermark: Watermark, version: Lsn): void {
    if (watermark.run !== this.options.run) return;
    const pending = this.chunks.get(watermark.table);
    if (pending?.chunk !== watermark.chunk) return;
    if (watermark.kind === 'low') {
      pending.open = true;
      return;
    }
    this.chunks.delete(watermark.table);
    if (!pending.open || pending.rows === null) {
      // Emitted in this order on one session, so the stream cannot show them otherwise.
      pending.reject(new Error(`high watermark of chunk ${watermark.chunk} of ${watermark.table} before its ${pending.open ? 'rows' : 'low watermark'}`));
      return;
    }
    for (const { key } of pending.early) {
      // Streamed before the window, missing from the read: as if changed in it.
      if (key === null) pending.truncated = true;
      else pending.changed.add(key);
    }
    let pushed = 0;
    if (!pending.truncated) {
      const { columns, rows } = pending.rows;
      for (const row of rows) {
        const change = this.options.encode(watermark.table, columns, row, version);
        if (change.key !== null && pending.changed.has(change.key)) continue;
        this.options.push(change);
        pushed++;
      }
    }
    // Whatever this read did not see, and the window's changes, may still be invisible to the next read.
    const next = this.tracked.get(watermark.table);
    if (next) {
      for (const change of pending.early) next.push(change);
      for (const change of pending.inWindow) next.push(change);
    }
    pending.resolve(pushed);
  }

  /** Stop or failure: every open chunk's reader gives up (its rows were not pushed; the chunk is read again next time). */
  abort(error: Error): void {
    for (const pending of this.chunks.values()) pending.reject(error);
    this.chunks.clear();
    this.tracked.clear();
  }
}
