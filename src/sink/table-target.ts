/**
 * One ClickHouse target table as the sink knows it: its columns (read from
 * ClickHouse, read again when an insert fails or a new schema version
 * arrives), the row mapper built from them, and its truncate floor.
 *
 * Contract of prepare(header): before a row of a schema version is mapped,
 * the table holds that version: created when missing (`createTables`),
 * ADD/MODIFY COLUMN as schema-fit.ts decides. It returns why rows of that
 * version cannot be written yet (empty: they can); the caller then pauses,
 * without committing, and calls recheck() until they can. A header already
 * fitted costs one Buffer comparison.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { parseTableSchema, replicatedSchema, START_POSITION, type EventPosition, type TableSchema } from '../core/envelope.js';
import { ConfigError } from '../core/exit-codes.js';
import type { Logger } from '../observability/logger.js';
import { describeTable, RowMapper, SEQ_COLUMN, targetTableOf, type DescribedColumn, type TargetTable } from './clickhouse/rows.js';
import { ClusterDdlTimeout, runDdl, type Cluster } from './clickhouse/cluster.js';
import { isSystemicClickHouseError } from './clickhouse/errors.js';
import { fitSchema } from './clickhouse/schema-fit.js';
import type { ServerFeatures } from './clickhouse/schema.js';
import { addSeqColumnSql, createTableSql } from './clickhouse/table-ddl.js';
import type { ClickHouseWriter } from './clickhouse/writer.js';

export interface TargetContext {
  client: ClickHouseClient;
  database: string;
  features: ServerFeatures;
  writer: ClickHouseWriter;
  createTables: boolean;
  /** --cluster: tables are created ON CLUSTER, replicated (clickhouse/cluster.ts). */
  cluster: Cluster;
  logger: Logger;
}

export class TableTarget {
  private described: { columns: DescribedColumn[]; sortingKey: Set<string> } | undefined;
  private signature = '';
  private mapperValue: RowMapper | undefined;
  /** Columns this process has seen in the table: one of them missing later was dropped in ClickHouse. */
  private readonly known = new Set<string>();
  private fittedHeader: Buffer | undefined;
  private readonly reportedDrops = new Set<string>();
  /**
   * The latest truncate known applied to the table (recorded in ClickHouse
   * when the table was first read, or applied since by this process): events
   * before it are not written, they would only be deleted again.
   */
  truncateFloor: EventPosition = START_POSITION;

  constructor(readonly name: string, private readonly context: TargetContext) {}

  get mapper(): RowMapper {
    if (!this.mapperValue) throw new Error(`table ${this.name} used before it was prepared`);
    return this.mapperValue;
  }

  /** True once the table was read (rows may be pending for it). */
  get prepared(): boolean {
    return this.mapperValue !== undefined;
  }

  /** True when rows with this header (or without one) can be mapped right away. */
  ready(header: Buffer | undefined): boolean {
    if (!this.mapperValue) return false;
    return header === undefined || (this.fittedHeader !== undefined && this.fittedHeader.equals(header));
  }

  /** Throws PoisonMessage for a malformed header, ConfigError for a table the sink may not create. */
  async prepare(header: Buffer | undefined): Promise<string[]> {
    if (this.ready(header)) return [];
    if (!this.described) {
      // All three or none: a ClickHouse lost half-way (the caller retries) must not leave a table read without
      // its _seq check or its truncate floor.
      try {
        await this.refresh();
        await this.addSeqColumn();
        this.truncateFloor = await this.context.writer.truncateFloor(this.name);
      } catch (error) {
        this.described = undefined;
        this.mapperValue = undefined;
        throw error;
      }
    }
    if (header === undefined) {
      if (!this.described) {
        throw new ConfigError(`ClickHouse table ${this.context.database}.${this.name} does not exist and its events carry no walbridge.schema ` +
          'header to create it from; create it with `migrate` (or a ReplacingMergeTree(_version) with _version UInt64 and _is_deleted UInt8)');
      }
      return [];
    }
    const schema = replicatedSchema(parseTableSchema(header.toString('utf8')));
    if (!this.described) await this.create(schema);
    const blockers = await this.fit(schema);
    if (blockers.length === 0) this.fittedHeader = Buffer.from(header);
    return blockers;
  }

  /** The table orders the events of one transaction (`_seq`), so a truncate spares the rows after it in its transaction. */
  get hasSeq(): boolean {
    return this.described?.columns.some((c) => c.name === SEQ_COLUMN) ?? false;
  }

  /**
   * The migration path of tables made before `_seq` existed (by migrate or
   * an older sink): the column is added, old rows read 0, which sorts them
   * before any event of their transaction (their whole transaction is older
   * than anything still to come, or is read again and rewritten). When the
   * sink may not alter the table, it says so and truncates by version only.
   */
  private async addSeqColumn(): Promise<void> {
    if (!this.described || this.hasSeq) return;
    const { client, database, logger } = this.context;
    const sql = addSeqColumnSql(database, this.name);
    try {
      await client.command({ query: sql });
      logger.info({ sql }, `ClickHouse table ${database}.${this.name}: added ${SEQ_COLUMN}, the event's position in its transaction`);
    } catch (error) {
      if (isSystemicClickHouseError(error)) throw error; // ClickHouse away: the whole first look is retried
      // Another member may have added it first: the re-read tells.
      logger.warn({ sql }, `ClickHouse table ${database}.${this.name} has no ${SEQ_COLUMN} and adding it failed (${(error as Error).message.split('\n')[0]}): ` +
        'a truncate then also spares rows written before it in its own transaction; add the column to close that gap');
    }
    await this.refresh();
  }

  /** Reads the table again (an operator may have changed it) and retries prepare. */
  async recheck(header: Buffer | undefined): Promise<string[]> {
    this.fittedHeader = undefined;
    await this.refresh();
    return this.prepare(header);
  }

  /** The header last fitted (the schema the mapper follows), for a re-check after a failed insert. */
  get lastHeader(): Buffer | undefined {
    return this.fittedHeader;
  }

  /** Reads the table's columns; true when they differ from the ones the mapper was built from. */
  async refresh(): Promise<boolean> {
    const { client, database, features } = this.context;
    this.described = await describeTable(client, database, this.name, features);
    if (!this.described) {
      this.mapperValue = undefined;
      const changed = this.signature !== '';
      this.signature = '';
      return changed;
    }
    for (const column of this.described.columns) this.known.add(column.name);
    const signature = this.described.columns.map((c) => `${c.name} ${c.type} ${c.default_type} ${c.default_expression ?? ''}`).join(',');
    const changed = signature !== this.signature;
    this.signature = signature;
    const table: TargetTable = targetTableOf(database, this.name, this.described.columns, this.described.sortingKey, features.omittedFieldDefaults);
    this.mapperValue = new RowMapper(table);
    return changed;
  }

  private async create(schema: TableSchema): Promise<void> {
    const { database, features, createTables, logger } = this.context;
    if (!createTables) {
      throw new ConfigError(`ClickHouse table ${database}.${this.name} does not exist and --no-create-tables is set; create it ` +
        '(or drop --no-create-tables to let the sink create it from the events\' schema)');
    }
    if (!schema.columns.some((c) => c.key)) {
      throw new ConfigError(`${schema.schema}.${schema.table} has no primary key: the sink needs one to order and collapse its rows in ClickHouse`);
    }
    const sql = createTableSql(database, this.name, schema, features);
    try {
      await runDdl(this.context.client, sql, database, this.context.cluster);
    } catch (error) {
      // The replicas that answered have the table; the others create it from the DDL queue when they return.
      if (!(error instanceof ClusterDdlTimeout)) throw error;
      logger.warn(error.message);
    }
    logger.info({ sql }, `created ClickHouse table ${database}.${this.name} from the schema of ${schema.schema}.${schema.table}`);
    await this.refresh();
  }

  private async fit(schema: TableSchema): Promise<string[]> {
    const { client, database, features, logger } = this.context;
    const described = this.described;
    if (!described) return [`ClickHouse table ${database}.${this.name} does not exist`];
    const fit = fitSchema(database, this.name, schema, described.columns, described.sortingKey, this.known, features);
    for (const name of fit.droppedInPostgres) {
      if (this.reportedDrops.has(name)) continue;
      this.reportedDrops.add(name);
      logger.warn(`column ${name} is no longer in ${schema.schema}.${schema.table} (dropped or renamed in PostgreSQL): ` +
        `it stays in ClickHouse table ${database}.${this.name} for history; later rows get its default`);
    }
    if (fit.changes.length === 0) return fit.blockers;
    for (const change of fit.changes) {
      try {
        await client.command({ query: change.sql });
        logger.info({ sql: change.sql }, `ClickHouse table ${database}.${this.name}: ${change.why}`);
      } catch (error) {
        // Another sink member may have run the same change first: the re-read below tells.
        logger.warn({ sql: change.sql }, `ClickHouse table ${database}.${this.name}: ${change.why}, but the DDL failed: ${(error as Error).message.split('\n')[0]}`);
      }
    }
    await this.refresh();
    const after = this.described;
    if (!after) return [`ClickHouse table ${database}.${this.name} disappeared`];
    const again = fitSchema(database, this.name, schema, after.columns, after.sortingKey, this.known, features);
    return [...again.blockers, ...again.changes.map((c) => `${c.why}, but ${c.sql} did not take effect`)];
  }
}
