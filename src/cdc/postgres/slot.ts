/**
 * The replication slot that `cdc start` creates when missing and `cdc drop`
 * removes. The slot is the source of truth for what was sent:
 * its confirmed_flush_lsn is where a restart resumes.
 */
import pg from 'pg';
import { parseLsn, type Lsn } from '../../core/lsn.js';
import { ConfigError } from '../../core/exit-codes.js';
import { createSlotCommand, slotFailoverColumn, type ServerVersion } from './server-version.js';

/**
 * Session settings for every connection whose text output walbridge decodes:
 * ISO dates, UTC, hex bytea, exact floats (column-values.ts relies on them).
 */
export const TEXT_OUTPUT_OPTIONS = '-c DateStyle=ISO -c TimeZone=UTC -c bytea_output=hex -c extra_float_digits=3 -c IntervalStyle=postgres';

export interface SlotState {
  name: string;
  plugin: string | null;
  database: string | null;
  activePid: number | null;
  confirmedFlush: Lsn | null;
  restartLsn: Lsn | null;
  /** Whether the slot is synchronized to standbys (PostgreSQL 17+); null on older servers. */
  failover: boolean | null;
}

/** Slot names PostgreSQL accepts: lower-case letters, digits, underscore. */
export function checkSlotName(name: string): void {
  if (!/^[a-z0-9_]{1,63}$/.test(name)) {
    throw new ConfigError(`--slot '${name}' is not a valid slot name: use 1-63 lower-case letters, digits and underscores`);
  }
}

export async function readSlot(client: pg.Client, name: string, server: ServerVersion): Promise<SlotState | null> {
  const result = await client.query<{ plugin: string | null; database: string | null; active_pid: number | null; confirmed_flush_lsn: string | null; restart_lsn: string | null; failover: boolean | null }>(
    `SELECT plugin, database, active_pid, confirmed_flush_lsn::text, restart_lsn::text, ${slotFailoverColumn(server)} FROM pg_replication_slots WHERE slot_name = $1`,
    [name],
  );
  const row = result.rows[0];
  if (!row) return null;
  return {
    name,
    plugin: row.plugin,
    database: row.database,
    activePid: row.active_pid,
    confirmedFlush: row.confirmed_flush_lsn ? parseLsn(row.confirmed_flush_lsn) : null,
    restartLsn: row.restart_lsn ? parseLsn(row.restart_lsn) : null,
    failover: row.failover,
  };
}

/**
 * A new slot with its exported snapshot. The snapshot lives only while
 * `connection` stays open and idle: import it, then call `release()`.
 */
export interface CreatedSlot {
  consistentPoint: Lsn;
  snapshotName: string;
  release(): Promise<void>;
}

/** `failover` (PostgreSQL 17+) makes a slot that standbys with sync_replication_slots keep in step. */
export async function createSlot(databaseUrl: string, name: string, server: ServerVersion, options: { failover: boolean }): Promise<CreatedSlot> {
  const connection = new pg.Client({ connectionString: databaseUrl, replication: 'database', application_name: `walbridge-slot-${name}` } as pg.ClientConfig);
  // Idle while the snapshot reads; if it breaks, the snapshot's own session (same server) reports it.
  connection.on('error', () => {});
  await connection.connect();
  try {
    const result = await connection.query<{ consistent_point: string; snapshot_name: string }>(createSlotCommand(connection.escapeIdentifier(name), server, options));
    const row = result.rows[0];
    if (!row) throw new Error('CREATE_REPLICATION_SLOT returned nothing');
    return { consistentPoint: parseLsn(row.consistent_point), snapshotName: row.snapshot_name, release: () => connection.end() };
  } catch (error) {
    await connection.end();
    throw error;
  }
}
