/**
 * The durable bookkeeping of incremental snapshots: one row per slot and
 * table in `public.walbridge_snapshot_requests`, created when missing. It
 * holds what was asked (`mode`), where the reading ends (`max_key`, the
 * table's highest key when it started: rows inserted above it later stream
 * anyway, and without that bound a snapshot could chase a table's inserts
 * forever), how far it got (`last_key`, the primary key of the last row of
 * the last chunk whose events are delivered) and the state (`requested` →
 * `running` → `done`).
 *
 * The table is never in a publication (cdc only publishes the tables it is
 * told to; a wildcard selection must leave `walbridge_*` tables out), so its
 * writes never reach the stream; PostgreSQL drops the empty transactions.
 *
 * Contract: `recordChunk` is called only after every event of the chunk was
 * acknowledged by Kafka and marked, so a restart resumes after a delivered
 * chunk, never after an undelivered one (a chunk read twice is harmless: the
 * sink applies idempotently). A new request for the same table replaces the
 * old one (its `generation` grows): a driver still working on the old one
 * finds its updates refused and starts over.
 */
import type pg from 'pg';

export const REQUESTS_TABLE = { schema: 'public', table: 'walbridge_snapshot_requests' };

export type RequestMode = 'unsent' | 'all';

export interface SnapshotRequest {
  slot: string;
  table: { schema: string; table: string };
  mode: RequestMode;
  state: 'requested' | 'running' | 'done';
  generation: number;
  /** The highest key when the reading started (PostgreSQL text per key column); null before. */
  maxKey: string[] | null;
  /** Key of the last delivered row; null before the first chunk. */
  lastKey: string[] | null;
  chunks: number;
  rows: number;
}

function tableName(client: pg.Client): string {
  return `${client.escapeIdentifier(REQUESTS_TABLE.schema)}.${client.escapeIdentifier(REQUESTS_TABLE.table)}`;
}

export async function ensureRequestTable(client: pg.Client): Promise<void> {
  await client.query(`CREATE TABLE IF NOT EXISTS ${tableName(client)} (
    "slot" text NOT NULL,
    "table_schema" text NOT NULL,
    "table_name" text NOT NULL,
    "mode" text NOT NULL CHECK ("mode" IN ('unsent', 'all')),
    "state" text NOT NULL CHECK ("state" IN ('requested', 'running', 'done')),
    "generation" integer NOT NULL DEFAULT 1,
    "max_key" text[],
    "last_key" text[],
    "chunks" integer NOT NULL DEFAULT 0,
    "rows" bigint NOT NULL DEFAULT 0,
    "requested_at" timestamptz NOT NULL DEFAULT now(),
    "updated_at" timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ("slot", "table_schema", "table_name"))`);
}

/** Asks for a (re-)snapshot of the table: from its first key, replacing any earlier request. */
export async function requestSnapshot(client: pg.Client, slot: string, table: { schema: string; table: string }, mode: RequestMode): Promise<void> {
  await ensureRequestTable(client);
  await client.query(
    `INSERT INTO ${tableName(client)} AS r ("slot", "table_schema", "table_name", "mode", "state") VALUES ($1, $2, $3, $4, 'requested')
     ON CONFLICT ("slot", "table_schema", "table_name") DO UPDATE
        SET "mode" = EXCLUDED."mode", "state" = 'requested', "generation" = r."generation" + 1, "max_key" = NULL, "last_key" = NULL,
            "chunks" = 0, "rows" = 0, "requested_at" = now(), "updated_at" = now()`,
    [slot, table.schema, table.table, mode],
  );
}

interface RequestRow {
  slot: string;
  table_schema: string;
  table_name: string;
  mode: RequestMode;
  state: SnapshotRequest['state'];
  generation: number;
  max_key: string[] | null;
  last_key: string[] | null;
  chunks: number;
  rows: string;
}

/** The slot's requests, unfinished first, oldest request first; [] when the table does not exist yet. */
export async function listRequests(client: pg.Client, slot: string, unfinishedOnly = true): Promise<SnapshotRequest[]> {
  const exists = await client.query('SELECT to_regclass($1) IS NOT NULL AS ok', [tableName(client)]);
  if (!exists.rows[0]?.ok) return [];
  const result = await client.query<RequestRow>(
    `SELECT * FROM ${tableName(client)} WHERE "slot" = $1 ${unfinishedOnly ? `AND "state" <> 'done'` : ''}
      ORDER BY "state" = 'done', "requested_at", "table_schema", "table_name"`,
    [slot],
  );
  return result.rows.map((row) => ({
    slot: row.slot,
    table: { schema: row.table_schema, table: row.table_name },
    mode: row.mode,
    state: row.state,
    generation: row.generation,
    maxKey: row.max_key,
    lastKey: row.last_key,
    chunks: row.chunks,
    rows: Number(row.rows),
  }));
}

/** Starts the reading up to `maxKey`; false when the request was replaced meanwhile. */
export async function startRequest(client: pg.Client, request: SnapshotRequest, maxKey: string[]): Promise<boolean> {
  const result = await client.query(
    `UPDATE ${tableName(client)} SET "state" = 'running', "max_key" = $5, "updated_at" = now()
      WHERE "slot" = $1 AND "table_schema" = $2 AND "table_name" = $3 AND "generation" = $4 AND "state" = 'requested'`,
    [request.slot, request.table.schema, request.table.table, request.generation, maxKey],
  );
  return result.rowCount === 1;
}

/** Records a delivered chunk; false when the request was replaced meanwhile (start over from the new one). */
export async function recordChunk(client: pg.Client, request: SnapshotRequest, lastKey: string[], rows: number): Promise<boolean> {
  const result = await client.query(
    `UPDATE ${tableName(client)} SET "state" = 'running', "last_key" = $5, "chunks" = "chunks" + 1, "rows" = "rows" + $6, "updated_at" = now()
      WHERE "slot" = $1 AND "table_schema" = $2 AND "table_name" = $3 AND "generation" = $4 AND "state" <> 'done'`,
    [request.slot, request.table.schema, request.table.table, request.generation, lastKey, rows],
  );
  return result.rowCount === 1;
}

/** Marks the request done (every chunk delivered); false when it was replaced meanwhile. */
export async function finishRequest(client: pg.Client, request: SnapshotRequest): Promise<boolean> {
  const result = await client.query(
    `UPDATE ${tableName(client)} SET "state" = 'done', "updated_at" = now()
      WHERE "slot" = $1 AND "table_schema" = $2 AND "table_name" = $3 AND "generation" = $4 AND "state" <> 'done'`,
    [request.slot, request.table.schema, request.table.table, request.generation],
  );
  return result.rowCount === 1;
}

/** The store the incremental snapshot uses, bound to one session and slot. */
export function requestStore(client: pg.Client, slot: string): {
  list(): Promise<SnapshotRequest[]>;
  start(request: SnapshotRequest, maxKey: string[]): Promise<boolean>;
  record(request: SnapshotRequest, lastKey: string[], rows: number): Promise<boolean>;
  finish(request: SnapshotRequest): Promise<boolean>;
} {
  return {
    list: () => listRequests(client, slot),
    start: (request, maxKey) => startRequest(client, request, maxKey),
    record: (request, lastKey, rows) => recordChunk(client, request, lastKey, rows),
    finish: (request) => finishRequest(client, request),
  };
}

/** Forgets the slot's requests (`cdc drop`). */
export async function dropRequests(client: pg.Client, slot: string): Promise<void> {
  const exists = await client.query('SELECT to_regclass($1) IS NOT NULL AS ok', [tableName(client)]);
  if (exists.rows[0]?.ok) await client.query(`DELETE FROM ${tableName(client)} WHERE "slot" = $1`, [slot]);
}
