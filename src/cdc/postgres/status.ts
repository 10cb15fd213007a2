/**
 * `cdc status` and `cdc drop`: what a slot looks like from PostgreSQL and
 * Kafka, and removing what `cdc start` created.
 */
import type pg from 'pg';
import { ConfigError } from '../../core/exit-codes.js';
import { originName } from './marker.js';
import { publicationTables } from './publication.js';
import { flagNamesInUse, originExists, pendingSnapshot } from './snapshot-flag.js';
import { listRequests } from './snapshot-requests.js';
import { readServerVersion, slotFailoverColumn } from './server-version.js';

export interface SlotStatus {
  slot: string;
  active: boolean;
  activePid: number | null;
  confirmedFlushLsn: string | null;
  restartLsn: string | null;
  /** Whether the slot is synchronized to standbys (PostgreSQL 17+); null on older servers, which have no failover slots. */
  failover: boolean | null;
  /** Bytes of WAL between the slot's confirmed LSN and the server's current WAL position (a number in --json). */
  lagBytes: number | null;
  publication: string;
  /** null when the publication does not exist. */
  publicationTables: string[] | null;
  /** The mode of an unfinished initial snapshot, or null. */
  snapshotPending: 'unsent' | 'all' | null;
  /** Incremental snapshots not done yet (cdc snapshot, tables added to the slot). */
  incrementalSnapshots: { table: string; mode: string; state: string; chunks: number; rows: number }[];
}

export async function slotStatuses(client: pg.Client, slot: string | undefined, publicationFor: (slot: string) => string): Promise<SlotStatus[]> {
  const server = await readServerVersion(client);
  const result = await client.query<{ slot_name: string; active_pid: number | null; confirmed: string | null; restart: string | null; failover: boolean | null; lag: string | null }>(
    `SELECT slot_name, active_pid, confirmed_flush_lsn::text AS confirmed, restart_lsn::text AS restart, ${slotFailoverColumn(server)},
            pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text AS lag
       FROM pg_replication_slots
      WHERE plugin = 'pgoutput' AND database = current_database() AND ($1::text IS NULL OR slot_name = $1)
      ORDER BY slot_name`,
    [slot ?? null],
  );
  if (slot !== undefined && result.rows.length === 0) throw new ConfigError(`slot ${slot} does not exist in this database (cdc start --slot ${slot} creates it)`);
  const statuses: SlotStatus[] = [];
  for (const row of result.rows) {
    const publication = publicationFor(row.slot_name);
    statuses.push({
      slot: row.slot_name,
      active: row.active_pid !== null,
      activePid: row.active_pid,
      confirmedFlushLsn: row.confirmed,
      restartLsn: row.restart,
      failover: row.failover,
      lagBytes: row.lag === null ? null : Number(row.lag),
      publication,
      publicationTables: await publicationTables(client, publication),
      snapshotPending: await pendingSnapshot(client, row.slot_name),
      incrementalSnapshots: (await listRequests(client, row.slot_name)).map((r) => ({
        table: `${r.table.schema}.${r.table.table}`, mode: r.mode, state: r.state, chunks: r.chunks, rows: r.rows,
      })),
    });
  }
  return statuses;
}

export interface Dropped {
  slot: boolean;
  publication: boolean;
  origins: string[];
}

/** Drops the slot, the publication and walbridge's replication origins, whichever exist. */
export async function dropCapture(client: pg.Client, slot: string, publication: string): Promise<Dropped> {
  const existing = await client.query<{ active_pid: number | null }>('SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  const activePid = existing.rows[0]?.active_pid;
  if (activePid) throw new ConfigError(`slot ${slot} is in use (PID ${activePid}); stop its cdc first`);
  if (existing.rowCount) await client.query('SELECT pg_drop_replication_slot($1)', [slot]);
  const hadPublication = (await publicationTables(client, publication)) !== null;
  if (hadPublication) await client.query(`DROP PUBLICATION ${client.escapeIdentifier(publication)}`);
  const origins: string[] = [];
  for (const origin of [...(await flagNamesInUse(client, slot)), originName(slot)]) {
    if (await originExists(client, origin)) {
      await client.query('SELECT pg_replication_origin_drop($1)', [origin]);
      origins.push(origin);
    }
  }
  return { slot: Boolean(existing.rowCount), publication: hadPublication, origins };
}
