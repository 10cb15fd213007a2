/**
 * The initial load: the rows of every captured table, read inside the slot's
 * exported snapshot (so it meets the stream with no gap and no overlap), one
 * table after another in one transaction, with a cursor in batches, as op 'r'
 * events versioned at the slot's consistent point.
 *
 * Contract: every selected row is handed to `push` exactly once, and the
 * function resolves after the last one (delivery is the batcher's business);
 * it waits on `gate` between batches, so memory stays bounded. `source.snapshot`
 * follows Debezium: `first` on the first row, `first_in_data_collection` /
 * `last_in_data_collection` at each table's edges, `last` on the last row.
 */
import pg from 'pg';
import type { Lsn } from '../../core/lsn.js';
import type { Logger } from '../../observability/logger.js';
import { createProgress } from '../../observability/progress.js';
import type { Gate } from '../gate.js';
import type { ChangeDecoder, DecodedChange, SnapshotContext, SnapshotMarker } from './decode.js';
import { TEXT_OUTPUT_OPTIONS } from './slot.js';
import { qualifiedName, selectList, type CapturedTable } from './table.js';

export type SnapshotMode = 'unsent' | 'all' | 'none';

export interface SnapshotRequest {
  databaseUrl: string;
  /** The slot's exported snapshot; null to read the current state (a resumed, interrupted load). */
  snapshotName: string | null;
  tables: CapturedTable[];
  mode: Exclude<SnapshotMode, 'none'>;
  consistentPoint: Lsn;
  decoder: ChangeDecoder;
  gate: Gate;
  push(change: DecodedChange): void;
  stopped(): boolean;
  logger: Logger;
}

/**
 * Cursor fetch size, bounded by bytes as well as rows (one fetch is read
 * ahead, so two are in memory besides the batcher's undelivered events,
 * which it bounds by bytes): a table of 1 MB rows must not hold 5,000 of
 * them. The first fetch of a table is small; each next one is sized from the
 * encoded events of the rows read so far.
 */
const FETCH_ROWS = 5_000;
const FIRST_FETCH_ROWS = 100;
const FETCH_BYTES = 4 * 1024 * 1024;

/** Rows for the next fetch, so that it carries about FETCH_BYTES of events at `bytesPerRow`. */
export function fetchRows(bytesPerRow: number): number {
  if (!(bytesPerRow > 0)) return FIRST_FETCH_ROWS;
  return Math.max(1, Math.min(FETCH_ROWS, Math.floor(FETCH_BYTES / bytesPerRow)));
}
/** Every value as PostgreSQL's text: decode.ts maps it, not pg-types. */
export const RAW_TEXT = { getTypeParser: () => (value: string) => value };

export async function readSnapshot(request: SnapshotRequest): Promise<number> {
  const { logger } = request;
  const client = new pg.Client({ connectionString: request.databaseUrl, options: TEXT_OUTPUT_OPTIONS, application_name: 'walbridge-snapshot' });
  client.on('error', () => {}); // always in a query, which rejects with the same error
  await client.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    if (request.snapshotName !== null) {
      if (!/^[0-9A-Fa-f-]+$/.test(request.snapshotName)) throw new Error(`unexpected snapshot name '${request.snapshotName}'`);
      await client.query(`SET TRANSACTION SNAPSHOT '${request.snapshotName}'`);
    }
    // A read-only transaction has no id of its own: the snapshot's xmin stands for it (Debezium sends the reading transaction's).
    const txId = Number((await client.query<{ xmin: string }>('SELECT txid_snapshot_xmin(txid_current_snapshot())::text AS xmin')).rows[0]?.xmin);
    const context: SnapshotContext = { version: request.consistentPoint, txId: Number.isSafeInteger(txId) ? txId : null, tsMs: Date.now() };
    const sources = request.tables.map((table) => selectFrom(client, table, request.mode, logger));
    const counts: number[] = [];
    for (const from of sources) counts.push(Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${from}`)).rows[0]?.n ?? 0));
    const total = counts.reduce((a, b) => a + b, 0);
    const lastTable = counts.findLastIndex((n) => n > 0);
    logger.info({ rows: total, tables: request.tables.length, mode: request.mode, exported: request.snapshotName !== null }, 'snapshot: reading');
    const progress = createProgress('snapshot', total);
    let read = 0;
    for (let t = 0; t < request.tables.length && !request.stopped(); t++) {
      const table = request.tables[t]!;
      const tableRows = counts[t]!;
      let readInTable = 0;
      const marker = (): SnapshotMarker => {
        if (read === 1) return 'first';
        if (t === lastTable && readInTable === tableRows) return 'last';
        if (readInTable === 1) return 'first_in_data_collection';
        return readInTable === tableRows ? 'last_in_data_collection' : 'true';
      };
      await client.query(`DECLARE walbridge_snapshot NO SCROLL CURSOR FOR SELECT ${selectList(client, table)} FROM ${sources[t]}`);
      let eventBytes = 0;
      const fetch = (): Promise<pg.QueryResult> =>
        client.query({ text: `FETCH ${fetchRows(readInTable === 0 ? 0 : eventBytes / readInTable)} FROM walbridge_snapshot`, rowMode: 'array', types: RAW_TEXT });
      // One fetch ahead: PostgreSQL reads the next rows while these are encoded.
      let next = fetch();
      for (;;) {
        const batch = await next;
        if (batch.rows.length === 0) break;
        await request.gate.wait();
        if (request.stopped()) break;
        const layout = request.decoder.snapshotLayout(table, batch.fields.map((f) => ({ name: f.name, typeOid: f.dataTypeID, typmod: f.dataTypeModifier })));
        const rows = batch.rows as (string | null)[][];
        // The first row's size bounds the next fetch before the rest is encoded (it is issued before them).
        const first = rows[0]!;
        read++;
        readInTable++;
        const firstChange = request.decoder.snapshotRow(layout, first, context, marker());
        eventBytes += firstChange.value?.length ?? 0;
        request.push(firstChange);
        next = fetch();
        next.catch(() => {}); // awaited on the next turn; when stopping, left to finish before COMMIT
        for (let i = 1; i < rows.length; i++) {
          read++;
          readInTable++;
          const change = request.decoder.snapshotRow(layout, rows[i]!, context, marker());
          eventBytes += change.value?.length ?? 0;
          request.push(change);
        }
        progress.advance(batch.rows.length);
      }
      await next.catch(() => {});
      await client.query('CLOSE walbridge_snapshot');
    }
    progress.finish();
    await client.query('COMMIT');
    return read;
  } finally {
    await client.end();
  }
}

function selectFrom(client: pg.Client, table: CapturedTable, mode: 'unsent' | 'all', logger: Logger): string {
  if (mode === 'unsent' && table.sentFlag === null) logger.info({ table: table.qualified }, 'the table has no sent_to_kafka column: the snapshot reads every row');
  const where = mode === 'unsent' && table.sentFlag !== null ? ` WHERE ${client.escapeIdentifier(table.sentFlag)} = false` : '';
  return `${qualifiedName(client, table)}${where}`;
}
