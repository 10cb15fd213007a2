/**
 * Envelope images → JSONEachRow lines for the target table, shaped by the
 * table's own columns (DESCRIBE TABLE), so the sink follows the table rather
 * than a hard-coded schema:
 *
 * - data columns take the image's value of the same name, converted per
 *   ClickHouse type (column-types.ts); image columns the table lacks (e.g.
 *   `sent_to_kafka`, PostgreSQL-side bookkeeping) are ignored;
 * - `_version` = the event's version (commit LSN), exact as UInt64;
 * - `_seq` = the event's position in its transaction (when the table has the
 *   column: tables made before it existed get it added, table-target.ts);
 * - `_is_deleted` = 0 for upserts, 1 for deletes;
 * - `_synced_at` = when the sink wrote the row (optional column).
 *
 * An explicit null goes in as null where the column is Nullable (a NULL in
 * PostgreSQL is not the column's default); a column the event lacks (dropped
 * in PostgreSQL, added in ClickHouse only, or older than an ADD COLUMN), or a
 * null for a non-Nullable column, takes the column's DEFAULT when it has one
 * (omitted, with input_format_defaults_for_omitted_fields, where the server
 * knows that setting; on 18.16, which fills the type's zero value for an
 * omitted field, the DEFAULT evaluated once when the table is read); else
 * null when Nullable, [] for an Array; a non-Nullable column without a
 * DEFAULT needs a value. A delete needs only the sorting-key columns (from
 * the message key or `before`); the other columns come from `before` when it
 * has them, else as above.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { RowImage, SinkEvent } from '../../core/envelope.js';
import { ConfigError } from '../../core/exit-codes.js';
import type { Lsn } from '../../core/lsn.js';
import { converterFor, unwrapType, utcTimestampText, ValueError, type ValueConverter } from './column-types.js';
import { quoteIdentifier } from './client.js';
import type { ServerFeatures } from './schema.js';

export const VERSION_COLUMN = '_version';
export const DELETED_COLUMN = '_is_deleted';
export const SYNCED_AT_COLUMN = '_synced_at';
export const SEQ_COLUMN = '_seq';
const BOOKKEEPING = new Set([VERSION_COLUMN, DELETED_COLUMN, SYNCED_AT_COLUMN, SEQ_COLUMN]);

export interface TargetColumn {
  name: string;
  /** ClickHouse type as DESCRIBE prints it, e.g. Nullable(DateTime('UTC')). */
  type: string;
  nullable: boolean;
  /** Part of the table's sorting key (the row identity for ReplacingMergeTree). */
  key: boolean;
  /** `"name":`, ready to prefix a value. */
  prefix: string;
  convert: ValueConverter;
  /** What an absent or null value becomes: `"name":value,`, or '' to omit the field (its DEFAULT applies); undefined: an error. */
  fallback: string | undefined;
}

export interface TargetTable {
  database: string;
  table: string;
  dataColumns: TargetColumn[];
  /** Type of `_synced_at`, or null when the table has no such column. */
  syncedAtType: string | null;
  /** The table has `_seq` (the event's position in its transaction). */
  hasSeq: boolean;
}

export interface DescribedColumn {
  name: string;
  type: string;
  default_type: string;
  default_expression?: string;
  /** 18.16 only: the DEFAULT evaluated once, as JSONEachRow value text. */
  default_value?: string;
}

export function quoteString(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** The table's columns and sorting key; undefined when the table does not exist. */
export async function describeTable(client: ClickHouseClient, database: string, table: string, features: ServerFeatures):
Promise<{ columns: DescribedColumn[]; sortingKey: Set<string> } | undefined> {
  const where = `${quoteIdentifier(database)}.${quoteIdentifier(table)}`;
  const tables = await client.query({
    query: `SELECT sorting_key FROM system.tables WHERE database = ${quoteString(database)} AND name = ${quoteString(table)}`,
    format: 'JSONEachRow',
  });
  const found = await tables.json<{ sorting_key: string }>();
  if (found.length === 0) return undefined;
  const sortingKey = new Set((found[0]?.sorting_key ?? '').split(',').map((part) => part.trim().replace(/^`|`$/g, '')).filter(Boolean));
  const described = await client.query({ query: `DESCRIBE TABLE ${where}`, format: 'JSONEachRow' });
  const columns = await described.json<DescribedColumn>();
  if (!features.omittedFieldDefaults) {
    for (const column of columns) {
      if (column.default_type !== 'DEFAULT' || !column.default_expression || BOOKKEEPING.has(column.name)) continue;
      const result = await client.query({
        query: `SELECT CAST(${column.default_expression} AS ${column.type}) AS v`, format: 'JSONEachRow',
        clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
      });
      const text = (await result.text()).trim();
      column.default_value = text.slice('{"v":'.length, -1);
    }
  }
  return { columns, sortingKey };
}

export async function describeTarget(client: ClickHouseClient, database: string, table: string, features: ServerFeatures): Promise<TargetTable> {
  const described = await describeTable(client, database, table, features);
  if (!described) {
    throw new ConfigError(`ClickHouse table ${database}.${table} does not exist; create it with \`migrate\` ` +
      `(or, for another table, a ReplacingMergeTree(_version) with _version UInt64 and _is_deleted UInt8)`);
  }
  return targetTableOf(database, table, described.columns, described.sortingKey, features.omittedFieldDefaults);
}

export function targetTableOf(database: string, table: string, columns: DescribedColumn[], sortingKey: Set<string>, omitForDefault = false): TargetTable {
  const names = new Set(columns.map((c) => c.name));
  for (const required of [VERSION_COLUMN, DELETED_COLUMN]) {
    if (!names.has(required)) {
      throw new ConfigError(`ClickHouse table ${database}.${table} has no ${required} column; the sink needs _version UInt64 and _is_deleted UInt8`);
    }
  }
  const dataColumns: TargetColumn[] = [];
  for (const column of columns) {
    if (BOOKKEEPING.has(column.name) || column.default_type === 'MATERIALIZED' || column.default_type === 'ALIAS') continue;
    let convert: ValueConverter;
    try {
      convert = converterFor(column.name, column.type);
    } catch (error) {
      throw new ConfigError(`ClickHouse table ${database}.${table}: ${(error as Error).message}`);
    }
    const prefix = `${JSON.stringify(column.name)}:`;
    const nullable = unwrapType(column.type).nullable;
    let fallback: string | undefined;
    if (column.default_type === 'DEFAULT') fallback = omitForDefault || column.default_value === undefined ? '' : `${prefix}${column.default_value},`;
    else if (nullable) fallback = `${prefix}null,`;
    else if (column.type.startsWith('Array(')) fallback = `${prefix}[],`;
    const key = sortingKey.has(column.name);
    dataColumns.push({ name: column.name, type: column.type, nullable, key, prefix, convert, fallback: key ? undefined : fallback });
  }
  const syncedAt = columns.find((c) => c.name === SYNCED_AT_COLUMN);
  return { database, table, dataColumns, syncedAtType: syncedAt?.type ?? null, hasSeq: names.has(SEQ_COLUMN) };
}

/**
 * What Debezium's PostgreSQL connector sends for an unchanged TOASTed column
 * when the table's replica identity is not FULL. Written as data it would
 * overwrite the real value, so such an event is dead-lettered instead.
 */
const DEBEZIUM_UNAVAILABLE_VALUE = '__debezium_unavailable_value';

export class RowMapper {
  constructor(private readonly target: TargetTable) {}

  /** The `"_synced_at":…` fragment for rows written at `nowMs` ('' without the column). */
  syncedAtFragment(nowMs: number): string {
    const type = this.target.syncedAtType;
    if (type === null) return '';
    const dt64 = /DateTime64\((\d)/.exec(type);
    const value = dt64 ? `"${utcTimestampText(BigInt(nowMs) * 1000n, Number(dt64[1]))}"` : String(Math.floor(nowMs / 1000));
    return `,"${SYNCED_AT_COLUMN}":${value}`;
  }

  /** The row of an upsert or delete event. Throws ValueError when it does not fit the table. */
  row(event: Extract<SinkEvent, { kind: 'upsert' | 'delete' }>, syncedAt: string): string {
    return event.kind === 'upsert'
      ? this.upsert(event.after, event.version, event.seq, syncedAt)
      : this.delete(event.before, event.key, event.version, event.seq, syncedAt);
  }

  /** Throws ValueError when the image does not fit the table. */
  upsert(after: RowImage, version: Lsn, seq: bigint, syncedAt: string): string {
    let line = '{';
    for (const column of this.target.dataColumns) {
      const value = after[column.name];
      if (value === null && column.nullable) {
        line += `${column.prefix}null,`;
        continue;
      }
      if (value === null || value === undefined) {
        if (column.fallback === undefined) {
          throw new ValueError(`column ${column.name} (${column.type}) is not Nullable and has no DEFAULT, but the event has ${value === null ? 'null' : 'no value'}`);
        }
        line += column.fallback;
        continue;
      }
      if (value === DEBEZIUM_UNAVAILABLE_VALUE) {
        throw new ValueError(`column ${column.name}: Debezium sent its unchanged-TOAST placeholder instead of the value; ` +
          'set REPLICA IDENTITY FULL on the source table so updates carry every value');
      }
      try {
        line += `${column.prefix}${column.convert(value)},`;
      } catch (error) {
        throw new ValueError(`column ${column.name}: ${(error as Error).message}`);
      }
    }
    return `${line}"${VERSION_COLUMN}":${version}${this.seqFragment(seq)},"${DELETED_COLUMN}":0${syncedAt}}`;
  }

  /** A tombstone row: the key, `_is_deleted = 1`, other columns from `before` when it has them. */
  delete(before: RowImage | null, key: RowImage | null, version: Lsn, seq: bigint, syncedAt: string): string {
    let line = '{';
    for (const column of this.target.dataColumns) {
      const value = key?.[column.name] ?? before?.[column.name];
      if (value === null || value === undefined) {
        if (column.key) throw new ValueError(`a delete without a value for key column ${column.name}`);
        line += column.fallback ?? '';
        continue;
      }
      try {
        line += `${column.prefix}${column.convert(value)},`;
      } catch (error) {
        if (column.key) throw new ValueError(`key column ${column.name}: ${(error as Error).message}`);
        // A non-key value of a deleted row is never read back: leave the default.
      }
    }
    return `${line}"${VERSION_COLUMN}":${version}${this.seqFragment(seq)},"${DELETED_COLUMN}":1${syncedAt}}`;
  }

  private seqFragment(seq: bigint): string {
    return this.target.hasSeq ? `,"${SEQ_COLUMN}":${seq}` : '';
  }
}
