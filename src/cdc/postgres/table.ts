/**
 * The captured tables as the catalog describes them: the selection resolved
 * to tables (a partitioned table counts once, under its root: its partitions
 * are never selected on their own), each with its primary key (the Kafka key),
 * the `sent_to_kafka` flag column if it has one, and its replica identity.
 */
import type pg from 'pg';
import { ConfigError } from '../../core/exit-codes.js';
import { isSelected, parseTablePattern, type TableSelection } from '../../config/table-selection.js';
import { SENT_FLAG_COLUMN } from '../../core/envelope.js';

export interface CapturedTable {
  schema: string;
  table: string;
  /** `schema.table`, unquoted: the decoder's and the topics' name for it. */
  qualified: string;
  /** Primary key columns in key order. */
  primaryKey: string[];
  /**
   * The columns pgoutput replicates, in table order: not dropped, not
   * generated (pgoutput leaves GENERATED columns out, so snapshot reads must too).
   */
  columns: string[];
  /** SQL type of each primary key column (`integer`), for the marker's array parameters. */
  primaryKeyTypes: string[];
  /** `sent_to_kafka` when the table has that boolean column, else null. */
  sentFlag: string | null;
  /** pg_class.relreplident: 'd' default, 'f' full, 'i' index, 'n' nothing. */
  replicaIdentity: string;
  /** A partitioned table (relkind 'p'): its partitions' changes arrive under its name (publish_via_partition_root). */
  partitioned: boolean;
  /** Whether the connected role owns the table (needed for ALTER TABLE … REPLICA IDENTITY FULL). */
  owned: boolean;
}

export function qualifiedName(client: pg.Client, table: { schema: string; table: string }): string {
  return `${client.escapeIdentifier(table.schema)}.${client.escapeIdentifier(table.table)}`;
}

/** The select list of a snapshot read: the replicated columns, quoted. */
export function selectList(client: pg.Client, table: { columns: string[] }): string {
  return table.columns.map((column) => client.escapeIdentifier(column)).join(', ');
}

interface Candidate {
  oid: number;
  schema: string;
  table: string;
  relkind: string;
  relreplident: string;
  owned: boolean;
  partition_of: string | null;
}

/**
 * Resolves the selection against the catalog. Refuses (ConfigError) an exact
 * name that does not exist or is a partition, a selection that matches
 * nothing, and any selected table without a primary key (walbridge keys Kafka
 * messages and ClickHouse rows by it), naming the fix.
 */
export async function describeTables(client: pg.Client, selection: TableSelection): Promise<CapturedTable[]> {
  const candidates = (await client.query<Candidate>(
    `SELECT c.oid, n.nspname AS schema, c.relname AS table, c.relkind, c.relreplident,
            pg_has_role(c.relowner, 'USAGE') AS owned,
            (SELECT pn.nspname || '.' || p.relname FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
               JOIN pg_namespace pn ON pn.oid = p.relnamespace WHERE i.inhrelid = c.oid AND c.relispartition) AS partition_of
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
      ORDER BY n.nspname, c.relname`,
  )).rows;
  for (const pattern of selection.include) {
    const exact = pattern.exact;
    if (!exact) continue;
    const found = candidates.find((c) => c.schema === exact.schema && c.table === exact.table);
    if (!found) {
      throw new ConfigError(
        `table ${exact.schema}.${exact.table} does not exist in this database; create it (npm run migrate creates user_logins) or pass --table schema.table`,
      );
    }
    if (found.partition_of) {
      throw new ConfigError(`table ${exact.schema}.${exact.table} is a partition of ${found.partition_of}: capture the partitioned table (--table ${found.partition_of}); its partitions' changes arrive under its name`);
    }
  }
  // A pattern never takes walbridge's own bookkeeping (walbridge_snapshot_requests, walbridge_schema_migrations); a name does.
  const own = (c: Candidate): boolean => c.table.startsWith('walbridge_') && !selection.include.some((p) => p.exact?.schema === c.schema && p.exact.table === c.table);
  const chosen = candidates.filter((c) => !c.partition_of && !own(c) && isSelected(selection, c));
  if (chosen.length === 0) {
    throw new ConfigError(`no table matches --table ${selection.include.map((p) => p.text).join(', ')}${selection.exclude.length ? ` (minus --exclude-table ${selection.exclude.map((p) => p.text).join(', ')})` : ''}`);
  }
  const tables: CapturedTable[] = [];
  const keyless: string[] = [];
  for (const candidate of chosen) {
    const table = await describeCandidate(client, candidate);
    if (table) tables.push(table);
    else keyless.push(`${candidate.schema}.${candidate.table}`);
  }
  if (keyless.length > 0) {
    throw new ConfigError(
      `${keyless.length === 1 ? 'table' : 'tables'} ${keyless.join(', ')} ${keyless.length === 1 ? 'has' : 'have'} no primary key; walbridge keys Kafka messages and ClickHouse rows by it. ` +
        `Add one (ALTER TABLE ${keyless[0]} ADD PRIMARY KEY (<column>)) or leave the table out (--exclude-table ${keyless[0]})`,
    );
  }
  return tables;
}

/** One table by its exact name (a request of `cdc snapshot`), with the same checks. */
export async function describeTable(client: pg.Client, name: { schema: string; table: string }): Promise<CapturedTable> {
  const quote = (part: string): string => `"${part.replace(/"/g, '""')}"`;
  const [table] = await describeTables(client, { include: [parseTablePattern(`${quote(name.schema)}.${quote(name.table)}`)], exclude: [] });
  return table!;
}

async function describeCandidate(client: pg.Client, candidate: Candidate): Promise<CapturedTable | null> {
  const key = await client.query<{ attname: string; type: string }>(
    `SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE i.indrelid = $1 AND i.indisprimary
      ORDER BY k.position`,
    [candidate.oid],
  );
  if (key.rows.length === 0) return null;
  const columns = await client.query<{ attname: string }>(
    `SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum`,
    [candidate.oid],
  );
  const flag = await client.query(
    `SELECT 1 FROM pg_attribute WHERE attrelid = $1 AND attname = $2 AND atttypid = 'boolean'::regtype AND NOT attisdropped`,
    [candidate.oid, SENT_FLAG_COLUMN],
  );
  return {
    schema: candidate.schema,
    table: candidate.table,
    qualified: `${candidate.schema}.${candidate.table}`,
    primaryKey: key.rows.map((r) => r.attname),
    columns: columns.rows.map((r) => r.attname),
    primaryKeyTypes: key.rows.map((r) => r.type),
    sentFlag: flag.rowCount ? SENT_FLAG_COLUMN : null,
    replicaIdentity: candidate.relreplident,
    partitioned: candidate.relkind === 'p',
    owned: candidate.owned,
  };
}

/**
 * Column → the text PostgreSQL reads for rows that existed before the column
 * was added with a non-volatile DEFAULT (pg_attribute.attmissingval), for the
 * schema header (core/envelope.ts). Today's catalog: a column added and later
 * dropped again before cdc read its Relation message has no entry.
 */
export async function missingValues(client: pg.Client, table: { schema: string; table: string }): Promise<Map<string, string>> {
  const result = await client.query<{ name: string; value: string | null }>(
    `SELECT a.attname AS name, (a.attmissingval::text::text[])[1] AS value
       FROM pg_attribute a
      WHERE a.attrelid = to_regclass($1) AND a.atthasmissing AND NOT a.attisdropped AND a.attnum > 0`,
    [qualifiedName(client, table)],
  );
  return new Map(result.rows.filter((r) => r.value !== null).map((r) => [r.name, r.value!]));
}
