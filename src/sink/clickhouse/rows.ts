/**
 * Envelope images → JSONEachRow lines for the target table, shaped by the
 * table's own columns (DESCRIBE TABLE), so the sink follows the table rather
 * than a hard-coded schema:
 *
 * - data columns take the image's value of the same name, converted per
 *   ClickHouse type (column-types.ts); image columns the table lacks (e.g.
 *   `sent_to_kafka`, PostgreSQL-side bookkeeping) are ignored;
 * - `_version` = the event's version (commit LSN), exact as UInt64;
 * - `_is_deleted` = 0 for upserts, 1 for deletes;
 * - `_synced_at` = when the sink wrote the row (optional column).
 *
 * An upsert must carry a value for every non-Nullable data column. A delete
 * needs only the sorting-key columns (from the message key or `before`); the
 * other columns come from `before` when it has them, else the type defaults.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { RowImage } from '../../core/envelope.js';
import { ConfigError } from '../../core/exit-codes.js';
import type { Lsn } from '../../core/lsn.js';
import { converterFor, unwrapType, utcTimestampText, ValueError, type ValueConverter } from './column-types.js';
import { quoteIdentifier } from './client.js';

export const VERSION_COLUMN = '_version';
export const DELETED_COLUMN = '_is_deleted';
export const SYNCED_AT_COLUMN = '_synced_at';
const BOOKKEEPING = new Set([VERSION_COLUMN, DELETED_COLUMN, SYNCED_AT_COLUMN]);

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
}

export interface TargetTable {
  database: string;
  table: string;
  dataColumns: TargetColumn[];
  /** Type of `_synced_at`, or null when the table has no such column. */
  syncedAtType: string | null;
}

interface DescribedColumn {
  name: string;
  type: string;
  default_type: string;
}

export function quoteString(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export async function describeTarget(client: ClickHouseClient, database: string, table: string): Promise<TargetTable> {
  const where = `${quoteIdentifier(database)}.${quoteIdentifier(table)}`;
  const tables = await client.query({
    query: `SELECT sorting_key FROM system.tables WHERE database = ${quoteString(database)} AND name = ${quoteString(table)}`,
    format: 'JSONEachRow',
  });
  const found = await tables.json<{ sorting_key: string }>();
  if (found.length === 0) {
    throw new ConfigError(`ClickHouse table ${database}.${table} does not exist; create it with \`migrate\` ` +
      `(or, for another table, a ReplacingMergeTree(_version) with _version UInt64 and _is_deleted UInt8)`);
  }
  const sortingKey = new Set((found[0]?.sorting_key ?? '').split(',').map((part) => part.trim()).filter(Boolean));
  const described = await client.query({ query: `DESCRIBE TABLE ${where}`, format: 'JSONEachRow' });
  const columns = await described.json<DescribedColumn>();
  return targetTableOf(database, table, columns, sortingKey);
}

export function targetTableOf(database: string, table: string, columns: DescribedColumn[], sortingKey: Set<string>): TargetTable {
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
    dataColumns.push({
      name: column.name,
      type: column.type,
      nullable: unwrapType(column.type).nullable,
      key: sortingKey.has(column.name),
      prefix: `${JSON.stringify(column.name)}:`,
      convert,
    });
  }
  const syncedAt = columns.find((c) => c.name === SYNCED_AT_COLUMN);
  return { database, table, dataColumns, syncedAtType: syncedAt?.type ?? null };
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

  /** Throws ValueError when the image does not fit the table. */
  upsert(after: RowImage, version: Lsn, syncedAt: string): string {
    let line = '{';
    for (const column of this.target.dataColumns) {
      const value = after[column.name];
      if (value === null || value === undefined) {
        if (!column.nullable) {
          throw new ValueError(`column ${column.name} (${column.type}) is not Nullable but the event has ${value === null ? 'null' : 'no value'}`);
        }
        line += `${column.prefix}null,`;
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
    return `${line}"${VERSION_COLUMN}":${version},"${DELETED_COLUMN}":0${syncedAt}}`;
  }

  /** A tombstone row: the key, `_is_deleted = 1`, other columns from `before` when it has them. */
  delete(before: RowImage | null, key: RowImage | null, version: Lsn, syncedAt: string): string {
    let line = '{';
    for (const column of this.target.dataColumns) {
      const value = key?.[column.name] ?? before?.[column.name];
      if (value === null || value === undefined) {
        if (column.key) throw new ValueError(`a delete without a value for key column ${column.name}`);
        if (column.nullable) line += `${column.prefix}null,`;
        continue;
      }
      try {
        line += `${column.prefix}${column.convert(value)},`;
      } catch (error) {
        if (column.key) throw new ValueError(`key column ${column.name}: ${(error as Error).message}`);
        // A non-key value of a deleted row is never read back: leave the default.
      }
    }
    return `${line}"${VERSION_COLUMN}":${version},"${DELETED_COLUMN}":1${syncedAt}}`;
  }
}
