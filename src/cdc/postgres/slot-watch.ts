/**
 * For --metrics-port: the slot as PostgreSQL sees it, polled on its own
 * connection: lag in bytes (current WAL position − confirmed LSN) and
 * wal_status (reserved, extended, unreserved, lost; PostgreSQL 13+). A poll
 * that finds the slot held and its lag not growing counts as progress for
 * /readyz: a quiet database is not a stuck cdc.
 */
import pg from 'pg';
import { cdcMetrics } from '../../observability/metrics.js';
import type { Logger } from '../../observability/logger.js';

const WAL_STATUSES = ['reserved', 'extended', 'unreserved', 'lost'];

interface Session {
  client: pg.Client;
  connected: Promise<unknown>;
  broken: boolean;
}

export function watchSlot(databaseUrl: string, slot: string, progressed: () => void, logger: Logger, intervalMs = 10_000): { stop(): Promise<void> } {
  // A session per outage: one that broke (a server restart) is replaced at the next poll.
  let session: Session | null = null;
  const open = (): Session => {
    const client = new pg.Client({ connectionString: databaseUrl, application_name: 'walbridge-cdc-metrics' });
    const opened = { client, connected: client.connect(), broken: false };
    client.on('error', () => (opened.broken = true));
    opened.connected.catch(() => (opened.broken = true));
    return opened;
  };
  const metrics = cdcMetrics();
  let previousLag: number | null = null;
  const poll = async (): Promise<void> => {
    if (session?.broken) void session.client.end().catch(() => {});
    if (!session || session.broken) session = open();
    const { client, connected } = session;
    await connected;
    const { rows } = await client.query<{ lag: string | null; wal_status: string | null; active: boolean }>(
      `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text AS lag, wal_status, active
         FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
    const row = rows[0];
    if (!row) return;
    const lag = row.lag === null ? null : Number(row.lag);
    if (lag !== null) metrics.slotLagBytes.set(lag);
    for (const status of WAL_STATUSES) metrics.slotWalStatus.set({ status }, status === row.wal_status ? 1 : 0);
    if (row.active && lag !== null && (previousLag === null || lag <= previousLag)) progressed();
    previousLag = lag;
  };
  const timer = setInterval(() => {
    poll().catch((error: Error) => logger.debug({ err: error.message }, 'slot metrics poll failed'));
  }, intervalMs).unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await session?.client.end().catch(() => {});
    },
  };
}
