/**
 * Checks before `cdc start` touches anything. Each failure is a ConfigError
 * (exit 2) saying what is wrong and the command that fixes it.
 */
import type pg from 'pg';
import { ConfigError } from '../../core/exit-codes.js';
import { formatLsn, parseLsn, type Lsn } from '../../core/lsn.js';
import type { TableSelection } from '../../config/table-selection.js';
import { describeTables, type CapturedTable } from './table.js';
import { readSlot, type SlotState } from './slot.js';
import { MARKER_FUNCTIONS, originName } from './marker.js';
import { originExists, pendingSnapshot, SNAPSHOT_FLAG_FUNCTIONS, type FlaggedMode } from './snapshot-flag.js';
import type { SnapshotMode } from './snapshot.js';
import { checkFailoverSupported, checkSupportedServer, GRANTABLE_ORIGINS_MAJOR, originsGrantable, readServerVersion, type ServerVersion } from './server-version.js';

/** What cdc does about REPLICA IDENTITY (docs/cdc.md): set FULL where it is not, or keep each table's own. */
export type ReplicaIdentityChoice = 'full' | 'keep';

export interface PreflightRequest {
  tables: TableSelection;
  replicaIdentity: ReplicaIdentityChoice;
  slot: string;
  markSent: boolean;
  fromLsn: Lsn | null;
  /**
   * A re-attempt after an outage: `fromLsn` was checked and applied by the
   * first attempt; a slot that has confirmed past it since is no error.
   */
  resuming: boolean;
  /** The initial load when the slot is created. */
  snapshot: SnapshotMode;
  /** Whether the user chose it (`--snapshot`), rather than the default. */
  snapshotExplicit: boolean;
  /** `--failover`: a slot synchronized to standbys (PostgreSQL 17+). */
  failover: boolean;
}

export interface PreflightResult {
  server: ServerVersion;
  role: string;
  database: string;
  tables: CapturedTable[];
  /** null when the slot does not exist yet. */
  slot: SlotState | null;
  /** The mode of the slot's unfinished initial snapshot (to resume), or null. */
  pendingSnapshot: FlaggedMode | null;
}

/** How long an active slot may take to be released (its last user was killed a moment ago). */
const ACTIVE_SLOT_PATIENCE_MS = 5_000;


export async function preflight(client: pg.Client, request: PreflightRequest): Promise<PreflightResult> {
  const server = await readServerVersion(client);
  checkSupportedServer(server);
  if (request.failover) checkFailoverSupported(server);
  const walLevel = (await client.query<{ wal_level: string }>('SHOW wal_level')).rows[0]?.wal_level;
  if (walLevel !== 'logical') {
    throw new ConfigError(`wal_level is '${walLevel}'; set wal_level=logical and restart PostgreSQL (ALTER SYSTEM SET wal_level = logical, then a restart)`);
  }
  const who = await client.query<{ role: string; database: string; replication: boolean; superuser: boolean }>(
    `SELECT current_user AS role, current_database() AS database, rolreplication AS replication, rolsuper AS superuser
       FROM pg_roles WHERE rolname = current_user`,
  );
  const { role, database, replication, superuser } = who.rows[0]!;
  const caller: Caller = { role, superuser, server };
  if (!replication && !superuser) {
    throw new ConfigError(`role ${role} may not replicate; as a superuser run: ALTER ROLE ${client.escapeIdentifier(role)} REPLICATION`);
  }
  const tables = await describeTables(client, request.tables);
  for (const table of tables) {
    const qualified = `${client.escapeIdentifier(table.schema)}.${client.escapeIdentifier(table.table)}`;
    if (request.replicaIdentity === 'full' && !table.owned && table.replicaIdentity !== 'f') {
      throw new ConfigError(
        `table ${table.qualified} needs REPLICA IDENTITY FULL (so updates that leave a TOASTed value unchanged still carry it) ` +
          `and role ${role} does not own it to set it; as its owner run: ALTER TABLE ${qualified} REPLICA IDENTITY FULL ` +
          `(or pass --replica-identity keep: docs/cdc.md says what that means for unchanged TOAST values)`,
      );
    }
    await checkTablePrivilege(client, role, qualified, 'SELECT');
    if (request.markSent && table.sentFlag !== null) await checkFlagPrivilege(client, role, qualified, table.sentFlag);
  }
  if (request.markSent && tables.some((t) => t.sentFlag !== null)) {
    await checkFunctions(client, caller, MARKER_FUNCTIONS, 'which marks sent_to_kafka in a session of its own replication origin', '--no-mark-sent');
  }
  const slot = await usableSlot(client, request.slot, database, server);
  if (request.failover && slot !== null && slot.failover === false) {
    throw new ConfigError(
      `slot ${request.slot} exists without failover; enable it while no cdc runs, on a replication connection: ` +
        `psql "dbname=${database} replication=database" -c 'ALTER_REPLICATION_SLOT ${request.slot} (FAILOVER)' (or start without --failover)`,
    );
  }
  const pending = slot === null ? null : await pendingSnapshot(client, request.slot);
  if (slot === null && !request.snapshotExplicit && (await originExists(client, originName(request.slot)))) {
    // The marker's origin is created only once the slot exists: this slot existed, and cdc streamed from it.
    throw new ConfigError(
      `slot ${request.slot} does not exist, but walbridge's replication origin ${originName(request.slot)} does: cdc streamed from this slot before, ` +
        `so it was dropped or lost (e.g. a failover to a standby, or invalidated by max_slot_wal_keep_size). ` +
        `The changes since its last confirmed position are gone. To recover: cdc start --slot ${request.slot} --snapshot all ` +
        `(see docs/operations.md, "A lost slot"); or to start over: cdc drop --slot ${request.slot} --yes`,
    );
  }
  if (slot === null && request.snapshot !== 'none') {
    // Without the flag, a crash during the initial snapshot would lose the rows it had not reached.
    await checkFunctions(client, caller, SNAPSHOT_FLAG_FUNCTIONS, 'which flags the initial snapshot as unfinished until every row is in Kafka, so an interrupted one is resumed', '--snapshot none');
  } else if (pending !== null) {
    await checkFunctions(client, caller, ['pg_replication_origin_drop(text)'], 'which clears the flag of the unfinished initial snapshot once it is resumed', null);
  }
  if (request.fromLsn !== null && !request.resuming) {
    if (!slot?.confirmedFlush) throw new ConfigError(`--from-lsn needs an existing slot; slot ${request.slot} does not exist yet`);
    if (request.fromLsn < slot.confirmedFlush) {
      throw new ConfigError(
        `--from-lsn ${formatLsn(request.fromLsn)} is before the slot's confirmed_flush_lsn ${formatLsn(slot.confirmedFlush)}: ` +
          `the slot has released the WAL before it, so those changes are gone; use an LSN at or after ${formatLsn(slot.confirmedFlush)}`,
      );
    }
    // Confirming an LSN the server has not written yet would skip every change up to it, unseen.
    const current = parseLsn((await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn);
    if (request.fromLsn > current) {
      throw new ConfigError(
        `--from-lsn ${formatLsn(request.fromLsn)} is ahead of the server's current WAL position ${formatLsn(current)}: starting there would skip ` +
          `every change written until the WAL reaches it (a typo, such as 10/0 for 0/10?); use an LSN between ${formatLsn(slot.confirmedFlush)} and ${formatLsn(current)}`,
      );
    }
  }
  return { server, role, database, tables, slot, pendingSnapshot: pending };
}

interface Caller {
  role: string;
  superuser: boolean;
  server: ServerVersion;
}

/**
 * Refuses unless the role may call every (replication-origin) function; names
 * the GRANT, or on 13 and 14 the superuser it takes, and the flag that avoids the need.
 */
async function checkFunctions(client: pg.Client, caller: Caller, functions: readonly string[], purpose: string, alternative: string | null): Promise<void> {
  const { role, superuser, server } = caller;
  if (!superuser && !originsGrantable(server)) {
    throw new ConfigError(
      `role ${role} may not call ${functions.join(', ')}, ${purpose}: PostgreSQL ${server.text} lets only superusers use replication origins ` +
        `(PostgreSQL ${GRANTABLE_ORIGINS_MAJOR} made them grantable); run cdc as a superuser (ALTER ROLE ${client.escapeIdentifier(role)} SUPERUSER)` +
        `${alternative ? ` or pass ${alternative}` : ''}`,
    );
  }
  for (const fn of functions) {
    const allowed = await client.query<{ ok: boolean }>(`SELECT has_function_privilege($1, 'EXECUTE') AS ok`, [fn]);
    if (!allowed.rows[0]?.ok) {
      throw new ConfigError(
        `role ${role} may not call ${fn}, ${purpose}; ` +
          `as a superuser run: GRANT EXECUTE ON FUNCTION ${fn} TO ${client.escapeIdentifier(role)}${alternative ? ` (or pass ${alternative})` : ''}`,
      );
    }
  }
}

/** UPDATE on the flag column: granted on it alone (`GRANT UPDATE (sent_to_kafka)`, as docs/operations.md says) or on the table. */
async function checkFlagPrivilege(client: pg.Client, role: string, qualified: string, column: string): Promise<void> {
  const result = await client.query<{ ok: boolean }>(`SELECT has_column_privilege($1, $2, 'UPDATE') AS ok`, [qualified, column]);
  if (!result.rows[0]?.ok) {
    throw new ConfigError(
      `role ${role} lacks UPDATE on ${qualified}.${client.escapeIdentifier(column)}; as its owner run: ` +
        `GRANT UPDATE (${client.escapeIdentifier(column)}) ON ${qualified} TO ${client.escapeIdentifier(role)} (or pass --no-mark-sent)`,
    );
  }
}

async function checkTablePrivilege(client: pg.Client, role: string, qualified: string, privilege: 'SELECT'): Promise<void> {
  const result = await client.query<{ ok: boolean }>('SELECT has_table_privilege($1, $2) AS ok', [qualified, privilege]);
  if (!result.rows[0]?.ok) {
    throw new ConfigError(`role ${role} lacks ${privilege} on ${qualified}; as its owner run: GRANT ${privilege} ON ${qualified} TO ${client.escapeIdentifier(role)}`);
  }
}

async function usableSlot(client: pg.Client, name: string, database: string, server: ServerVersion): Promise<SlotState | null> {
  const deadline = Date.now() + ACTIVE_SLOT_PATIENCE_MS;
  for (;;) {
    const slot = await readSlot(client, name, server);
    if (!slot) return null;
    if (slot.plugin !== 'pgoutput' || slot.database !== database) {
      throw new ConfigError(
        `slot ${name} exists but is ${slot.plugin === null ? 'a physical slot' : `a '${slot.plugin}' slot`} of database ${slot.database ?? '-'}; ` +
          `pick another --slot, or drop it: SELECT pg_drop_replication_slot('${name}')`,
      );
    }
    if (slot.activePid === null) return slot;
    if (Date.now() > deadline) {
      const who = await client.query<{ app: string | null; addr: string | null }>(
        'SELECT application_name AS app, client_addr::text AS addr FROM pg_stat_activity WHERE pid = $1',
        [slot.activePid],
      );
      const holder = who.rows[0]?.app ? `, client '${who.rows[0].app}'${who.rows[0].addr ? ` from ${who.rows[0].addr}` : ''}` : '';
      throw new ConfigError(
        `slot ${name} is in use by another process (PID ${slot.activePid}${holder}); stop that cdc first, ` +
          `or if it is stuck: SELECT pg_terminate_backend(${slot.activePid})`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
