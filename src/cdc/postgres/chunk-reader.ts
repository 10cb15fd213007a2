/**
 * One chunk of an incremental snapshot: the next rows of a table in primary
 * key order after a given key (keyset pagination, composite keys compared as
 * a row: `("a","b") > ($1,$2)`), bounded by rows and by bytes. Values stay
 * PostgreSQL's text, as in the initial snapshot (decode.ts maps them), so the
 * session must use TEXT_OUTPUT_OPTIONS; key values go back to the server as
 * that same text, which it parses as the key columns' own types.
 *
 * Contract: one snapshot per chunk (a REPEATABLE READ transaction), taken
 * when `readChunk` starts, so a watermark the session emitted just before is
 * ordered before it, and returned with the rows (`snapshot`: a transaction
 * streamed before that watermark may still be invisible to it, which the
 * window checks: chunk-window.ts). Rows come in key order; `lastKey` is the
 * key of the last row returned (the next chunk starts after it); `last` is
 * true only when no row can follow it.
 */
import type pg from 'pg';
import type { RelationColumn } from './pgoutput-reader.js';
import { qualifiedName, selectList } from './table.js';
import { emitWatermark, type Watermark } from './watermarks.js';

export interface ChunkTable {
  schema: string;
  table: string;
  /** Primary key columns in key order. */
  primaryKey: string[];
  /** The replicated columns (table.ts), the select list of a chunk. */
  columns: string[];
  /** The boolean `sent_to_kafka` column, or null. */
  sentFlag: string | null;
}

export interface ChunkQuery {
  table: ChunkTable;
  /** The previous chunk's last key (text per key column); null for the first chunk. */
  after: string[] | null;
  /** The last key to read (included); null for no bound. */
  upTo: string[] | null;
  /** Only rows whose `sent_to_kafka` is false (the table must have the column). */
  unsentOnly: boolean;
  maxRows: number;
  /** Stop after the row that takes the chunk's value text past this many bytes. */
  maxBytes: number;
}

export interface Chunk {
  columns: RelationColumn[];
  rows: (string | null)[][];
  /** The snapshot the rows were read with, as `pg_current_snapshot()` text. */
  snapshot: string;
  lastKey: string[] | null;
  last: boolean;
}

const FETCH_ROWS = 500;
const CURSOR = 'walbridge_chunk';
/** Every value as PostgreSQL's text: decode.ts maps it, not pg-types. */
const RAW_TEXT = { getTypeParser: () => (value: string) => value };

export async function readChunk(client: pg.Client, query: ChunkQuery): Promise<Chunk> {
  const { table } = query;
  for (const key of [query.after, query.upTo]) {
    if (key !== null && key.length !== table.primaryKey.length) {
      throw new Error(`chunk key has ${key.length} values, ${table.schema}.${table.table} has ${table.primaryKey.length} key columns`);
    }
  }
  if (query.unsentOnly && table.sentFlag === null) throw new Error(`${table.schema}.${table.table} has no sent_to_kafka column to read unsent rows by`);
  const keyColumns = table.primaryKey.map((column) => client.escapeIdentifier(column));
  const conditions: string[] = [];
  if (query.unsentOnly) conditions.push(`${client.escapeIdentifier(table.sentFlag!)} = false`);
  const values: string[] = [];
  const compare = (operator: string, key: string[]): void => {
    conditions.push(`(${keyColumns.join(', ')}) ${operator} (${key.map((value) => `$${values.push(value)}`).join(', ')})`);
  };
  if (query.after !== null) compare('>', query.after);
  if (query.upTo !== null) compare('<=', query.upTo);
  const where = conditions.length ? ` WHERE ${conditions.join(' AND ')}` : '';
  const text = `DECLARE ${CURSOR} NO SCROLL CURSOR FOR SELECT ${selectList(client, table)} FROM ${qualifiedName(client, table)}${where} ORDER BY ${keyColumns.join(', ')} LIMIT ${Math.max(1, Math.floor(query.maxRows))}`;

  const rows: (string | null)[][] = [];
  let columns: Chunk['columns'] = [];
  let bytes = 0;
  let cut = false;
  let exhausted = false;
  let snapshot: string;
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    // The first statement takes the transaction's snapshot; the cursor reads with the same one.
    snapshot = (await client.query<{ snapshot: string }>('SELECT pg_current_snapshot()::text AS snapshot')).rows[0]!.snapshot;
    await client.query(text, values);
    while (!cut && !exhausted) {
      const batch = await client.query({ text: `FETCH ${FETCH_ROWS} FROM ${CURSOR}`, rowMode: 'array', types: RAW_TEXT });
      columns = batch.fields.map((field) => ({ name: field.name, typeOid: field.dataTypeID, typmod: field.dataTypeModifier }));
      for (const row of batch.rows as (string | null)[][]) {
        rows.push(row);
        for (const value of row) bytes += value === null ? 1 : value.length;
        if (bytes >= query.maxBytes) {
          cut = true;
          break;
        }
      }
      if (batch.rows.length < FETCH_ROWS) exhausted = true;
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
  const keyIndexes = table.primaryKey.map((column) => columns.findIndex((c) => c.name === column));
  const lastRow = rows.at(-1);
  const lastKey = lastRow ? keyIndexes.map((i) => lastRow[i] as string) : null;
  // Exhausted by the LIMIT itself (exactly maxRows) proves nothing: the next chunk may find more.
  const last = !cut && rows.length < query.maxRows;
  return { columns, rows, snapshot, lastKey, last };
}

/** The table's highest primary key now (text per key column; among unsent rows with `unsentOnly`), or null when it has no such row. */
export async function highestKey(client: pg.Client, table: ChunkTable, unsentOnly: boolean): Promise<string[] | null> {
  const keyColumns = table.primaryKey.map((column) => client.escapeIdentifier(column));
  const where = unsentOnly ? ` WHERE ${client.escapeIdentifier(table.sentFlag!)} = false` : '';
  const result = await client.query({
    text: `SELECT ${keyColumns.join(', ')} FROM ${qualifiedName(client, table)}${where} ORDER BY ${keyColumns.map((c) => `${c} DESC`).join(', ')} LIMIT 1`,
    rowMode: 'array',
    types: RAW_TEXT,
  });
  return (result.rows[0] as string[] | undefined) ?? null;
}

/**
 * Resolves once every transaction that had written anything by now has
 * ended (`onWait` is called every few seconds while it waits). A transaction
 * that wrote to a table before the table joined the publication and commits
 * later has those writes decoded with the catalog of before, so not
 * streamed; were the first chunk read before its commit, they would not be
 * read either. Waiting for it first closes that gap. How: a fresh transaction
 * id is newer than every id assigned before it, so once the oldest running
 * transaction (the snapshot's xmin) is newer than that, they have all ended;
 * a transaction that writes only later gets a later id, and its changes are
 * decoded with the new catalog.
 */
export async function waitForRunningTransactions(client: pg.Client, onWait: () => void, stopped: () => boolean = () => false): Promise<void> {
  const mark = (await client.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid')).rows[0]!.xid;
  let reported = Date.now();
  // An idle-in-transaction session can hold this for ever: a stop must not wait for it.
  while (!stopped()) {
    const done = (await client.query<{ done: boolean }>('SELECT pg_snapshot_xmin(pg_current_snapshot()) > $1::xid8 AS done', [mark])).rows[0]!.done;
    if (done) return;
    if (Date.now() - reported > 5_000) {
      onWait();
      reported = Date.now();
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Watermarks and chunk reads on one session (TEXT_OUTPUT_OPTIONS), so each read's snapshot follows its low watermark. */
export function chunkSource(client: pg.Client): {
  emit(watermark: Watermark): Promise<void>;
  highestKey(table: ChunkTable, unsentOnly: boolean): Promise<string[] | null>;
  settle(onWait: () => void, stopped: () => boolean): Promise<void>;
  read(query: ChunkQuery): Promise<Chunk>;
} {
  return {
    emit: async (watermark) => {
      await emitWatermark(client, watermark);
    },
    highestKey: (table, unsentOnly) => highestKey(client, table, unsentOnly),
    settle: (onWait, stopped) => waitForRunningTransactions(client, onWait, stopped),
    read: (query) => readChunk(client, query),
  };
}
