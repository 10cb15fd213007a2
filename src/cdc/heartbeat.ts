/**
 * `cdc start --heartbeat-interval SECONDS`: freshness on a quiet database.
 *
 * Without writes to the captured tables nothing passes through the slot, so
 * the freshness histogram gets no observations and a stuck pipeline looks
 * like a quiet one. Every interval cdc writes
 * `pg_logical_emit_message(true, 'walbridge.heartbeat', {"slot": …})` from a
 * plain session of its own (autocommit, no replication origin): a
 * transaction holding only a logical message, which pgoutput streams like any
 * other commit (PostgreSQL 14+, `messages 'true'`; 13 is refused). The
 * listener hands it over inside its transaction; the checkpointer confirms
 * the commit once everything before it is delivered, as for any transaction.
 * So a heartbeat observes the freshness histogram (commit → confirmed), moves
 * the confirmed LSN, and sets the heartbeat metrics below. Nothing is sent to
 * Kafka: the message carries no row.
 *
 * Every slot of the database reads every message: a cdc counts only the
 * heartbeats naming its own slot (others' are ordinary empty transactions).
 */
import pg from 'pg';
import { ConfigError } from '../core/exit-codes.js';
import type { Lsn } from '../core/lsn.js';
import type { Logger } from '../observability/logger.js';
import { heartbeatMetrics } from '../observability/metrics.js';
import type { LogicalMessage } from './postgres/pgoutput-reader.js';
import type { ServerVersion } from './postgres/server-version.js';
import type { TransactionContext } from './postgres/decode.js';
import { supportsWatermarks, WATERMARKS_MAJOR } from './postgres/watermarks.js';

export const HEARTBEAT_PREFIX = 'walbridge.heartbeat';

/** Refuses (exit 2) a heartbeat on a server whose pgoutput sends no logical messages (13). */
export function checkHeartbeatSupport(server: ServerVersion): void {
  if (!supportsWatermarks(server)) {
    throw new ConfigError(
      `--heartbeat-interval needs PostgreSQL ${WATERMARKS_MAJOR} or later (pgoutput streams the logical messages it writes from ${WATERMARKS_MAJOR} on); ` +
        `this server is ${server.text}: leave out --heartbeat-interval (and CDC_HEARTBEAT_INTERVAL)`,
    );
  }
}

export interface Heartbeat {
  /** The listener's logical messages: remembers this slot's heartbeats until confirmed. */
  onLogicalMessage(message: LogicalMessage, txn: TransactionContext): void;
  /** The confirmed LSN moved: heartbeats committed before it are through. */
  confirmed(lsn: Lsn): void;
  stop(): Promise<void>;
}

export function startHeartbeat(options: { databaseUrl: string; slot: string; intervalMs: number; logger: Logger }): Heartbeat {
  const { slot, logger } = options;
  const metrics = heartbeatMetrics();
  // Age is counted from the start until the first heartbeat is through.
  metrics.lastConfirmed.set(Date.now() / 1000);
  const content = JSON.stringify({ slot });
  let client: pg.Client | null = null;
  let emitting: Promise<void> | null = null;
  let stopped = false;

  const connect = async (): Promise<pg.Client> => {
    const fresh = new pg.Client({ connectionString: options.databaseUrl, application_name: `walbridge-heartbeat-${slot}`, connectionTimeoutMillis: 5_000 });
    fresh.on('error', () => {}); // a dropped connection fails the next query, which reconnects
    client = fresh;
    await fresh.connect();
    return fresh;
  };
  const emit = async (): Promise<void> => {
    try {
      const session = client ?? (await connect());
      await session.query('SELECT pg_logical_emit_message(true, $1, $2)', [HEARTBEAT_PREFIX, content]);
      metrics.written.inc();
    } catch (error) {
      // The stream is not harmed; the missing heartbeats show as a growing age.
      logger.warn({ err: (error as Error).message }, 'heartbeat not written; retrying at the next interval');
      const broken = client;
      client = null;
      await broken?.end().catch(() => {});
    }
  };
  const timer = setInterval(() => {
    if (!stopped && emitting === null) emitting = emit().finally(() => (emitting = null));
  }, options.intervalMs);

  const pending: { commitLsn: Lsn; commitTimeUs: number }[] = [];
  return {
    onLogicalMessage: (message, txn) => {
      if (message.prefix !== HEARTBEAT_PREFIX || !message.transactional || !namesSlot(message.content, slot)) return;
      pending.push({ commitLsn: txn.finalLsn, commitTimeUs: txn.commitTimeUs });
    },
    confirmed: (lsn) => {
      // A confirmed LSN is a commit's end: past its commit record's start, not past a later one's.
      let done = 0;
      while (done < pending.length && pending[done]!.commitLsn < lsn) done++;
      if (done === 0) return;
      metrics.confirmed.inc(done);
      metrics.lastConfirmed.set(pending[done - 1]!.commitTimeUs / 1e6);
      pending.splice(0, done);
    },
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await emitting;
      await client?.end().catch(() => {});
    },
  };
}

function namesSlot(content: Buffer, slot: string): boolean {
  try {
    return (JSON.parse(content.toString('utf8')) as { slot?: unknown }).slot === slot;
  } catch {
    return false;
  }
}
