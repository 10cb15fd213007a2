/**
 * Remembers that a slot's initial snapshot has not finished, so a crash or a
 * Ctrl-C during it does not lose the rows it had not reached: the slot then
 * exists but the stream starts after the snapshot point. The flag is a
 * replication origin named `walbridge_<slot>_snapshot`, created before the
 * slot and dropped once every snapshot row is in Kafka and marked (origins
 * are durable, need no table of our own, and the grants are the marker's).
 */
import type pg from 'pg';

export function snapshotFlagName(slot: string): string {
  return `walbridge_${slot}_snapshot`;
}

/** Whether the role may use origins at all (the flag is skipped, with a warning, when not). */
export async function canFlag(client: pg.Client): Promise<boolean> {
  const result = await client.query<{ ok: boolean }>(
    `SELECT has_function_privilege('pg_replication_origin_create(text)', 'EXECUTE')
        AND has_function_privilege('pg_replication_origin_oid(text)', 'EXECUTE')
        AND has_function_privilege('pg_replication_origin_drop(text)', 'EXECUTE') AS ok`,
  );
  return result.rows[0]?.ok === true;
}

export async function snapshotPending(client: pg.Client, slot: string): Promise<boolean> {
  const result = await client.query('SELECT pg_replication_origin_oid($1) AS oid', [snapshotFlagName(slot)]);
  return result.rows[0]?.oid !== null;
}

export async function raiseSnapshotFlag(client: pg.Client, slot: string): Promise<void> {
  if (!(await snapshotPending(client, slot))) await client.query('SELECT pg_replication_origin_create($1)', [snapshotFlagName(slot)]);
}

export async function clearSnapshotFlag(client: pg.Client, slot: string): Promise<void> {
  if (await snapshotPending(client, slot)) await client.query('SELECT pg_replication_origin_drop($1)', [snapshotFlagName(slot)]);
}
