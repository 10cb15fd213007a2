/**
 * Does the ClickHouse table hold the rows of this schema version (the
 * `walbridge.schema` header of the event in hand)? And if not, what changes
 * it safely? Pure: the caller runs the DDL (table-target.ts).
 *
 * - a header column the table lacks → ADD COLUMN (DEFAULT = PostgreSQL's
 *   `missing` value, for rows that existed before the column), unless this
 *   process saw that column in the table before: then someone dropped it in
 *   ClickHouse, the values of the rows already there are gone, and re-adding
 *   it is the operator's call → blocked;
 * - a column whose ClickHouse type holds every value of the new type → as is
 *   (int8 → int4 in PostgreSQL leaves an Int64 column alone);
 * - a widening (Int32 → Int64, Float32 → Float64, more Decimal digits, a
 *   number or UUID → String, …) → MODIFY COLUMN (not for sorting-key columns,
 *   which ClickHouse cannot modify in place → blocked);
 * - anything else → blocked, with the DDL an operator could run;
 * - table columns the header lacks (dropped in PostgreSQL) stay: later rows
 *   get their default. Reported once, for the log.
 * - cdc's `sent_to_kafka` is never added (core/envelope.ts `replicatedSchema`, applied where the header is read).
 */
import type { TableSchema } from '../../core/envelope.js';
import { unwrapType } from './column-types.js';
import { addColumnSql, modifyColumnSql } from './table-ddl.js';
import type { DescribedColumn } from './rows.js';
import type { ServerFeatures } from './schema.js';
import { clickHouseTypeOf, postgresTypeName } from './type-mapping.js';

export interface SchemaFit {
  /** DDL to run, in order, each with what it is for. */
  changes: { sql: string; why: string }[];
  /** Why rows of this schema cannot be written now; empty when they can (after `changes`). */
  blockers: string[];
  /** Table data columns the schema no longer has. */
  droppedInPostgres: string[];
}

const BOOKKEEPING = new Set(['_version', '_seq', '_is_deleted', '_synced_at']);

const INTEGER_RANGES: Record<string, [bigint, bigint]> = {
  Int8: [-(2n ** 7n), 2n ** 7n - 1n], Int16: [-(2n ** 15n), 2n ** 15n - 1n], Int32: [-(2n ** 31n), 2n ** 31n - 1n],
  Int64: [-(2n ** 63n), 2n ** 63n - 1n], UInt8: [0n, 255n], UInt16: [0n, 65_535n], UInt32: [0n, 2n ** 32n - 1n], UInt64: [0n, 2n ** 64n - 1n],
};

export type Relation = 'same' | 'holds' | 'widen' | 'incompatible';

function decimalOf(type: string): [number, number] | undefined {
  const match = /^Decimal(?:32|64|128)?\((\d+),\s*(\d+)\)$/.exec(type);
  return match ? [Number(match[1]), Number(match[2])] : undefined;
}

function dateTime64Precision(type: string): number | undefined {
  const match = /^DateTime64\((\d)/.exec(type);
  return match ? Number(match[1]) : undefined;
}

/** How the current inner type relates to the wanted inner type (both without Nullable). */
export function relate(current: string, wanted: string): Relation {
  if (current.replace(/\s/g, '') === wanted.replace(/\s/g, '')) return 'same';
  const currentArray = /^Array\((.*)\)$/.exec(current);
  const wantedArray = /^Array\((.*)\)$/.exec(wanted);
  if (currentArray || wantedArray) {
    if (!currentArray || !wantedArray) return 'incompatible';
    return relate(unwrapType(currentArray[1] ?? '').inner, unwrapType(wantedArray[1] ?? '').inner);
  }
  const ci = INTEGER_RANGES[current];
  const wi = INTEGER_RANGES[wanted];
  if (ci && wi) {
    if (ci[0] <= wi[0] && ci[1] >= wi[1]) return 'holds';
    if (wi[0] <= ci[0] && wi[1] >= ci[1]) return 'widen';
    return 'incompatible';
  }
  if (current === 'Float64' && wanted === 'Float32') return 'holds';
  if (current === 'Float32' && wanted === 'Float64') return 'widen';
  const cd = decimalOf(current);
  const wd = decimalOf(wanted);
  if (cd && wd) {
    if (cd[1] >= wd[1] && cd[0] - cd[1] >= wd[0] - wd[1]) return 'holds';
    if (wd[1] >= cd[1] && wd[0] - wd[1] >= cd[0] - cd[1]) return 'widen';
    return 'incompatible';
  }
  const textual = (type: string): boolean => type === 'String' || type === 'UUID' || type.startsWith('FixedString(') ||
    INTEGER_RANGES[type] !== undefined || decimalOf(type) !== undefined || type.startsWith('Float');
  // Text, numbers and UUIDs write the same digits into a String column as the event carries.
  if (current === 'String' && textual(wanted)) return 'holds';
  if (wanted === 'String' && textual(current)) return 'widen';
  if (current === 'Date32' && wanted === 'Date') return 'holds';
  if (current === 'Date' && wanted === 'Date32') return 'widen';
  const cp = dateTime64Precision(current);
  const wp = dateTime64Precision(wanted);
  if (cp !== undefined && wp !== undefined) return cp >= wp ? 'holds' : 'widen';
  return 'incompatible';
}

/**
 * `known`: columns this process has seen in the table (a header column the
 * table lacks but `known` has was dropped in ClickHouse by hand).
 */
export function fitSchema(database: string, table: string, schema: TableSchema, columns: readonly DescribedColumn[],
  sortingKey: ReadonlySet<string>, known: ReadonlySet<string>, features: ServerFeatures): SchemaFit {
  const fit: SchemaFit = { changes: [], blockers: [], droppedInPostgres: [] };
  const byName = new Map(columns.map((c) => [c.name, c]));
  const where = `${database}.${table}`;
  for (const column of schema.columns) {
    const wanted = clickHouseTypeOf(column, features);
    const existing = byName.get(column.name);
    const pgType = postgresTypeName(column);
    if (!existing) {
      const add = addColumnSql(database, table, column, wanted);
      if (known.has(column.name)) {
        fit.blockers.push(`ClickHouse table ${where} has no column ${column.name} any more (dropped in ClickHouse?), but the events ` +
          `of ${schema.schema}.${schema.table} carry it (PostgreSQL ${pgType}); re-add it: ${add}`);
      } else {
        fit.changes.push({ sql: add, why: `column ${column.name} (PostgreSQL ${pgType}) added` });
      }
      continue;
    }
    const current = unwrapType(existing.type);
    const relation = relate(current.inner, unwrapType(wanted).inner);
    if (relation === 'same' || relation === 'holds') continue;
    const target = current.nullable ? `Nullable(${unwrapType(wanted).inner})` : unwrapType(wanted).inner;
    const modify = modifyColumnSql(database, table, column.name, target);
    if (relation === 'widen' && !sortingKey.has(column.name)) {
      fit.changes.push({ sql: modify, why: `column ${column.name} widened to PostgreSQL ${pgType}` });
      continue;
    }
    const why = relation === 'widen' ? 'it is in the sorting key, which ClickHouse cannot modify in place; recreate the table and replay'
      : `the ClickHouse type does not hold every ${pgType} value; change the column, e.g.: ${modify}`;
    fit.blockers.push(`ClickHouse table ${where} column ${column.name} is ${existing.type}, but ${schema.schema}.${schema.table}.${column.name} ` +
      `is now PostgreSQL ${pgType} (ClickHouse ${wanted}): ${why}`);
  }
  const inSchema = new Set(schema.columns.map((c) => c.name));
  for (const column of columns) {
    if (!BOOKKEEPING.has(column.name) && !inSchema.has(column.name) && column.default_type !== 'MATERIALIZED' && column.default_type !== 'ALIAS') {
      fit.droppedInPostgres.push(column.name);
    }
  }
  return fit;
}
