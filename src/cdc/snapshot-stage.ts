/**
 * The incremental-snapshot stage of a cdc run: two sessions of its own (one
 * for watermarks and chunk reads, one for the requests), the chunk windows
 * and the driver, and the two hooks the stream calls: `onLogicalMessage` (the
 * listener's option) and `observe` (every streamed change, from the push
 * funnel). A request for a table of the run's selection that it does not
 * capture yet (added to the publication by `cdc snapshot` while it runs) is
 * adopted first: topic, decoder; requests for tables outside the selection
 * wait for a run that selects them.
 *
 * Contract: start it once the stream runs. Chunk rows are pushed through
 * `push` inside the high watermark's transaction (so the checkpointer counts
 * them in that transaction and confirms it only once they are delivered).
 * `stop` gives up the chunk in hand (not recorded, read again later) and
 * closes the sessions; a database failure is reported once through
 * `onFailure`. With `untilIdle` (`cdc start --once`), `idle` resolves when no
 * request of a selected table is left.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { isSelected, type TableSelection } from '../config/table-selection.js';
import type { Lsn } from '../core/lsn.js';
import type { Logger } from '../observability/logger.js';
import { ChunkWindows } from './chunk-window.js';
import { IncrementalSnapshot } from './incremental-snapshot.js';
import { chunkSource } from './postgres/chunk-reader.js';
import type { DecodedChange, TransactionContext } from './postgres/decode.js';
import type { LogicalMessage, RelationColumn } from './postgres/pgoutput-reader.js';
import type { ServerVersion } from './postgres/server-version.js';
import { TEXT_OUTPUT_OPTIONS } from './postgres/slot.js';
import { requestStore } from './postgres/snapshot-requests.js';
import type { CapturedTable } from './postgres/table.js';
import { checkWatermarkSupport, readWatermark } from './postgres/watermarks.js';

export interface SnapshotStageOptions {
  databaseUrl: string;
  slot: string;
  server: ServerVersion;
  /** The run's table selection: requests for other tables wait. */
  selection: TableSelection;
  /** The captured table of that name, capturing it first when the run does not yet (topic, decoder). */
  adopt(name: { schema: string; table: string }): Promise<CapturedTable>;
  /** A row of a captured table as an op 'r' event at `version` (its key text as the stream writes it). */
  encode(table: CapturedTable, columns: RelationColumn[], row: (string | null)[], version: Lsn): DecodedChange;
  push(change: DecodedChange): void;
  /** Resolves when every event pushed so far is delivered (acknowledged and marked). */
  delivered(): Promise<void>;
  untilIdle: boolean;
  onFailure(error: Error): void;
  logger: Logger;
  chunkRows?: number;
  chunkBytes?: number;
  pollMs?: number;
}

export interface SnapshotStage {
  onLogicalMessage(message: LogicalMessage, txn: TransactionContext): void;
  observe(table: string, key: string | null, xid: number | null): void;
  /** Resolves when no request is left (only with `untilIdle`). */
  readonly idle: Promise<void>;
  stop(): Promise<void>;
}

const CHUNK_ROWS = 2_048;
const CHUNK_BYTES = 4 * 1024 * 1024;
const POLL_MS = 2_000;

/** Opens the stage (refusing PostgreSQL 13, which cannot send watermarks) and starts reading requests. */
export async function startSnapshotStage(options: SnapshotStageOptions): Promise<SnapshotStage> {
  const reader = new pg.Client({ connectionString: options.databaseUrl, options: TEXT_OUTPUT_OPTIONS, application_name: `walbridge-isnap-${options.slot}` });
  const bookkeeper = new pg.Client({ connectionString: options.databaseUrl, application_name: `walbridge-isnap-requests-${options.slot}` });
  checkWatermarkSupport(options.server);
  // A broken session fails the query in hand, or the next poll's (every pollMs): the driver reports it.
  for (const client of [reader, bookkeeper]) client.on('error', () => {});
  await reader.connect();
  await bookkeeper.connect();
  const run = randomBytes(6).toString('hex');
  const adopted = new Map<string, CapturedTable>();
  const windows = new ChunkWindows({
    run,
    encode: (name, columns, row, version) => options.encode(adopted.get(name)!, columns, row, version),
    push: options.push,
  });
  const store = requestStore(bookkeeper, options.slot);
  const driver = new IncrementalSnapshot({
    slot: options.slot,
    run,
    source: chunkSource(reader),
    store: {
      ...store,
      list: async () => (await store.list()).filter((request) => isSelected(options.selection, request.table)),
    },
    windows,
    describe: async (name) => {
      const table = await options.adopt(name);
      adopted.set(table.qualified, table);
      return table;
    },
    delivered: options.delivered,
    chunkRows: options.chunkRows ?? CHUNK_ROWS,
    chunkBytes: options.chunkBytes ?? CHUNK_BYTES,
    pollMs: options.pollMs ?? POLL_MS,
    untilIdle: options.untilIdle,
    logger: options.logger,
  });
  const running = driver.run();
  running.catch(options.onFailure);
  let stopped: Promise<void> | null = null;
  return {
    onLogicalMessage: (message, txn) => {
      const watermark = readWatermark(message, options.slot);
      if (watermark) windows.watermark(watermark, txn.finalLsn);
    },
    observe: (table, key, xid) => windows.observe(table, key, xid),
    idle: running,
    stop: () =>
      (stopped ??= (async () => {
        driver.stop();
        await running.catch(() => {});
        await reader.end().catch(() => {});
        await bookkeeper.end().catch(() => {});
      })()),
  };
}
