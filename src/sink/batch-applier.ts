/**
 * Applies one batch to ClickHouse, in this order:
 *   1. dead letters to `<topic>.dlq` (acknowledged by Kafka),
 *   2. the rows, one insert per target table (retried while ClickHouse is unreachable),
 *   3. the truncate that sealed the batch, if any.
 * It resolves only when all three are done; then, and only then, the caller
 * may commit the batch's offsets.
 *
 * An insert that fails for any other reason first has the table read again:
 * if its columns changed since the rows were mapped (a column dropped or
 * altered by hand), the rows are mapped again from their messages and
 * retried; if the new shape cannot hold the current schema version, it
 * pauses (logged, re-checked every few seconds, nothing committed) until it
 * can. Only when the table is as the rows expected is the failure the rows'
 * own: a row ClickHouse refuses as data must not block the rows around it,
 * so the batch is split in halves until the refused rows stand alone, and
 * those go to the DLQ.
 */
import type { ConsumedMessage } from '../kafka/consumer.js';
import type { DeadLetterProducer } from '../kafka/dead-letter.js';
import type { Logger } from '../observability/logger.js';
import type { PendingRow, RowBatch } from './row-batch.js';
import { decodeEvent, PoisonMessage } from '../core/envelope.js';
import { retryWithBackoff } from '../core/retry.js';
import type { ClickHouseWriter } from './clickhouse/writer.js';
import { ValueError } from './clickhouse/column-types.js';
import { isRowDataError, isTransientClickHouseError } from './clickhouse/errors.js';
import type { TableTarget } from './table-target.js';
import { pauseUntilFits } from './schema-pause.js';

export interface AppliedCounts {
  upserts: number;
  deletes: number;
  truncates: number;
  deadLetters: number;
  /** Rows written per ClickHouse table (upserts, deletes). */
  perTable: Map<string, { upserts: number; deletes: number }>;
}

export function emptyCounts(): AppliedCounts {
  return { upserts: 0, deletes: 0, truncates: 0, deadLetters: 0, perTable: new Map() };
}

type Row = PendingRow<ConsumedMessage>;

export class BatchApplier {
  constructor(
    private readonly writer: ClickHouseWriter,
    private readonly targets: ReadonlyMap<string, TableTarget>,
    private readonly deadLetters: DeadLetterProducer,
    private readonly logger: Logger,
    private readonly clickhouseName: string,
    private readonly signal: AbortSignal | undefined,
    /** Ends a pause (the first SIGINT/SIGTERM): the batch is then left unwritten and uncommitted. */
    private readonly stopSignal: AbortSignal | undefined,
    /** --wait-timeout: give up on an unreachable ClickHouse after this long (undefined: never). */
    private readonly giveUpAfterMs?: number,
  ) {}

  async apply(batch: RowBatch<ConsumedMessage>): Promise<AppliedCounts> {
    const counts = emptyCounts();
    counts.deadLetters = batch.deadLetters.length;
    if (batch.deadLetters.length > 0) {
      await this.deadLetters.send(batch.deadLetters.map(({ source, error }) => ({ message: source, error })));
      for (const { source, error } of batch.deadLetters) {
        this.logger.warn({ topic: source.topic, partition: source.partition, offset: source.offset.toString(), error }, `message sent to ${source.topic}.dlq: ${error}`);
      }
    }
    const byTable = new Map<string, Row[]>();
    for (const row of batch.rows.values()) {
      const rows = byTable.get(row.table);
      if (rows) rows.push(row);
      else byTable.set(row.table, [row]);
    }
    for (const [table, rows] of byTable) await this.insert(table, rows, counts);
    if (batch.truncate !== undefined) {
      const { table, version } = batch.truncate;
      await this.retrying(`a truncate of ${table} (ALTER … DELETE WHERE _version < ${version}); offsets not committed`,
        () => this.writer.applyTruncate(table, version));
      counts.truncates += 1;
    }
    return counts;
  }

  private retrying<T>(holding: string, operation: () => Promise<T>): Promise<T> {
    return retryWithBackoff(operation, {
      waitingFor: `ClickHouse at ${this.clickhouseName}`, holding, isTransient: isTransientClickHouseError, dependency: 'clickhouse', logger: this.logger, signal: this.signal,
      giveUpAfterMs: this.giveUpAfterMs,
    });
  }

  private async insert(table: string, rows: Row[], counts: AppliedCounts): Promise<void> {
    if (rows.length === 0) return;
    try {
      await this.retrying(`the insert of ${rows.length} rows (offsets not committed) into ${table}`, () => this.writer.insert(table, rows.map((row) => row.line)));
    } catch (error) {
      const target = this.targets.get(table);
      if (target && await this.retrying(`a re-read of table ${table}`, () => target.refresh())) {
        this.logger.warn(`the insert into ${table} failed (${(error as Error).message.split('\n')[0]}) and the table has changed ` +
          `since its rows were mapped: mapping ${rows.length} rows again`);
        if (!await pauseUntilFits(target, target.lastHeader, this.logger, this.stopSignal)) {
          throw new Error(`stopped while paused on ClickHouse table ${table}; its rows are read again at the next start`);
        }
        return this.insert(table, await this.remap(target, rows, counts), counts);
      }
      if (!isRowDataError(error)) throw error;
      const [only] = rows;
      if (rows.length === 1 && only) {
        const reason = `ClickHouse refused the row: ${(error as Error).message.split('\n')[0]}`;
        await this.deadLetters.send([{ message: only.source, error: reason }]);
        this.logger.warn({ partition: only.source.partition, offset: only.source.offset.toString() }, `message sent to ${only.source.topic}.dlq: ${reason}`);
        counts.deadLetters += 1;
        return;
      }
      const middle = Math.ceil(rows.length / 2);
      await this.insert(table, rows.slice(0, middle), counts);
      await this.insert(table, rows.slice(middle), counts);
      return;
    }
    const tableCounts = counts.perTable.get(table) ?? { upserts: 0, deletes: 0 };
    counts.perTable.set(table, tableCounts);
    for (const row of rows) {
      if (row.deleted) {
        counts.deletes += 1;
        tableCounts.deletes += 1;
      } else {
        counts.upserts += 1;
        tableCounts.upserts += 1;
      }
    }
  }

  /** Maps the rows again from their messages to the table's current columns; a row that no longer fits is dead-lettered. */
  private async remap(target: TableTarget, rows: Row[], counts: AppliedCounts): Promise<Row[]> {
    const syncedAt = target.mapper.syncedAtFragment(Date.now());
    const remapped: Row[] = [];
    for (const row of rows) {
      try {
        const event = decodeEvent(row.source.key, row.source.value);
        if (event.kind !== 'upsert' && event.kind !== 'delete') continue;
        const line = event.kind === 'upsert'
          ? target.mapper.upsert(event.after, event.version, syncedAt)
          : target.mapper.delete(event.before, event.key, event.version, syncedAt);
        remapped.push({ ...row, line });
      } catch (error) {
        if (!(error instanceof ValueError || error instanceof PoisonMessage)) throw error;
        await this.deadLetters.send([{ message: row.source, error: error.message }]);
        counts.deadLetters += 1;
      }
    }
    return remapped;
  }
}
