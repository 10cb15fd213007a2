/**
 * Remembers that a slot's initial snapshot has not finished, and in which
 * mode, so a crash or a Ctrl-C during it does not lose the rows it had not
 * reached: the slot then exists but the stream starts after the snapshot
 * point. The flag is a replication origin named `walbridge:<slot>:snapshot`
 * (mode `unsent`) or `walbridge:<slot>:snapshot_all` (mode `all`), created
 * before the slot and dropped once every snapshot row is in Kafka and marked
 * (origins are durable, need no table of our own, and the grants are the
 * marker's). A resumed snapshot reads in the mode it was started with, not
 * the one of the restart's flags: an interrupted `--snapshot all` over rows
 * already flagged sent must not resume as `unsent` (that reads nothing).
 *
 * Names cannot collide: a slot name is `[a-z0-9_]`, so the marker's origin
 * `walbridge_<slot>` (marker.ts) never holds a `:`, and a flag always does.
 * Before, flags were `walbridge_<slot>_snapshot[_all]`: for slot `a` that is
 * also the marker origin of a slot named `a_snapshot`. A flag under the old
 * name (an initial snapshot interrupted before an upgrade) is still honoured
 * and cleared, unless a slot of the colliding name exists: then the name is
 * that slot's marker origin, which holds its progress and must stay.
 */
import type pg from 'pg';

export type FlaggedMode = 'unsent' | 'all';

const MODES: FlaggedMode[] = ['unsent', 'all'];

export function snapshotFlagName(slot: string, mode: FlaggedMode = 'unsent'): string {
  return mode === 'all' ? `walbridge:${slot}:snapshot_all` : `walbridge:${slot}:snapshot`;
}

/** The name a flag had before (ambiguous, see above). */
function legacyFlagName(slot: string, mode: FlaggedMode): string {
  return mode === 'all' ? `walbridge_${slot}_snapshot_all` : `walbridge_${slot}_snapshot`;
}

/** Every name the flag may have now, for cleaning up once the slot is gone (the legacy names: `flagNamesInUse`). */
export function snapshotFlagNames(slot: string): string[] {
  return MODES.map((mode) => snapshotFlagName(slot, mode));
}

/**
 * The slot's flag names that exist, by mode: the current name, or the legacy
 * one when no slot owns that name as its marker origin.
 */
async function existingFlags(client: pg.Client, slot: string): Promise<Map<FlaggedMode, string[]>> {
  const candidates = MODES.flatMap((mode) => [{ mode, name: snapshotFlagName(slot, mode), legacy: false }, { mode, name: legacyFlagName(slot, mode), legacy: true }]);
  const { rows } = await client.query<{ roname: string; owned: boolean }>(
    `SELECT roname, EXISTS (SELECT 1 FROM pg_replication_slots WHERE 'walbridge_' || slot_name = roname) AS owned
       FROM pg_replication_origin WHERE roname = ANY($1)`, [candidates.map((c) => c.name)]);
  const found = new Map<FlaggedMode, string[]>();
  for (const candidate of candidates) {
    const row = rows.find((r) => r.roname === candidate.name);
    if (!row || (candidate.legacy && row.owned)) continue;
    found.set(candidate.mode, [...(found.get(candidate.mode) ?? []), candidate.name]);
  }
  return found;
}

/** Every flag origin of the slot that exists (legacy names included): what `cdc drop` removes. */
export async function flagNamesInUse(client: pg.Client, slot: string): Promise<string[]> {
  return [...(await existingFlags(client, slot)).values()].flat();
}

/** Functions raising and clearing the flag call (preflight checks them before a snapshot is taken). */
export const SNAPSHOT_FLAG_FUNCTIONS = ['pg_replication_origin_create(text)', 'pg_replication_origin_drop(text)'];

/** Whether a replication origin exists; reads the catalog, so no grant is needed. */
export async function originExists(client: pg.Client, name: string): Promise<boolean> {
  return Boolean((await client.query('SELECT 1 FROM pg_replication_origin WHERE roname = $1', [name])).rowCount);
}

/** The mode of the slot's unfinished initial snapshot, or null when there is none. */
export async function pendingSnapshot(client: pg.Client, slot: string): Promise<FlaggedMode | null> {
  const flags = await existingFlags(client, slot);
  if (flags.has('all')) return 'all';
  if (flags.has('unsent')) return 'unsent';
  return null;
}

export async function raiseSnapshotFlag(client: pg.Client, slot: string, mode: FlaggedMode): Promise<void> {
  if (!(await originExists(client, snapshotFlagName(slot, mode)))) await client.query('SELECT pg_replication_origin_create($1)', [snapshotFlagName(slot, mode)]);
}

export async function clearSnapshotFlag(client: pg.Client, slot: string): Promise<void> {
  for (const name of await flagNamesInUse(client, slot)) await client.query('SELECT pg_replication_origin_drop($1)', [name]);
}
