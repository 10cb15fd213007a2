/**
 * `cdc snapshot --slot S --table X [--table …]`: asks for an incremental
 * snapshot of tables of an existing slot (the seed's clean-slate round for
 * one table, without touching the slot). It adds a table the publication
 * lacks (so its changes stream from now on) and records the request, in one
 * transaction; the
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
import { ensurePublication, publicationTables } from './postgres/publication.js';
import { readServerVersion } from './postgres/server-version.js';
import { readSlot } from './postgres/slot.js';
import { requestSnapshot, type RequestMode } from './postgres/snapshot-requests.js';
import { describeTable } from './postgres/table.js';
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
    const server = await readServerVersion(client);
    checkWatermarkSupport(server);
    if (!(await readSlot(client, command.slot, server))) {
      throw new ConfigError(`slot ${command.slot} does not exist in this database; cdc start --slot ${command.slot} creates it (with an initial snapshot)`);
    }
    if ((await publicationTables(client, command.publication)) === null) {
      throw new ConfigError(`publication ${command.publication} does not exist; cdc start --slot ${command.slot} creates it (or pass --publication)`);
    }
    const requested: RequestedSnapshot[] = [];
    for (const name of command.tables) {
      const table = await describeTable(client, name);
      // One transaction: a running cdc never sees the request before the table's changes stream.
      await client.query('BEGIN');
      try {
        const publication = await ensurePublication(client, command.publication, [table], server);
        await requestSnapshot(client, command.slot, table, command.mode);
        await client.query('COMMIT');
        requested.push({ table: table.qualified, addedToPublication: publication.added.length > 0, readsEveryRow: command.mode === 'unsent' && table.sentFlag === null });
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      }
    }
    return requested;
  } finally {
    await client.end();
  }
}
