/**
 * What the connected PostgreSQL can do, decided by its server_version_num:
 * the one place where walbridge picks SQL by server version. Supported: 13 and
 * later. A feature that needs a newer server is refused here with a message
 * naming the version it needs, never left to a raw syntax error.
 */
import type pg from 'pg';
import { ConfigError } from '../../core/exit-codes.js';

export interface ServerVersion {
  /** server_version_num, e.g. 170006 for 17.6. */
  num: number;
  major: number;
  /** server_version as the server spells it, e.g. `17.6`. */
  text: string;
}

export const OLDEST_SUPPORTED_MAJOR = 13;
/** Slots synchronized to a standby (`FAILOVER` option, pg_replication_slots.failover). */
export const FAILOVER_SLOTS_MAJOR = 17;
/** Replication-origin functions obey GRANT EXECUTE; before, only superusers may call them (marker, snapshot flag). */
export const GRANTABLE_ORIGINS_MAJOR = 15;
/** CREATE_REPLICATION_SLOT's parenthesized options, `(SNAPSHOT 'export')`; 13 and 14 only know `EXPORT_SNAPSHOT`. */
const SLOT_OPTION_LIST_MAJOR = 15;

export async function readServerVersion(client: pg.Client): Promise<ServerVersion> {
  const row = (await client.query<{ num: string; text: string }>(`SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS text`)).rows[0]!;
  const num = Number(row.num);
  return { num, major: Math.floor(num / 10_000), text: row.text.split(' ')[0]! };
}

export function checkSupportedServer(server: ServerVersion): void {
  if (server.major < OLDEST_SUPPORTED_MAJOR) {
    throw new ConfigError(`PostgreSQL ${server.text} is not supported: walbridge needs PostgreSQL ${OLDEST_SUPPORTED_MAJOR} or later`);
  }
}

export function originsGrantable(server: ServerVersion): boolean {
  return server.major >= GRANTABLE_ORIGINS_MAJOR;
}

/** Refuses `--failover` on a server without failover slots. */
export function checkFailoverSupported(server: ServerVersion): void {
  if (server.major < FAILOVER_SLOTS_MAJOR) {
    throw new ConfigError(
      `--failover needs PostgreSQL ${FAILOVER_SLOTS_MAJOR} or later (failover slots); this server is PostgreSQL ${server.text}: ` +
        `drop --failover, and after a failover recreate the slot (docs/operations.md, "Failover")`,
    );
  }
}

/**
 * The walsender command creating a pgoutput slot with an exported snapshot,
 * in the syntax this server speaks. `quotedName` is already an identifier.
 */
export function createSlotCommand(quotedName: string, server: ServerVersion, options: { failover: boolean }): string {
  if (options.failover) checkFailoverSupported(server);
  if (server.major < SLOT_OPTION_LIST_MAJOR) return `CREATE_REPLICATION_SLOT ${quotedName} LOGICAL pgoutput EXPORT_SNAPSHOT`;
  return `CREATE_REPLICATION_SLOT ${quotedName} LOGICAL pgoutput (SNAPSHOT 'export'${options.failover ? ', FAILOVER' : ''})`;
}

/** The select-list expression for a slot's failover flag: NULL where the server has none. */
export function slotFailoverColumn(server: ServerVersion): string {
  return server.major >= FAILOVER_SLOTS_MAJOR ? 'failover' : 'NULL::boolean AS failover';
}
