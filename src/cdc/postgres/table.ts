/**
 * The captured table as the catalog describes it: primary key (the Kafka key),
 * the `sent_to_kafka` flag column if there is one, replica identity.
 */
import type pg from 'pg';
import { ConfigError } from '../../core/exit-codes.js';

export const SENT_FLAG_COLUMN = 'sent_to_kafka';

export interface CapturedTable {
  schema: string;
  table: string;
  /** Primary key columns in key order. */
  primaryKey: string[];
  /** SQL type of the first primary key column (`integer`), for the marker's array parameter. */
  primaryKeyType: string;
  /** `sent_to_kafka` when the table has that boolean column, else null. */
  sentFlag: string | null;
  /** pg_class.relreplident: 'd' default, 'f' full, 'i' index, 'n' nothing. */
  replicaIdentity: string;
  /** Whether the connected role owns the table (needed for ALTER TABLE … REPLICA IDENTITY FULL). */
  owned: boolean;
}

export function qualifiedName(client: pg.Client, table: { schema: string; table: string }): string {
  return `${client.escapeIdentifier(table.schema)}.${client.escapeIdentifier(table.table)}`;
}

export async function describeTable(client: pg.Client, name: { schema: string; table: string }): Promise<CapturedTable> {
  const found = await client.query<{ oid: number; relkind: string; relreplident: string; owned: boolean }>(
    `SELECT c.oid, c.relkind, c.relreplident, pg_has_role(c.relowner, 'USAGE') AS owned
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [name.schema, name.table],
  );
  const row = found.rows[0];
  if (!row || !['r', 'p'].includes(row.relkind)) {
    throw new ConfigError(
      `table ${name.schema}.${name.table} does not exist in this database; create it (npm run migrate creates user_logins) or pass --table schema.table`,
    );
  }
  const key = await client.query<{ attname: string; type: string }>(
    `SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE i.indrelid = $1 AND i.indisprimary
      ORDER BY k.position`,
    [row.oid],
  );
  if (key.rows.length === 0) {
    throw new ConfigError(
      `table ${name.schema}.${name.table} has no primary key; walbridge keys Kafka messages and ClickHouse rows by it. ` +
        `Add one: ALTER TABLE ${name.schema}.${name.table} ADD PRIMARY KEY (<column>)`,
    );
  }
  const flag = await client.query(
    `SELECT 1 FROM pg_attribute WHERE attrelid = $1 AND attname = $2 AND atttypid = 'boolean'::regtype AND NOT attisdropped`,
    [row.oid, SENT_FLAG_COLUMN],
  );
  return {
    schema: name.schema,
    table: name.table,
    primaryKey: key.rows.map((r) => r.attname),
    primaryKeyType: key.rows[0]!.type,
    sentFlag: flag.rowCount ? SENT_FLAG_COLUMN : null,
    replicaIdentity: row.relreplident,
    owned: row.owned,
  };
}
