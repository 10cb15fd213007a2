/**
 * Writes into the target table. Contract:
 * - insert(lines): one finite `INSERT … FORMAT JSONEachRow` request holding
 *   the given lines; resolves only when ClickHouse answered success (the
 *   response is read to its end), so offsets may be committed afterwards.
 * - applyTruncate(version): records the truncate's version in
 *   walbridge_sink_truncates, then issues
 *   `ALTER TABLE … DELETE WHERE _version < version` (a mutation: ClickHouse
 *   applies it asynchronously to the rows already there). Rows older than the
 *   highest recorded truncate are never inserted afterwards (the caller
 *   filters with truncateFloor), so order across partitions does not matter
 *   and replays stay exact. Both are idempotent.
 */
import { Readable } from 'node:stream';
import { ClickHouseError, type ClickHouseClient } from '@clickhouse/client';
import { quoteIdentifier } from './client.js';
import { quoteString, VERSION_COLUMN, type TargetTable } from './rows.js';

export const TRUNCATES_TABLE = 'walbridge_sink_truncates';

/** Server error codes that pass: overload, timeouts, read-only replica, network. */
const TRANSIENT_CODES = new Set(['3', '159', '164', '202', '203', '209', '210', '241', '242', '252', '285', '319', '425', '999']);
/** Server error codes that mean a row of the insert does not fit (parse, type, range). */
const ROW_DATA_CODES = new Set(['6', '25', '26', '27', '32', '38', '41', '53', '69', '70', '72', '117', '131', '349', '407']);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);

/**
 * The server's error code. @clickhouse/client parses only the current error
 * format into ClickHouseError; 18.16 answers `Code: 131, e.displayText() = …`,
 * which arrives as a plain Error.
 */
function serverErrorCode(error: unknown): string | undefined {
  if (error instanceof ClickHouseError) return error.code;
  return /^Code: (\d+)[.,]/.exec((error as Error | undefined)?.message ?? '')?.[1];
}

export function isTransientClickHouseError(error: unknown): boolean {
  const code = serverErrorCode(error);
  if (code !== undefined) return TRANSIENT_CODES.has(code);
  const err = error as { code?: string; message?: string } | undefined;
  if (err?.code && NETWORK_CODES.has(err.code)) return true;
  const message = err?.message ?? '';
  return /Timeout error|socket hang up|ECONNRESET|ECONNREFUSED|other side closed/i.test(message);
}

export function isRowDataError(error: unknown): boolean {
  const code = serverErrorCode(error);
  return code !== undefined && ROW_DATA_CODES.has(code);
}

export class ClickHouseWriter {
  private readonly qualifiedTable: string;
  private readonly truncatesTable: string;

  constructor(private readonly client: ClickHouseClient, private readonly target: TargetTable) {
    this.qualifiedTable = `${quoteIdentifier(target.database)}.${quoteIdentifier(target.table)}`;
    this.truncatesTable = `${quoteIdentifier(target.database)}.${quoteIdentifier(TRUNCATES_TABLE)}`;
  }

  async insert(lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    const body = Buffer.from(`${lines.join('\n')}\n`, 'utf8');
    const result = await this.client.exec({
      query: `INSERT INTO ${this.qualifiedTable} FORMAT JSONEachRow`,
      values: Readable.from([body], { objectMode: false }),
    });
    // Read the (empty) response to its end so the socket goes back to the pool.
    for await (const chunk of result.stream) void chunk;
  }

  async ensureTruncatesTable(): Promise<void> {
    await this.client.command({
      query: `CREATE TABLE IF NOT EXISTS ${this.truncatesTable}
              (table_name String, version UInt64, applied_at DateTime DEFAULT now())
              ENGINE = MergeTree ORDER BY (table_name, version)`,
    });
  }

  /** The highest truncate version recorded for the target table (0 when none). */
  async truncateFloor(): Promise<bigint> {
    const result = await this.client.query({
      query: `SELECT toString(max(version)) AS version FROM ${this.truncatesTable} WHERE table_name = ${quoteString(this.target.table)}`,
      format: 'JSONEachRow',
    });
    const rows = await result.json<{ version: string }>();
    return BigInt(rows[0]?.version ?? '0');
  }

  async applyTruncate(version: bigint): Promise<void> {
    await this.client.command({
      query: `INSERT INTO ${this.truncatesTable} (table_name, version) VALUES (${quoteString(this.target.table)}, ${version})`,
    });
    await this.client.command({
      query: `ALTER TABLE ${this.qualifiedTable} DELETE WHERE ${quoteIdentifier(VERSION_COLUMN)} < ${version}`,
    });
  }
}
