/**
 * The publication cdc streams through: one for every captured table, created
 * when missing, checked when it exists. An existing publication that would
 * silently drop changes is refused with the statement that fixes it: one that
 * does not publish every operation, that publishes a partitioned table's
 * changes under its partitions' names (pgoutput would then name leaves that
 * are not captured), or that filters rows or columns (PostgreSQL 15+).
 * Tables of the selection that it lacks are added (they then need their
 * snapshot: the caller's business).
 */
import type pg from 'pg';
import { ConfigError } from '../../core/exit-codes.js';
import type { ServerVersion } from './server-version.js';
import { qualifiedName, type CapturedTable } from './table.js';

const PUBLISH = 'insert, update, delete, truncate';

interface PublicationRow {
  pubinsert: boolean;
  pubupdate: boolean;
  pubdelete: boolean;
  pubtruncate: boolean;
  pubviaroot: boolean;
  puballtables: boolean;
}

export interface PublicationState {
  created: boolean;
  /** Captured tables the publication lacked and now has. */
  added: CapturedTable[];
}

/** Tables in a publication as `schema.table`, or null when it does not exist. */
export async function publicationTables(client: pg.Client, name: string): Promise<string[] | null> {
  const exists = await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [name]);
  if (!exists.rowCount) return null;
  const tables = await client.query<{ name: string }>(
    `SELECT schemaname || '.' || tablename AS name FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1`,
    [name],
  );
  return tables.rows.map((row) => row.name);
}

export async function ensurePublication(client: pg.Client, name: string, tables: CapturedTable[], server: ServerVersion): Promise<PublicationState> {
  const quoted = client.escapeIdentifier(name);
  const list = (some: CapturedTable[]): string => some.map((t) => qualifiedName(client, t)).join(', ');
  const found = await client.query<PublicationRow>(
    'SELECT pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot, puballtables FROM pg_publication WHERE pubname = $1',
    [name],
  );
  const publication = found.rows[0];
  if (!publication) {
    await client.query(`CREATE PUBLICATION ${quoted} FOR TABLE ${list(tables)} WITH (publish = '${PUBLISH}', publish_via_partition_root = true)`);
    return { created: true, added: [] };
  }
  const fix = `ALTER PUBLICATION ${quoted} SET (publish = '${PUBLISH}', publish_via_partition_root = true)`;
  const unpublished = (['insert', 'update', 'delete', 'truncate'] as const).filter((op) => !publication[`pub${op}`]);
  if (unpublished.length > 0) {
    throw new ConfigError(`publication ${name} does not publish ${unpublished.join(', ')}: those changes would never reach Kafka. Fix it: ${fix}`);
  }
  const partitioned = tables.filter((t) => t.partitioned);
  if (partitioned.length > 0 && !publication.pubviaroot) {
    throw new ConfigError(
      `publication ${name} publishes the changes of partitioned ${partitioned.map((t) => t.qualified).join(', ')} under their partitions' names, ` +
        `which cdc would not recognise. Fix it: ${fix}`,
    );
  }
  if (server.major >= 15) await refuseFilters(client, name, tables);
  const present = new Set(await publicationTables(client, name));
  const missing = tables.filter((t) => !present.has(t.qualified));
  if (missing.length > 0) {
    if (publication.puballtables) throw new Error(`publication ${name} is FOR ALL TABLES but lacks ${missing.map((t) => t.qualified).join(', ')}`);
    await client.query(`ALTER PUBLICATION ${quoted} ADD TABLE ${list(missing)}`);
  }
  return { created: false, added: missing };
}

/** Row filters and column lists (PostgreSQL 15+) drop changes without a word: refused. */
async function refuseFilters(client: pg.Client, name: string, tables: CapturedTable[]): Promise<void> {
  const filtered = await client.query<{ name: string; row_filter: boolean; column_list: boolean }>(
    `SELECT n.nspname || '.' || c.relname AS name, r.prqual IS NOT NULL AS row_filter, r.prattrs IS NOT NULL AS column_list
       FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
       JOIN pg_class c ON c.oid = r.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE p.pubname = $1 AND (r.prqual IS NOT NULL OR r.prattrs IS NOT NULL)`,
    [name],
  );
  const captured = new Set(tables.map((t) => t.qualified));
  const offending = filtered.rows.filter((r) => captured.has(r.name));
  if (offending.length > 0) {
    const what = offending.map((r) => `${r.name} (${[r.row_filter ? 'a row filter' : '', r.column_list ? 'a column list' : ''].filter(Boolean).join(' and ')})`);
    throw new ConfigError(
      `publication ${name} filters ${what.join(', ')}: the rows or columns it leaves out would silently never reach Kafka. ` +
        `Remove the filter, e.g. ALTER PUBLICATION ${client.escapeIdentifier(name)} SET TABLE <the tables, without WHERE or column lists>, or use another --publication`,
    );
  }
}
