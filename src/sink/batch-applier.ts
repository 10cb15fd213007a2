/**
 * Applies one batch to ClickHouse, in this order:
 *   1. dead letters to `<topic>.dlq` (acknowledged by Kafka),
 *   2. the rows, as one insert (retried while ClickHouse is unreachable),
 *   3. the truncate that sealed the batch, if any.
 * It resolves only when all three are done; then, and only then, the caller
 * may commit the batch's offsets.
 *
 * A row ClickHouse refuses as data (a parse or type error the mapping did
 * not foresee) must not block the rows around it: the batch is split in
 * halves until the refused rows stand alone, and those go to the DLQ.
 */
import type { ConsumedMessage } from '../kafka/consumer.js';
import type { DeadLetterProducer } from '../kafka/dead-letter.js';
import type { Logger } from '../observability/logger.js';
import type { PendingRow, RowBatch } from './row-batch.js';
import { retryWithBackoff } from '../core/retry.js';
import type { ClickHouseWriter } from './clickhouse/writer.js';
import { isRowDataError, isTransientClickHouseError } from './clickhouse/errors.js';

export interface AppliedCounts {
  upserts: number;
  deletes: number;
  truncates: number;
  deadLetters: number;
}

export class BatchApplier {
  constructor(
    private readonly writer: ClickHouseWriter,
    private readonly deadLetters: DeadLetterProducer,
    private readonly logger: Logger,
    private readonly clickhouseName: string,
    private readonly signal: AbortSignal | undefined,
  ) {}

  async apply(batch: RowBatch<ConsumedMessage>): Promise<AppliedCounts> {
    const counts: AppliedCounts = { upserts: 0, deletes: 0, truncates: 0, deadLetters: batch.deadLetters.length };
    if (batch.deadLetters.length > 0) {
      await this.deadLetters.send(batch.deadLetters.map(({ source, error }) => ({ message: source, error })));
      for (const { source, error } of batch.deadLetters) {
        this.logger.warn({ partition: source.partition, offset: source.offset.toString(), error }, `message sent to ${this.deadLetters.topic}: ${error}`);
      }
    }
    await this.insert([...batch.rows.values()], counts);
    if (batch.truncate !== undefined) {
      const version = batch.truncate;
      await retryWithBackoff(() => this.writer.applyTruncate(version), {
        waitingFor: `ClickHouse at ${this.clickhouseName}`,
        holding: `a truncate (ALTER … DELETE WHERE _version < ${version}); offsets not committed`,
        isTransient: isTransientClickHouseError,
        logger: this.logger,
        signal: this.signal,
      });
      counts.truncates += 1;
    }
    return counts;
  }

  private async insert(rows: PendingRow<ConsumedMessage>[], counts: AppliedCounts): Promise<void> {
    if (rows.length === 0) return;
    try {
      await retryWithBackoff(() => this.writer.insert(rows.map((row) => row.line)), {
        waitingFor: `ClickHouse at ${this.clickhouseName}`,
        holding: `the insert of ${rows.length} rows (offsets not committed)`,
        isTransient: isTransientClickHouseError,
        logger: this.logger,
        signal: this.signal,
      });
    } catch (error) {
      if (!isRowDataError(error)) throw error;
      const [only] = rows;
      if (rows.length === 1 && only) {
        const reason = `ClickHouse refused the row: ${(error as Error).message.split('\n')[0]}`;
        await this.deadLetters.send([{ message: only.source, error: reason }]);
        this.logger.warn({ partition: only.source.partition, offset: only.source.offset.toString() }, `message sent to ${this.deadLetters.topic}: ${reason}`);
        counts.deadLetters += 1;
        return;
      }
      const middle = Math.ceil(rows.length / 2);
      await this.insert(rows.slice(0, middle), counts);
      await this.insert(rows.slice(middle), counts);
      return;
    }
    for (const row of rows) {
      if (row.deleted) counts.deletes += 1;
      else counts.upserts += 1;
    }
  }
}
