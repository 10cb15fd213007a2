/**
 * Writes into the target tables. Contract:
 * - insert(table, lines): one finite `INSERT … FORMAT JSONEachRow` request
 *   holding the given lines; resolves only when ClickHouse answered success
 *   (the response is read to its end), so offsets may be committed afterwards.
 * - applyTruncate(table, version): issues `ALTER TABLE … DELETE WHERE _version <
 *   version` (a mutation: ClickHouse applies it asynchronously to the rows
 *   already there), then records the version in walbridge_sink_truncates. Rows older than the
 *   highest recorded truncate of their table are never inserted afterwards (the caller
 *   filters with truncateFloor), so order across partitions does not matter
 *   and replays stay exact. Both are idempotent.
 */
import { sinkMetrics } from '../../observability/metrics.js';
import { Readable } from 'node:stream';
import type { ClickHouseClient } from '@clickhouse/client';
import { quoteIdentifier } from './client.js';
import { quoteString, VERSION_COLUMN } from './rows.js';

export const TRUNCATES_TABLE = 'walbridge_sink_truncates';

export class ClickHouseWriter {
  private readonly truncatesTable: string;

  /** `omittedFieldDefaults`: the server fills an omitted field with its DEFAULT when asked (schema.ts). */
  constructor(private readonly client: ClickHouseClient, private readonly database: string, private readonly omittedFieldDefaults: boolean) {
    this.truncatesTable = `${quoteIdentifier(database)}.${quoteIdentifier(TRUNCATES_TABLE)}`;
  }

  private qualified(table: string): string {
    return `${quoteIdentifier(this.database)}.${quoteIdentifier(table)}`;
  }

  async insert(table: string, lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    const body = Buffer.from(`${lines.join('\n')}\n`, 'utf8');
    const timer = sinkMetrics().insertSeconds.startTimer();
    const result = await this.client.exec({
      query: `INSERT INTO ${this.qualified(table)} FORMAT JSONEachRow`,
      values: Readable.from([body], { objectMode: false }),
      ...(this.omittedFieldDefaults ? { clickhouse_settings: { input_format_defaults_for_omitted_fields: 1 } } : {}),
    });
    // Read the (empty) response to its end so the socket goes back to the pool.
    for await (const chunk of result.stream) void chunk;
    timer();
  }

  async ensureTruncatesTable(): Promise<void> {
    await this.client.command({
      query: `CREATE TABLE IF NOT EXISTS ${this.truncatesTable}
              (table_name String, version UInt64, applied_at DateTime DEFAULT now())
              ENGINE = MergeTree ORDER BY (table_name, version)`,
    });
  }

  /** The highest truncate version recorded for the table (0 when none). */
  async truncateFloor(table: string): Promise<bigint> {
    const result = await this.client.query({
      query: `SELECT toString(max(version)) AS version FROM ${this.truncatesTable} WHERE table_name = ${quoteString(table)}`,
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
  async applyTruncate(table: string, version: bigint): Promise<void> {
    await this.client.command({
      query: `ALTER TABLE ${this.qualified(table)} DELETE WHERE ${quoteIdentifier(VERSION_COLUMN)} < ${version}`,
    });
    await this.client.command({
      query: `INSERT INTO ${this.truncatesTable} (table_name, version) VALUES (${quoteString(table)}, ${version})`,
    });
  }
}
