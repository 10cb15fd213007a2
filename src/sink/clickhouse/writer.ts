/**
 * Writes into the target table. Contract:
 * - insert(lines): one finite `INSERT … FORMAT JSONEachRow` request holding
 *   the given lines; resolves only when ClickHouse answered success (the
 *   response is read to its end), so offsets may be committed afterwards.
 * - applyTruncate(version): issues `ALTER TABLE … DELETE WHERE _version <
 *   version` (a mutation: ClickHouse applies it asynchronously to the rows
 *   already there), then records the version in walbridge_sink_truncates. Rows older than the
 *   highest recorded truncate are never inserted afterwards (the caller
 *   filters with truncateFloor), so order across partitions does not matter
 *   and replays stay exact. Both are idempotent.
 */
import { Readable } from 'node:stream';
import type { ClickHouseClient } from '@clickhouse/client';
import { quoteIdentifier } from './client.js';
import { quoteString, VERSION_COLUMN, type TargetTable } from './rows.js';

export const TRUNCATES_TABLE = 'walbridge_sink_truncates';

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

  /**
   * The delete first, the record second: both are idempotent, and a record
   * written before its delete would, after a crash between the two, make the
   * re-read truncate look already applied (its version is not above the floor).
   */
  async applyTruncate(version: bigint): Promise<void> {
    await this.client.command({
      query: `ALTER TABLE ${this.qualifiedTable} DELETE WHERE ${quoteIdentifier(VERSION_COLUMN)} < ${version}`,
    });
    await this.client.command({
      query: `INSERT INTO ${this.truncatesTable} (table_name, version) VALUES (${quoteString(this.target.table)}, ${version})`,
    });
  }
}
