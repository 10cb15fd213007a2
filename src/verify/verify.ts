/**
 * `sink verify`: is ClickHouse's `FINAL WHERE _is_deleted = 0` the PostgreSQL
 * table, row for row?
 *
 * Both sides are read ordered by the (single, integer) primary key, a page at
 * a time (memory stays bounded), and merged: each row is reduced to a
 * canonical text of the columns both tables have (so PostgreSQL-only
 * `sent_to_kafka` and ClickHouse-only `_version`/`_synced_at` are left out).
 * Per id range (`rangeSize` ids) a row count and a SHA-256 of the canonical
 * rows are kept on each side; a range whose count or hash differs is
 * reported, and the differing ids are named (missing, extra, changed).
 *
 * Timestamps are compared at the ClickHouse column's precision, as epoch
 * numbers: whole seconds for DateTime (18.16 has nothing finer), p digits
 * for DateTime64(p). Pending mutations (truncates) are waited for first.
 */
import { createHash, type Hash } from 'node:crypto';
import pg from 'pg';
import type { ClickHouseClient } from '@clickhouse/client';
import { ConfigError } from '../core/exit-codes.js';
import { openClickHouse, quoteIdentifier } from '../sink/clickhouse/client.js';
import { floorDiv, unwrapType } from '../sink/clickhouse/column-types.js';
import { DELETED_COLUMN, describeTarget, quoteString } from '../sink/clickhouse/rows.js';

export interface VerifyOptions {
  databaseUrl: string;
  clickhouseUrl: string;
  schema: string;
  table: string;
  targetTable: string;
  rangeSize: number;
  show: number;
  waitMutationsMs: number;
}

export interface Difference {
  id: string;
  what: string;
}

export interface RangeDifference {
  from: bigint;
  to: bigint;
  postgres: { count: number; hash: string };
  clickhouse: { count: number; hash: string };
}

export interface VerifyReport {
  equal: boolean;
  source: string;
  target: string;
  columns: string[];
  notes: string[];
  postgresRows: number;
  clickhouseRows: number;
  rangeSize: number;
  ranges: number;
  differingRanges: RangeDifference[];
  differingIds: number;
  differences: Difference[];
}

interface ComparedColumn {
  name: string;
  pgExpr: string;
  chExpr: string;
  normalise: (text: string) => string;
}

interface KeyedRow {
  key: bigint;
  values: (string | null)[];
}

const INTEGER_PG_TYPES = new Set(['smallint', 'integer', 'bigint']);
const identity = (text: string): string => text;

function normaliseDecimal(text: string): string {
  return /^-?\d+\.\d+$/.test(text) ? text.replace(/0+$/, '').replace(/\.$/, '') : text;
}

function compareColumn(name: string, pgType: string, chType: string, notes: string[]): ComparedColumn {
  const pgCol = `t.${pgQuote(name)}`;
  const chCol = quoteIdentifier(name);
  const { inner } = unwrapType(chType);
  const dt64 = /^DateTime64\((\d)/.exec(inner);
  if (dt64) {
    const precision = Number(dt64[1]);
    const fn = ({ 3: 'toUnixTimestamp64Milli', 6: 'toUnixTimestamp64Micro', 9: 'toUnixTimestamp64Nano' } as Record<number, string>)[precision];
    if (!fn) throw new ConfigError(`verify compares DateTime64 with 3, 6 or 9 digits; ${name} is ${inner}`);
    notes.push(`${name} compared as epoch time at ${precision} fraction digits (ClickHouse ${inner})`);
    return { name, pgExpr: `floor(extract(epoch from ${pgCol}) * 1e${precision})::bigint::text`, chExpr: `toString(${fn}(${chCol}))`, normalise: identity };
  }
  if (inner === 'DateTime' || inner.startsWith('DateTime(')) {
    notes.push(`${name} compared at whole seconds (ClickHouse ${inner} keeps seconds; PostgreSQL's microseconds are truncated)`);
    return { name, pgExpr: `floor(extract(epoch from ${pgCol}))::bigint::text`, chExpr: `toString(toUnixTimestamp(${chCol}))`, normalise: identity };
  }
  const pgExpr = pgType === 'boolean' ? `(${pgCol})::int::text` : `(${pgCol})::text`;
  let normalise = identity;
  if (inner.startsWith('Decimal')) normalise = normaliseDecimal;
  if (inner.startsWith('Float')) normalise = (text) => String(Number(text));
  return { name, pgExpr, chExpr: `toString(${chCol})`, normalise };
}

function pgQuote(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

async function* pages<T>(fetch: (after: bigint | undefined) => Promise<T[]>, keyOf: (row: T) => bigint): AsyncGenerator<T> {
  let after: bigint | undefined;
  for (;;) {
    const rows = await fetch(after);
    if (rows.length === 0) return;
    yield* rows;
    after = keyOf(rows[rows.length - 1] as T);
  }
}


interface RangeState {
  index: bigint;
  pg: { count: number; hash: Hash };
  ch: { count: number; hash: Hash };
}

async function waitForMutations(client: ClickHouseClient, database: string, table: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await client.query({
      query: `SELECT count() AS n FROM system.mutations WHERE database = ${quoteString(database)} AND table = ${quoteString(table)} AND is_done = 0`,
      format: 'JSONEachRow',
    });
    const pending = Number((await result.json<{ n: string }>())[0]?.n ?? 0);
    if (pending === 0 || Date.now() >= deadline) return pending;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export async function verifyTables(options: VerifyOptions): Promise<VerifyReport> {
  const client = new pg.Client({ connectionString: options.databaseUrl, types: { getTypeParser: () => (value: string) => value } as never });
  const { client: clickhouse, database } = openClickHouse(options.clickhouseUrl);
  await client.connect();
  try {
    await client.query(`SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET extra_float_digits = 1`);
    const relation = `${pgQuote(options.schema)}.${pgQuote(options.table)}`;
    const pgColumns = await client.query<{ name: string; type: string; primary: string }>(
      `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
              (a.attnum = ANY(coalesce((SELECT i.indkey::int2[] FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary), '{}')))::text AS primary
         FROM pg_attribute a
        WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum`, [relation]);
    if (pgColumns.rows.length === 0) throw new ConfigError(`PostgreSQL table ${options.schema}.${options.table} does not exist (check --table and --database-url)`);
    const keys = pgColumns.rows.filter((c) => c.primary === 'true');
    const key = keys[0];
    if (keys.length !== 1 || !key || !INTEGER_PG_TYPES.has(key.type)) {
      throw new ConfigError(`verify needs a single-column integer primary key on ${options.schema}.${options.table}`);
    }
    const target = await describeTarget(clickhouse, database, options.targetTable);
    const chTypes = new Map(target.dataColumns.map((c) => [c.name, c.type]));
    if (!chTypes.has(key.name)) throw new ConfigError(`ClickHouse table ${database}.${options.targetTable} has no key column ${key.name}`);
    const notes: string[] = [];
    const columns = pgColumns.rows
      .filter((c) => chTypes.has(c.name) && c.name !== key.name)
      .map((c) => compareColumn(c.name, c.type, chTypes.get(c.name) ?? '', notes));
    const pending = await waitForMutations(clickhouse, database, options.targetTable, options.waitMutationsMs);
    if (pending > 0) notes.push(`${pending} ClickHouse mutation(s) still running after ${options.waitMutationsMs / 1000}s: the result may change`);

    const pageSize = Math.min(options.rangeSize, 10_000);
    const pgKey = `t.${pgQuote(key.name)}`;
    const pgSql = (after: bigint | undefined): string =>
      `SELECT ${pgKey}::text AS k${columns.map((c, i) => `, ${c.pgExpr} AS c${i}`).join('')} FROM ${relation} t` +
      `${after === undefined ? '' : ` WHERE ${pgKey} > ${after}`} ORDER BY ${pgKey} LIMIT ${pageSize}`;
    const chKey = quoteIdentifier(key.name);
    const chSql = (after: bigint | undefined): string =>
      `SELECT toString(${chKey}) AS k${columns.map((c, i) => `, ${c.chExpr} AS c${i}`).join('')}` +
      ` FROM ${quoteIdentifier(database)}.${quoteIdentifier(options.targetTable)} FINAL WHERE ${quoteIdentifier(DELETED_COLUMN)} = 0` +
      `${after === undefined ? '' : ` AND ${chKey} > ${after}`} ORDER BY ${chKey} LIMIT ${pageSize}`;
    const toRow = (raw: Record<string, string | null>): KeyedRow => ({
      key: BigInt(raw.k ?? '0'),
      values: columns.map((c, i) => {
        const value = raw[`c${i}`];
        return value === null || value === undefined ? null : c.normalise(value);
      }),
    });
    const pgRows = pages(async (after) => (await client.query<Record<string, string | null>>(pgSql(after))).rows.map(toRow), (r) => r.key);
    const chRows = pages(async (after) => {
      const result = await clickhouse.query({ query: chSql(after), format: 'JSONEachRow' });
      return (await result.json<Record<string, string | null>>()).map(toRow);
    }, (r) => r.key);

    const report: VerifyReport = {
      equal: true, source: `${options.schema}.${options.table}`, target: `${database}.${options.targetTable}`,
      columns: [key.name, ...columns.map((c) => c.name)], notes, postgresRows: 0, clickhouseRows: 0,
      rangeSize: options.rangeSize, ranges: 0, differingRanges: [], differingIds: 0, differences: [],
    };
    const rangeSize = BigInt(options.rangeSize);
    let range: RangeState | undefined;
    const closeRange = (): void => {
      if (!range) return;
      report.ranges += 1;
      const pgHash = range.pg.hash.digest('hex');
      const chHash = range.ch.hash.digest('hex');
      if (range.pg.count !== range.ch.count || pgHash !== chHash) {
        report.differingRanges.push({
          from: range.index * rangeSize, to: range.index * rangeSize + rangeSize - 1n,
          postgres: { count: range.pg.count, hash: pgHash.slice(0, 12) }, clickhouse: { count: range.ch.count, hash: chHash.slice(0, 12) },
        });
      }
      range = undefined;
    };
    const side = (row: KeyedRow, which: 'pg' | 'ch'): void => {
      const index = floorDiv(row.key, rangeSize);
      if (range && range.index !== index) closeRange();
      range ??= { index, pg: { count: 0, hash: createHash('sha256') }, ch: { count: 0, hash: createHash('sha256') } };
      range[which].count += 1;
      range[which].hash.update(`${row.key}\t${JSON.stringify(row.values)}\n`);
      if (which === 'pg') report.postgresRows += 1;
      else report.clickhouseRows += 1;
    };
    const differ = (id: bigint, what: string): void => {
      report.differingIds += 1;
      if (report.differences.length < options.show) report.differences.push({ id: id.toString(), what });
    };

    let a = await pgRows.next();
    let b = await chRows.next();
    while (!a.done || !b.done) {
      if (!a.done && (b.done || a.value.key < b.value.key)) {
        side(a.value, 'pg');
        differ(a.value.key, 'missing in ClickHouse');
        a = await pgRows.next();
      } else if (!b.done && (a.done || b.value.key < a.value.key)) {
        side(b.value, 'ch');
        differ(b.value.key, 'in ClickHouse but not in PostgreSQL');
        b = await chRows.next();
      } else if (!a.done && !b.done) {
        side(a.value, 'pg');
        side(b.value, 'ch');
        const pgValues = a.value.values;
        const chValues = b.value.values;
        const changed = columns
          .map((c, i) => (pgValues[i] === chValues[i] ? '' : `${c.name}: PostgreSQL ${JSON.stringify(pgValues[i])}, ClickHouse ${JSON.stringify(chValues[i])}`))
          .filter(Boolean);
        if (changed.length > 0) differ(a.value.key, changed.join('; '));
        a = await pgRows.next();
        b = await chRows.next();
      }
    }
    closeRange();
    report.equal = report.differingIds === 0 && report.differingRanges.length === 0;
    return report;
  } finally {
    await client.end();
    await clickhouse.close();
  }
}

export function formatVerifyReport(report: VerifyReport): string {
  const lines = [
    `verify ${report.source} (PostgreSQL) against ${report.target} FINAL WHERE _is_deleted = 0 (ClickHouse)`,
    `columns: ${report.columns.join(', ')}`,
    ...report.notes.map((note) => `note: ${note}`),
    `rows: PostgreSQL ${report.postgresRows}, ClickHouse ${report.clickhouseRows}; ` +
      `id ranges of ${report.rangeSize}: ${report.ranges} compared, ${report.differingRanges.length} differ`,
  ];
  for (const r of report.differingRanges.slice(0, 10)) {
    lines.push(`  ids ${r.from}..${r.to}: PostgreSQL ${r.postgres.count} rows (hash ${r.postgres.hash}), ClickHouse ${r.clickhouse.count} rows (hash ${r.clickhouse.hash})`);
  }
  if (report.equal) {
    lines.push('EQUAL');
  } else {
    lines.push(`DIFFERENT: ${report.differingIds} id${report.differingIds === 1 ? '' : 's'} differ` +
      (report.differingIds > report.differences.length ? ` (first ${report.differences.length} shown)` : ''));
    for (const d of report.differences) lines.push(`  id ${d.id}: ${d.what}`);
  }
  return lines.join('\n');
}
