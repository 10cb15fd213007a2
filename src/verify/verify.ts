/**
 * `sink verify`: is ClickHouse's `FINAL WHERE _is_deleted = 0` the PostgreSQL
 * table, row for row?
 *
 * Both sides are read ordered by the primary key, a page at a time (memory
 * stays bounded), and merged: each row is reduced to a canonical text of the
 * columns both tables have (canonical-columns.ts; so PostgreSQL-only
 * `sent_to_kafka` and ClickHouse-only `_version`/`_synced_at` are left out).
 * A single integer key is ordered as a number (the index serves it) and
 * grouped in id ranges of `rangeSize` ids; any other key (composite, text,
 * uuid, …) is ordered by the bytes of its canonical text on both sides
 * (COLLATE "C" in PostgreSQL: a sort per page, slower on big tables) and
 * grouped in runs of `rangeSize` keys. Per group a row count and a SHA-256 of
 * the canonical rows are kept on each side; a group whose count or hash
 * differs is reported, and the differing keys are named (missing, extra,
 * changed). Pending mutations (truncates) are waited for first, and a replica
 * of a Replicated table first catches up with the others (syncReplica).
 */
import { createHash, type Hash } from 'node:crypto';
import pg from 'pg';
import type { ClickHouseClient } from '@clickhouse/client';
import type { ColumnPolicy } from '../config/column-policy.js';
import { ConfigError } from '../core/exit-codes.js';
import { openClickHouse, quoteIdentifier } from '../sink/clickhouse/client.js';
import { floorDiv } from '../sink/clickhouse/column-types.js';
import { DELETED_COLUMN, describeTarget, quoteString } from '../sink/clickhouse/rows.js';
import { detectFeatures } from '../sink/clickhouse/schema.js';
import { compareColumn, hashedColumn, pgQuote } from './canonical-columns.js';

export interface VerifyOptions {
  databaseUrl: string;
  clickhouseUrl: string;
  clickhouseCaFile?: string | undefined;
  /** cdc's --exclude-column / --hash-column: excluded columns are not compared, hashed ones are hashed on the PostgreSQL side. */
  columns?: ColumnPolicy | undefined;
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
  /** First and last key of the group (ids, or canonical key texts). */
  from: string;
  to: string;
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
  /** How keys are named: `id`, a column name, or `(a, b)`. */
  keyLabel: string;
  integerKey: boolean;
}

interface KeyedRow {
  /** The key text as both databases computed it (paging goes on from it). */
  raw: string;
  /** The key's canonical text (one column) or a JSON array of them. */
  key: string;
  /** Single integer key only: the key as a number, for ordering and id ranges. */
  id: bigint | undefined;
  values: (string | null)[];
}

const INTEGER_PG_TYPES = new Set(['smallint', 'integer', 'bigint']);

/** Key order shared by both sides: numbers for an integer key, else the UTF-8 bytes of the canonical text. */
function compareKeys(a: KeyedRow, b: KeyedRow): number {
  if (a.id !== undefined && b.id !== undefined) return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  return Buffer.compare(Buffer.from(a.key, 'utf8'), Buffer.from(b.key, 'utf8'));
}

async function* pages<T>(fetch: (after: T | undefined) => Promise<T[]>): AsyncGenerator<T> {
  let after: T | undefined;
  for (;;) {
    const rows = await fetch(after);
    if (rows.length === 0) return;
    yield* rows;
    after = rows[rows.length - 1];
  }
}


interface RangeState {
  index: bigint;
  first: string;
  last: string;
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

/**
 * A replica of a Replicated table receives parts, ALTERs and mutations
 * written through another replica asynchronously (the sink writes to one).
 * SYSTEM SYNC REPLICA pulls the shared log and waits until this replica's
 * queue has worked off what it held, so the FINAL read below sees everything
 * written before verify started. (select_sequential_consistency would only
 * help for inserts made with insert_quorum, which the sink does not use: it
 * would stop writing while a replica is down.) Returns a note when the table
 * is replicated but the replica did not catch up in time; undefined otherwise.
 */
async function syncReplica(client: ClickHouseClient, database: string, table: string, timeoutMs: number): Promise<string | undefined> {
  const result = await client.query({
    query: `SELECT count() AS n FROM system.replicas WHERE database = ${quoteString(database)} AND table = ${quoteString(table)}`, format: 'JSONEachRow',
  });
  if (Number((await result.json<{ n: string }>())[0]?.n ?? 0) === 0) return undefined;
  // The server waits up to receive_timeout; the HTTP request (60 s) must outlast it.
  const seconds = Math.max(1, Math.min(50, Math.round(timeoutMs / 1000)));
  try {
    await client.command({ query: `SYSTEM SYNC REPLICA ${quoteIdentifier(database)}.${quoteIdentifier(table)}`, clickhouse_settings: { receive_timeout: seconds } });
    return undefined;
  } catch (error) {
    return `this replica did not catch up with the others within ${seconds}s (${(error as Error).message.split('\n')[0]}): rows written through another replica may be missing`;
  }
}

export async function verifyTables(options: VerifyOptions): Promise<VerifyReport> {
  const client = new pg.Client({ connectionString: options.databaseUrl, types: { getTypeParser: () => (value: string) => value } as never });
  const { client: clickhouse, database } = openClickHouse(options.clickhouseUrl, { caFile: options.clickhouseCaFile });
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
    if (keys.length === 0) throw new ConfigError(`verify needs a primary key on ${options.schema}.${options.table}`);
    const target = await describeTarget(clickhouse, database, options.targetTable, await detectFeatures(clickhouse));
    const chTypes = new Map(target.dataColumns.map((c) => [c.name, c.type]));
    for (const key of keys) {
      if (!chTypes.has(key.name)) throw new ConfigError(`ClickHouse table ${database}.${options.targetTable} has no key column ${key.name}`);
    }
    const integerKey = keys.length === 1 && INTEGER_PG_TYPES.has(keys[0]?.type ?? '');
    const notes: string[] = [];
    const keyColumns = keys.map((k) => compareColumn(k.name, k.type, chTypes.get(k.name) ?? '', []));
    const keyNames = new Set(keys.map((k) => k.name));
    const qualified = `${options.schema}.${options.table}`;
    options.columns?.check([{ qualified, columns: pgColumns.rows.map((c) => c.name), primaryKey: [...keyNames] }]);
    const treatment = (column: string) => options.columns?.treatment(qualified, column) ?? 'keep';
    const columns = pgColumns.rows
      .filter((c) => chTypes.has(c.name) && !keyNames.has(c.name) && treatment(c.name) !== 'exclude')
      .map((c) => (treatment(c.name) === 'hash'
        ? hashedColumn(c.name, (text) => options.columns!.hashText(text))
        : compareColumn(c.name, c.type, chTypes.get(c.name) ?? '', notes)));
    const leftOut = pgColumns.rows.filter((c) => treatment(c.name) === 'exclude').map((c) => c.name);
    if (leftOut.length > 0) notes.push(`not compared (--exclude-column): ${leftOut.join(', ')}`);
    const behind = await syncReplica(clickhouse, database, options.targetTable, options.waitMutationsMs);
    if (behind) notes.push(behind);
    const pending = await waitForMutations(clickhouse, database, options.targetTable, options.waitMutationsMs);
    if (pending > 0) notes.push(`${pending} ClickHouse mutation(s) still running after ${options.waitMutationsMs / 1000}s: the result may change`);

    const pageSize = Math.min(options.rangeSize, 10_000);
    const values = (expr: (c: typeof columns[number]) => string): string => columns.map((c, i) => `, ${expr(c)} AS c${i}`).join('');
    // One key text both sides compute alike: the column's canonical text, or several joined by \x01.
    const pgKey = integerKey ? `t.${pgQuote(keys[0]!.name)}` : `(${keyColumns.map((k) => k.pgExpr).join(` || E'\\x01' || `)}) COLLATE "C"`;
    const chKey = integerKey ? quoteIdentifier(keys[0]!.name) : `concat(${keyColumns.map((k) => k.chExpr).join(`, '\\x01', `)}${keyColumns.length === 1 ? ", ''" : ''})`;
    const afterValue = (row: KeyedRow): string => (integerKey ? `${row.id}` : quoteString(row.raw));
    const pgSql = (after: KeyedRow | undefined): string =>
      `SELECT ${integerKey ? `${pgKey}::text` : pgKey} AS k${values((c) => c.pgExpr)} FROM ${relation} t` +
      `${after === undefined ? '' : ` WHERE ${pgKey} > ${integerKey ? after.id : pgLiteral(after.raw)}`} ORDER BY ${pgKey} LIMIT ${pageSize}`;
    const chSql = (after: KeyedRow | undefined): string =>
      `SELECT ${integerKey ? `toString(${chKey})` : chKey} AS k${values((c) => c.chExpr)}` +
      ` FROM ${quoteIdentifier(database)}.${quoteIdentifier(options.targetTable)} FINAL WHERE ${quoteIdentifier(DELETED_COLUMN)} = 0` +
      `${after === undefined ? '' : ` AND ${chKey} > ${afterValue(after)}`} ORDER BY ${chKey} LIMIT ${pageSize}`;
    const toRow = (raw: Record<string, string | null>, side: 'pg' | 'ch'): KeyedRow => {
      const text = raw.k ?? '';
      return {
        raw: text,
        key: integerKey || keys.length === 1 ? text : JSON.stringify(text.split('\x01')),
        id: integerKey ? BigInt(text) : undefined,
        values: columns.map((c, i) => {
          const value = raw[`c${i}`];
          if (value === null || value === undefined) return null;
          return c.normalise(side === 'pg' && c.pgValue ? c.pgValue(value) : value);
        }),
      };
    };
    const pgRows = pages<KeyedRow>(async (after) => (await client.query<Record<string, string | null>>(pgSql(after))).rows.map((row) => toRow(row, 'pg')));
    const chRows = pages<KeyedRow>(async (after) => {
      const result = await clickhouse.query({ query: chSql(after), format: 'JSONEachRow' });
      return (await result.json<Record<string, string | null>>()).map((row) => toRow(row, 'ch'));
    });

    const report: VerifyReport = {
      equal: true, source: `${options.schema}.${options.table}`, target: `${database}.${options.targetTable}`,
      columns: [...keys.map((k) => k.name), ...columns.map((c) => c.name)], notes, keyLabel: keys.length === 1 ? keys[0]!.name : `(${keys.map((k) => k.name).join(', ')})`, integerKey, postgresRows: 0, clickhouseRows: 0,
      rangeSize: options.rangeSize, ranges: 0, differingRanges: [], differingIds: 0, differences: [],
    };
    const rangeSize = BigInt(options.rangeSize);
    let range: RangeState | undefined;
    let keysSeen = 0n;
    let lastKey: string | undefined;
    const closeRange = (): void => {
      if (!range) return;
      report.ranges += 1;
      const pgHash = range.pg.hash.digest('hex');
      const chHash = range.ch.hash.digest('hex');
      if (range.pg.count !== range.ch.count || pgHash !== chHash) {
        report.differingRanges.push({
          from: integerKey ? `${range.index * rangeSize}` : range.first, to: integerKey ? `${range.index * rangeSize + rangeSize - 1n}` : range.last,
          postgres: { count: range.pg.count, hash: pgHash.slice(0, 12) }, clickhouse: { count: range.ch.count, hash: chHash.slice(0, 12) },
        });
      }
      range = undefined;
    };
    const side = (row: KeyedRow, which: 'pg' | 'ch'): void => {
      if (row.key !== lastKey) {
        lastKey = row.key;
        keysSeen += 1n;
      }
      const index = row.id !== undefined ? floorDiv(row.id, rangeSize) : (keysSeen - 1n) / rangeSize;
      if (range && range.index !== index) closeRange();
      range ??= { index, first: row.key, last: row.key, pg: { count: 0, hash: createHash('sha256') }, ch: { count: 0, hash: createHash('sha256') } };
      range.last = row.key;
      range[which].count += 1;
      range[which].hash.update(`${row.key}\t${JSON.stringify(row.values)}\n`);
      if (which === 'pg') report.postgresRows += 1;
      else report.clickhouseRows += 1;
    };
    const differ = (id: string, what: string): void => {
      report.differingIds += 1;
      if (report.differences.length < options.show) report.differences.push({ id, what });
    };

    let a = await pgRows.next();
    let b = await chRows.next();
    while (!a.done || !b.done) {
      const order = !a.done && !b.done ? compareKeys(a.value, b.value) : 0;
      if (!a.done && (b.done || order < 0)) {
        side(a.value, 'pg');
        differ(a.value.key, 'missing in ClickHouse');
        a = await pgRows.next();
      } else if (!b.done && (a.done || order > 0)) {
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
      `${report.integerKey ? `${report.keyLabel} ranges of ${report.rangeSize}` : `runs of ${report.rangeSize} keys`}: ${report.ranges} compared, ${report.differingRanges.length} differ`,
  ];
  for (const r of report.differingRanges.slice(0, 10)) {
    lines.push(`  ${report.keyLabel === 'id' ? 'ids' : report.keyLabel} ${r.from}..${r.to}: PostgreSQL ${r.postgres.count} rows (hash ${r.postgres.hash}), ClickHouse ${r.clickhouse.count} rows (hash ${r.clickhouse.hash})`);
  }
  if (report.equal) {
    lines.push('EQUAL');
  } else {
    lines.push(`DIFFERENT: ${report.differingIds} id${report.differingIds === 1 ? '' : 's'} differ` +
      (report.differingIds > report.differences.length ? ` (first ${report.differences.length} shown)` : ''));
    for (const d of report.differences) lines.push(`  ${report.keyLabel} ${d.id}: ${d.what}`);
  }
  return lines.join('\n');
}

/** A PostgreSQL string literal (standard_conforming_strings: only quotes double); NUL cannot occur in a key text. */
function pgLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** The PostgreSQL tables of the database, as `schema.table` names (system schemas left out). */
export async function postgresTables(databaseUrl: string): Promise<{ schema: string; table: string }[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const result = await client.query<{ schema: string; table: string }>(
      `SELECT schemaname AS schema, tablename AS table FROM pg_tables
        WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`);
    return result.rows;
  } finally {
    await client.end();
  }
}
