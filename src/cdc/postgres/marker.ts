/**
 * The `sent_to_kafka` follow-up (design.md §2): after Kafka acknowledged a
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

/**
 * Contract: `mark` resolves once the UPDATE for those primary keys has
 * committed (rows already flagged are left alone). The caller serializes
 * calls; a rejection leaves the flags unknown and must stop confirmation.
 */
export interface Marker {
  mark(ids: string[]): Promise<void>;
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

export async function openMarker(databaseUrl: string, table: CapturedTable, slot: string, logger: Logger): Promise<Marker> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: `walbridge-marker-${slot}` });
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
  const flag = client.escapeIdentifier(table.sentFlag ?? 'sent_to_kafka');
  const text =
    `UPDATE ${qualifiedName(client, table)} SET ${flag} = true ` +
    `WHERE ${client.escapeIdentifier(table.primaryKey[0]!)} = ANY($1::${table.primaryKeyType}[]) AND ${flag} = false`;
  return {
    mark: async (ids) => {
      if (ids.length === 0) return;
      for (let attempt = 1; ; attempt++) {
        try {
          await client.query({ name: 'walbridge_mark_sent', text, values: [ids] });
          return;
        } catch (error) {
          const err = error as { code?: string; message: string };
          if (!RETRYABLE.has(err.code ?? '') || attempt >= MARK_ATTEMPTS) throw error;
          logger.warn({ attempt, reason: err.message }, 'marking sent_to_kafka: retrying');
        }
      }
    },
    close: () => client.end(),
  };
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
