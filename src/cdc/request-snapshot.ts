/**
 * `cdc snapshot --slot S --table X [--table …]`: asks for an incremental
 * snapshot of tables of an existing slot (the seed's clean-slate round for
 * one table, without touching the slot). It adds a table the publication
 * lacks (so its changes stream from now on) and records the request; the
 * running cdc of that slot picks it up within seconds (it polls), or the
 * next `cdc start` does. The slot, its position and the other tables are left
 * alone.
 *
 * Contract: when it returns, each request is durable and each table is in
 * the publication; a request replaces an unfinished one for the same table
 * (which then starts over from the first key).
 */
import pg from 'pg';
import { ConfigError } from '../core/exit-codes.js';
import type { Logger } from '../observability/logger.js';
import { publicationTables, readSlot } from './postgres/slot.js';
import { requestSnapshot, type RequestMode } from './postgres/snapshot-requests.js';
import { describeTable, qualifiedName } from './postgres/table.js';
import { checkWatermarkSupport } from './postgres/watermarks.js';

export interface SnapshotCommand {
  databaseUrl: string;
  slot: string;
  publication: string;
  tables: { schema: string; table: string }[];
  mode: RequestMode;
  logger: Logger;
}

export interface RequestedSnapshot {
  table: string;
  addedToPublication: boolean;
  /** `unsent` asked of a table without sent_to_kafka: every row is read. */
  readsEveryRow: boolean;
}

export async function requestIncrementalSnapshots(command: SnapshotCommand): Promise<RequestedSnapshot[]> {
  const client = new pg.Client({ connectionString: command.databaseUrl, application_name: 'walbridge-cdc-snapshot' });
  await client.connect();
  try {
    await checkWatermarkSupport(client);
    if (!(await readSlot(client, command.slot))) {
      throw new ConfigError(`slot ${command.slot} does not exist in this database; cdc start --slot ${command.slot} creates it (with an initial snapshot)`);
    }
    const inPublication = await publicationTables(client, command.publication);
    if (inPublication === null) {
      throw new ConfigError(`publication ${command.publication} does not exist; cdc start --slot ${command.slot} creates it (or pass --publication)`);
    }
    const requested: RequestedSnapshot[] = [];
    for (const name of command.tables) {
      const table = await describeTable(client, name);
      const qualified = qualifiedName(client, table);
      const fullName = `${table.schema}.${table.table}`;
      if (table.replicaIdentity !== 'f') {
        if (!table.owned) {
          throw new ConfigError(`table ${fullName} needs REPLICA IDENTITY FULL (unchanged TOAST values); as its owner run: ALTER TABLE ${qualified} REPLICA IDENTITY FULL`);
        }
        await client.query(`ALTER TABLE ${qualified} REPLICA IDENTITY FULL`);
        command.logger.info({ table: fullName }, 'set REPLICA IDENTITY FULL, so updates carry unchanged TOAST values (in the old row)');
      }
      const added = !inPublication.includes(fullName);
      // Before the request: a chunk is only read once the table's changes stream.
      if (added) await client.query(`ALTER PUBLICATION ${client.escapeIdentifier(command.publication)} ADD TABLE ${qualified}`);
      await requestSnapshot(client, command.slot, table, command.mode);
      requested.push({ table: fullName, addedToPublication: added, readsEveryRow: command.mode === 'unsent' && table.sentFlag === null });
    }
    return requested;
  } finally {
    await client.end();
  }
}
