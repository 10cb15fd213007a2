/**
 * Writes into the target tables. Contract:
 * - insert(table, lines): one finite `INSERT … FORMAT JSONEachRow` request
 *   holding the given lines; resolves only when ClickHouse answered success
 *   (the response is read to its end), so offsets may be committed afterwards.
 * - applyTruncate(table, position, hasSeq): issues `ALTER TABLE … DELETE
 *   WHERE` the row is before the truncate's position: an older commit, or the
 *   same commit and an earlier place in the transaction (`_seq`; a table
 *   without `_seq` compares versions only). It is a mutation: ClickHouse
 *   applies it to the rows already there, never to rows inserted after it.
 *   Then it records the position in walbridge_sink_truncates.
 *   Both are idempotent. On a Replicated table the delete is a replicated
 *   mutation: a replica that is down applies it when it returns. The sink applies every truncate marker it reads,
 *   even one already recorded (docs/design.md, "Several sink members"): a
 *   lagging member may have written older rows after another member applied
 *   it, and the marker that follows those rows in their partition is what
 *   removes them. The recorded floor only spares writing rows already covered.
 */
import { sinkMetrics } from '../../observability/metrics.js';
import { Readable } from 'node:stream';
import type { ClickHouseClient } from '@clickhouse/client';
import { quoteIdentifier } from './client.js';
import { ClusterDdlTimeout, runDdl, type Cluster } from './cluster.js';
import type { Logger } from '../../observability/logger.js';
import { quoteString, SEQ_COLUMN, VERSION_COLUMN } from './rows.js';
import type { EventPosition } from '../../core/envelope.js';

export const TRUNCATES_TABLE = 'walbridge_sink_truncates';

export class ClickHouseWriter {
  private readonly truncatesTable: string;

  /**
   * `omittedFieldDefaults`: the server fills an omitted field with its DEFAULT when asked (schema.ts).
   * `cluster`: the bookkeeping table is created ON CLUSTER, replicated (cluster.ts).
   */
  constructor(private readonly client: ClickHouseClient, private readonly database: string, private readonly omittedFieldDefaults: boolean,
    private readonly cluster: Cluster = undefined) {
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
      // A Replicated table drops a block identical to one of its last 100 (checked on 18.16): a replay
      // after an operator emptied the table would then write nothing. Every batch is written as sent.
      clickhouse_settings: { insert_deduplicate: 0, ...(this.omittedFieldDefaults ? { input_format_defaults_for_omitted_fields: 1 } : {}) },
    });
    // Read the (empty) response to its end so the socket goes back to the pool.
    for await (const chunk of result.stream) void chunk;
    timer();
  }

  /**
   * Creates the bookkeeping table; one made before `seq` existed gets the column (its rows read seq 0).
   * On a cluster, only when this replica lacks it: ON CLUSTER DDL waits for every host, and a sink
   * restarted while a replica is down should not wait for it (the down replica has the table already,
   * or creates it from the DDL queue when it returns).
   */
  async ensureTruncatesTable(logger: Logger): Promise<void> {
    if (this.cluster === undefined || !(await this.exists(TRUNCATES_TABLE))) {
      try {
        await runDdl(this.client, `CREATE TABLE IF NOT EXISTS ${this.truncatesTable}
              (table_name String, version UInt64, seq UInt64 DEFAULT 0, applied_at DateTime DEFAULT now())
              ENGINE = MergeTree ORDER BY (table_name, version)`, this.database, this.cluster);
      } catch (error) {
        if (!(error instanceof ClusterDdlTimeout)) throw error;
        logger.warn(error.message);
      }
    }
    const result = await this.client.query({ query: `DESCRIBE TABLE ${this.truncatesTable}`, format: 'JSONEachRow' });
    const columns = await result.json<{ name: string }>();
    if (!columns.some((c) => c.name === 'seq')) {
      await this.client.command({ query: `ALTER TABLE ${this.truncatesTable} ADD COLUMN seq UInt64 DEFAULT 0 AFTER version` });
    }
  }

  private async exists(table: string): Promise<boolean> {
    const result = await this.client.query({ query: `EXISTS TABLE ${this.qualified(table)}`, format: 'JSONEachRow' });
    return Number((await result.json<{ result: number | string }>())[0]?.result ?? 0) === 1;
  }

  /** The latest truncate recorded for the table (version 0 when none). */
  async truncateFloor(table: string): Promise<EventPosition> {
    const result = await this.client.query({
      query: `SELECT toString(version) AS version, toString(seq) AS seq FROM ${this.truncatesTable} WHERE table_name = ${quoteString(table)}
              ORDER BY version DESC, seq DESC LIMIT 1`,
      format: 'JSONEachRow',
    });
    const [row] = await result.json<{ version: string; seq: string }>();
    return { version: BigInt(row?.version ?? '0'), seq: BigInt(row?.seq ?? '0') };
  }

  /**
   * The delete first, the record second: both are idempotent, and a record
   * written before its delete would, after a crash between the two, make the
   * re-read truncate look already applied (its version is not above the floor).
   */
  async applyTruncate(table: string, { version, seq }: EventPosition, hasSeq: boolean): Promise<void> {
    const older = `${quoteIdentifier(VERSION_COLUMN)} < ${version}`;
    const where = hasSeq ? `${older} OR (${quoteIdentifier(VERSION_COLUMN)} = ${version} AND ${quoteIdentifier(SEQ_COLUMN)} < ${seq})` : older;
    await this.client.command({ query: `ALTER TABLE ${this.qualified(table)} DELETE WHERE ${where}` });
    await this.client.command({
      query: `INSERT INTO ${this.truncatesTable} (table_name, version, seq) VALUES (${quoteString(table)}, ${version}, ${seq})`,
    });
  }
}
