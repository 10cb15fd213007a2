/**
 * The initial load: rows of the captured table read inside the slot's
 * exported snapshot (so it meets the stream with no gap and no overlap),
 * with a cursor in batches, as op 'r' events versioned at the slot's
 * consistent point.
 *
 * Contract: every selected row is handed to `push` exactly once, and the
 * function resolves after the last one (delivery is the batcher's business);
 * it waits on `gate` between batches, so memory stays bounded.
 */
import pg from 'pg';
import type { Lsn } from '../../core/lsn.js';
import type { Logger } from '../../observability/logger.js';
import { createProgress } from '../../observability/progress.js';
import type { Gate } from '../gate.js';
import type { ChangeDecoder, DecodedChange } from './decode.js';
import { TEXT_OUTPUT_OPTIONS } from './slot.js';
import { qualifiedName, type CapturedTable } from './table.js';

export type SnapshotMode = 'unsent' | 'all' | 'none';

export interface SnapshotRequest {
  databaseUrl: string;
  /** The slot's exported snapshot; null to read the current state (a resumed, interrupted load). */
  snapshotName: string | null;
  table: CapturedTable;
  mode: Exclude<SnapshotMode, 'none'>;
  consistentPoint: Lsn;
  decoder: ChangeDecoder;
  gate: Gate;
  push(change: DecodedChange): void;
  stopped(): boolean;
  logger: Logger;
}

const FETCH_ROWS = 5_000;
/** Every value as PostgreSQL's text: decode.ts maps it, not pg-types. */
const RAW_TEXT = { getTypeParser: () => (value: string) => value };

export async function readSnapshot(request: SnapshotRequest): Promise<number> {
  const { table, logger } = request;
  const client = new pg.Client({ connectionString: request.databaseUrl, options: TEXT_OUTPUT_OPTIONS, application_name: 'walbridge-snapshot' });
  await client.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    if (request.snapshotName !== null) {
      if (!/^[0-9A-Fa-f-]+$/.test(request.snapshotName)) throw new Error(`unexpected snapshot name '${request.snapshotName}'`);
      await client.query(`SET TRANSACTION SNAPSHOT '${request.snapshotName}'`);
    }
    const unsentOnly = request.mode === 'unsent' && table.sentFlag !== null;
    if (request.mode === 'unsent' && table.sentFlag === null) {
      logger.info({ table: `${table.schema}.${table.table}` }, 'the table has no sent_to_kafka column: the snapshot reads every row');
    }
    const where = unsentOnly ? ` WHERE ${client.escapeIdentifier(table.sentFlag!)} = false` : '';
    const from = `${qualifiedName(client, table)}${where}`;
    const total = Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${from}`)).rows[0]?.n ?? 0);
    logger.info({ rows: total, mode: request.mode, exported: request.snapshotName !== null }, 'snapshot: reading');
    const progress = createProgress('snapshot', total);
    await client.query(`DECLARE walbridge_snapshot NO SCROLL CURSOR FOR SELECT * FROM ${from}`);
    const startedMs = Date.now();
    let read = 0;
    const fetch = (): Promise<pg.QueryResult> => client.query({ text: `FETCH ${FETCH_ROWS} FROM walbridge_snapshot`, rowMode: 'array', types: RAW_TEXT });
    // One fetch ahead: PostgreSQL reads the next rows while these are encoded.
    let next = fetch();
    for (;;) {
      const batch = await next;
      if (batch.rows.length === 0) break;
      await request.gate.wait();
      if (request.stopped()) break;
      next = fetch();
      next.catch(() => {}); // awaited on the next turn; when stopping, left to finish before COMMIT
      const columns = batch.fields.map((field) => ({ name: field.name, typeOid: field.dataTypeID }));
      for (const row of batch.rows as (string | null)[][]) {
        read++;
        request.push(request.decoder.snapshotRow(columns, row, request.consistentPoint, read === total, startedMs));
      }
      progress.advance(batch.rows.length);
    }
    progress.finish();
    await client.query('COMMIT');
    return read;
  } finally {
    await client.end();
  }
}
