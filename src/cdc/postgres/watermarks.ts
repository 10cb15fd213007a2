/**
 * DBLog watermarks: marks written into the WAL around each chunk read of an
 * incremental snapshot, so the replication stream says where that read sits
 * among the streamed changes.
 *
 * A watermark is `pg_logical_emit_message(true, 'walbridge.snapshot', <json>)`
 * run in autocommit from a plain session: a transaction of its own, with no
 * replication origin (the marker's origin would make the listener skip it),
 * and nothing to put in a table of ours. pgoutput sends it, inside that
 * transaction, only when START_REPLICATION asks for `messages 'true'`, which
 * PostgreSQL 14 introduced: on 13, incremental snapshots are refused.
 *
 * Contract: `emitWatermark` resolves once the watermark's transaction has
 * committed, so a statement the same session runs afterwards takes its
 * snapshot after the watermark, and the stream delivers the watermark after
 * every change committed before it.
 */
import type pg from 'pg';
import { ConfigError } from '../../core/exit-codes.js';
import { parseLsn, type Lsn } from '../../core/lsn.js';
import type { LogicalMessage } from './pgoutput-reader.js';
import type { ServerVersion } from './server-version.js';

export const WATERMARK_PREFIX = 'walbridge.snapshot';

export interface Watermark {
  /** Every slot in the database sees every message: only its own count. */
  slot: string;
  /** One per cdc process: a watermark replayed from an earlier run (after a restart) matches nothing. */
  run: string;
  /** `schema.table`. */
  table: string;
  chunk: number;
  kind: 'low' | 'high';
}

/** Writes the watermark and returns the LSN of its message. */
export async function emitWatermark(client: pg.Client, watermark: Watermark): Promise<Lsn> {
  const result = await client.query<{ lsn: string }>('SELECT pg_logical_emit_message(true, $1, $2)::text AS lsn', [WATERMARK_PREFIX, JSON.stringify(watermark)]);
  return parseLsn(result.rows[0]!.lsn);
}

/** The watermark a logical message carries, or null when it is someone else's message (or another slot's). */
export function readWatermark(message: LogicalMessage, slot: string): Watermark | null {
  if (message.prefix !== WATERMARK_PREFIX || !message.transactional) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(message.content.toString('utf8'));
  } catch {
    return null;
  }
  const w = parsed as Partial<Watermark>;
  const valid =
    typeof w.slot === 'string' && typeof w.run === 'string' && typeof w.table === 'string' &&
    Number.isInteger(w.chunk) && (w.kind === 'low' || w.kind === 'high');
  if (!valid || w.slot !== slot) return null;
  return { slot: w.slot!, run: w.run!, table: w.table!, chunk: w.chunk!, kind: w.kind! };
}

/** The first major version whose pgoutput sends logical messages (13 refuses `messages 'true'`). */
export const WATERMARKS_MAJOR = 14;

export function supportsWatermarks(server: ServerVersion): boolean {
  return server.major >= WATERMARKS_MAJOR;
}

/** Refuses (exit 2) on a server whose pgoutput cannot send watermarks. */
export function checkWatermarkSupport(server: ServerVersion, what = 'incremental snapshots'): void {
  if (!supportsWatermarks(server)) {
    throw new ConfigError(
      `${what} need PostgreSQL ${WATERMARKS_MAJOR} or later (pgoutput sends the logical messages they use as watermarks from ${WATERMARKS_MAJOR} on); ` +
        `this server is ${server.text}. Upgrade PostgreSQL, or re-snapshot by recreating the slot (cdc drop, then cdc start --snapshot all)`,
    );
  }
}
