/**
 * The `sent_to_kafka` follow-up (docs/design.md, "sent_to_kafka"): after Kafka acknowledged a
 * batch, one UPDATE flags its rows, in a session set up with walbridge's own
 * replication origin (`walbridge_<slot>`). pgoutput then sends an Origin
 * message in those transactions and the listener skips them, so the marking
 * never comes back as a change (no feedback loop).
 *
 * Grants a non-superuser role needs (the local stack's bootstrap gives them):
 * EXECUTE on MARKER_FUNCTIONS below, and UPDATE on the table's sent_to_kafka
 * column. (The snapshot flag and `cdc drop` also need
 * pg_replication_origin_drop(text): snapshot-flag.ts.)
 */
import pg from 'pg';
import type { Logger } from '../../observability/logger.js';
import { qualifiedName, type CapturedTable } from './table.js';

/** Per table, the primary keys (each as its columns' texts, in key order) of rows to flag. */
export type MarkKeys = Map<CapturedTable, string[][]>;

/**
 * Contract: `mark` resolves once the UPDATEs for those primary keys have
 * committed, one per table (rows already flagged are left alone). The caller
 * serializes calls; a rejection leaves the flags unknown and must stop
 * confirmation.
 */
export interface Marker {
  mark(keys: MarkKeys): Promise<void>;
  close(): Promise<void>;
}

/** The replication-origin functions `openMarker` calls (preflight checks exactly these). */
export const MARKER_FUNCTIONS = ['pg_replication_origin_create(text)', 'pg_replication_origin_oid(text)', 'pg_replication_origin_session_setup(text)'];

export function originName(slot: string): string {
  return `walbridge_${slot}`;
}

/** SQLSTATE 55006: the origin is still held by a backend (e.g. of a process killed a moment ago). */
const OBJECT_IN_USE = '55006';
/** A user's transaction may lock the same rows in another order: the UPDATE is idempotent, so retry it. */
const RETRYABLE = new Set(['40P01', '40001']);
const MARK_ATTEMPTS = 5;
const SETUP_PATIENCE_MS = 15_000;

/** `onLost`: the session broke while idle (a server restart); the caller restarts its run. */
export async function openMarker(databaseUrl: string, slot: string, logger: Logger, onLost: (error: Error) => void): Promise<Marker> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: `walbridge-marker-${slot}` });
  client.on('error', onLost);
  await client.connect();
  try {
    const origin = originName(slot);
    const exists = await client.query('SELECT pg_replication_origin_oid($1) AS oid', [origin]);
    if (exists.rows[0]?.oid === null) {
      await client.query('SELECT pg_replication_origin_create($1)', [origin]).catch((error: { code?: string }) => {
        if (error.code !== '23505' && error.code !== '42710') throw error; // created meanwhile by another process
      });
    }
    await setupSession(client, origin, logger);
  } catch (error) {
    await client.end();
    throw error;
  }
  const statements = new Map<CapturedTable, { name: string; text: string }>();
  const statementOf = (table: CapturedTable): { name: string; text: string } => {
    let statement = statements.get(table);
    if (!statement) {
      statement = { name: `walbridge_mark_sent_${statements.size}`, text: markStatement(client, table) };
      statements.set(table, statement);
    }
    return statement;
  };
  return {
    mark: async (keys) => {
      for (const [table, rows] of keys) {
        if (rows.length === 0) continue;
        // One array parameter per key column: column i of every key.
        const values = table.primaryKey.map((_, i) => rows.map((row) => row[i]));
        const statement = statementOf(table);
        for (let attempt = 1; ; attempt++) {
          try {
            await client.query({ ...statement, values });
            break;
          } catch (error) {
            const err = error as { code?: string; message: string };
            if (!RETRYABLE.has(err.code ?? '') || attempt >= MARK_ATTEMPTS) throw error;
            logger.warn({ attempt, table: table.qualified, reason: err.message }, 'marking sent_to_kafka: retrying');
          }
        }
      }
    },
    close: () => client.end(),
  };
}

/** `UPDATE … SET sent_to_kafka = true` for the rows whose keys come as one array per key column. */
function markStatement(client: pg.Client, table: CapturedTable): string {
  const flag = client.escapeIdentifier(table.sentFlag ?? 'sent_to_kafka');
  const columns = table.primaryKey.map((column) => client.escapeIdentifier(column));
  if (columns.length === 1) {
    return `UPDATE ${qualifiedName(client, table)} SET ${flag} = true WHERE ${columns[0]} = ANY($1::${table.primaryKeyTypes[0]}[]) AND ${flag} = false`;
  }
  const arrays = table.primaryKeyTypes.map((type, i) => `$${i + 1}::${type}[]`).join(', ');
  const join = columns.map((column) => `t.${column} = k.${column}`).join(' AND ');
  return `UPDATE ${qualifiedName(client, table)} AS t SET ${flag} = true FROM unnest(${arrays}) AS k(${columns.join(', ')}) ` +
    `WHERE ${join} AND t.${flag} = false`;
}

async function setupSession(client: pg.Client, origin: string, logger: Logger): Promise<void> {
  const deadline = Date.now() + SETUP_PATIENCE_MS;
  for (;;) {
    try {
      await client.query('SELECT pg_replication_origin_session_setup($1)', [origin]);
      return;
    } catch (error) {
      const err = error as { code?: string; message: string };
      if (err.code !== OBJECT_IN_USE || Date.now() > deadline) throw error;
      logger.info({ origin, reason: err.message }, 'replication origin still held by another session; waiting');
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}
