/**
 * Remembers that a slot's initial snapshot has not finished, and in which
 * mode, so a crash or a Ctrl-C during it does not lose the rows it had not
 * reached: the slot then exists but the stream starts after the snapshot
 * point. The flag is a replication origin named `walbridge_<slot>_snapshot`
 * (mode `unsent`) or `walbridge_<slot>_snapshot_all` (mode `all`), created
 * before the slot and dropped once every snapshot row is in Kafka and marked
 * (origins are durable, need no table of our own, and the grants are the
 * marker's). A resumed snapshot reads in the mode it was started with, not
 * the one of the restart's flags: an interrupted `--snapshot all` over rows
 * already flagged sent must not resume as `unsent` (that reads nothing).
 */
import type pg from 'pg';

export type FlaggedMode = 'unsent' | 'all';

export function snapshotFlagName(slot: string, mode: FlaggedMode = 'unsent'): string {
  return mode === 'all' ? `walbridge_${slot}_snapshot_all` : `walbridge_${slot}_snapshot`;
}

/** Every name the flag may have, for cleaning up. */
export function snapshotFlagNames(slot: string): string[] {
  return [snapshotFlagName(slot, 'unsent'), snapshotFlagName(slot, 'all')];
}

/** Functions raising and clearing the flag call (preflight checks them before a snapshot is taken). */
export const SNAPSHOT_FLAG_FUNCTIONS = ['pg_replication_origin_create(text)', 'pg_replication_origin_drop(text)'];

/** Whether a replication origin exists; reads the catalog, so no grant is needed. */
export async function originExists(client: pg.Client, name: string): Promise<boolean> {
  return Boolean((await client.query('SELECT 1 FROM pg_replication_origin WHERE roname = $1', [name])).rowCount);
}

/** The mode of the slot's unfinished initial snapshot, or null when there is none. */
export async function pendingSnapshot(client: pg.Client, slot: string): Promise<FlaggedMode | null> {
  const result = await client.query<{ roname: string }>('SELECT roname FROM pg_replication_origin WHERE roname = ANY($1)', [snapshotFlagNames(slot)]);
  const names = result.rows.map((row) => row.roname);
  if (names.includes(snapshotFlagName(slot, 'all'))) return 'all';
  if (names.includes(snapshotFlagName(slot, 'unsent'))) return 'unsent';
  return null;
}

export async function raiseSnapshotFlag(client: pg.Client, slot: string, mode: FlaggedMode): Promise<void> {
  if (!(await originExists(client, snapshotFlagName(slot, mode)))) await client.query('SELECT pg_replication_origin_create($1)', [snapshotFlagName(slot, mode)]);
}

export async function clearSnapshotFlag(client: pg.Client, slot: string): Promise<void> {
  for (const name of snapshotFlagNames(slot)) {
    if (await originExists(client, name)) await client.query('SELECT pg_replication_origin_drop($1)', [name]);
  }
}
