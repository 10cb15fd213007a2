/**
 * DDL for tables the sink creates and evolves from the `walbridge.schema`
 * header: the same shape `migrate` gives user_logins (ReplacingMergeTree on
 * `_version`, ordered by the key, `_seq`, `_is_deleted`, `_synced_at`), with the
 * server-dependent pieces from schema.ts. Identifiers are always quoted.
 */
import type { ColumnSchema, TableSchema } from '../../core/envelope.js';
import { parseJsonLossless } from '../../core/json-text.js';
import { quoteIdentifier } from './client.js';
import { converterFor } from './column-types.js';
import { quoteString } from './rows.js';
import { ddlMarkers, type ServerFeatures } from './schema.js';
import { clickHouseTypeOf } from './type-mapping.js';

function qualified(database: string, table: string): string {
  return `${quoteIdentifier(database)}.${quoteIdentifier(table)}`;
}

/** `name Type [DEFAULT CAST(missing AS Type)]`: rows that existed before an ADD COLUMN read PostgreSQL's stored value. */
export function columnDefinition(column: ColumnSchema, type: string): string {
  const fallback = column.missing === undefined || column.missing === null ? '' : ` DEFAULT CAST(${sqlLiteral(column, type)} AS ${type})`;
  return `${quoteIdentifier(column.name)} ${type}${fallback}`;
}

export function createTableSql(database: string, table: string, schema: TableSchema, features: ServerFeatures): string {
  const keys = schema.columns.filter((c) => c.key).map((c) => quoteIdentifier(c.name));
  const markers = ddlMarkers(features);
  const columns = schema.columns.map((c) => `    ${columnDefinition(c, clickHouseTypeOf(c, features))}`);
  return `CREATE TABLE IF NOT EXISTS ${qualified(database, table)} (\n${columns.join(',\n')},\n` +
    `    ${quoteIdentifier('_version')} UInt64,\n    ${quoteIdentifier('_seq')} UInt64,\n    ${quoteIdentifier('_is_deleted')} UInt8,\n` +
    `    ${quoteIdentifier('_synced_at')} ${markers.DATETIME_US} DEFAULT ${markers.NOW_US}\n` +
    `) ENGINE = ${markers.REPLACING_ENGINE}\nORDER BY (${keys.join(', ')})`;
}

/** `_seq` for a table made before it existed: rows already there read 0. */
export function addSeqColumnSql(database: string, table: string): string {
  return `ALTER TABLE ${qualified(database, table)} ADD COLUMN ${quoteIdentifier('_seq')} UInt64 DEFAULT 0 AFTER ${quoteIdentifier('_version')}`;
}

export function addColumnSql(database: string, table: string, column: ColumnSchema, type: string): string {
  return `ALTER TABLE ${qualified(database, table)} ADD COLUMN ${columnDefinition(column, type)}`;
}

export function modifyColumnSql(database: string, table: string, column: string, type: string): string {
  return `ALTER TABLE ${qualified(database, table)} MODIFY COLUMN ${quoteIdentifier(column)} ${type}`;
}

/**
 * The column's `missing` value as a ClickHouse literal, through the same
 * conversion rows get (so a timestamp becomes what the column stores).
 * Decimals go as quoted text: an unquoted literal would pass through a Float64.
 */
function sqlLiteral(column: ColumnSchema, type: string): string {
  const fragment = converterFor(column.name, type)(column.missing);
  if (/^Decimal|^Nullable\(Decimal/.test(type)) return quoteString(fragment.replace(/^"|"$/g, ''));
  return literalOf(parseJsonLossless(fragment));
}

function literalOf(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'string') return quoteString(value);
  if (typeof value === 'boolean') return value ? '1' : '0';
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return `[${value.map(literalOf).join(', ')}]`;
  return quoteString(JSON.stringify(value));
}
