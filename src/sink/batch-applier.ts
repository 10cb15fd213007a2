/**
 * Applies one batch to ClickHouse, in this order:
 *   1. the rows, one insert per target table (retried while ClickHouse is
 *      unreachable or has a systemic error: errors.ts),
 *   2. dead letters to `<topic>.dlq` (acknowledged by Kafka): the messages
 *      that did not decode or map, and the rows ClickHouse refused,
 *   3. the truncate that sealed the batch, if any.
 * It resolves only when all three are done; then, and only then, the caller
 * may commit the batch's offsets.
 *
 * Fence: before each insert attempt, rows read in an earlier consumer group
 * generation are dropped (row-batch.ts): after a rebalance they belong to
 * whoever owns their partition now, and writing them late could put an older
 * event of a key after a newer one of equal version.
 *
 * Dead-letter flood: when more than `maxDeadLetterRatio` of a batch's
 * messages (and at least MIN_FLOOD_LETTERS) would be dead-lettered, the
 * cause is rarely the messages: apply throws DeadLetterFlood before sending
 * any letter, nothing is committed, and the sink stops (exit 1).
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
import type { DeadLetter, PendingRow, RowBatch } from './row-batch.js';
import { decodeEvent, PoisonMessage } from '../core/envelope.js';
import { retryWithBackoff } from '../core/retry.js';
import type { ClickHouseWriter } from './clickhouse/writer.js';
import { ValueError } from './clickhouse/column-types.js';
import { isRowDataError, isSystemicClickHouseError } from './clickhouse/errors.js';
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

/** A batch whose share of dead letters says the cause is not the messages (see above). */
export class DeadLetterFlood extends Error {
  override readonly name = 'DeadLetterFlood';
}

/** Below this many letters in a batch, no ratio stops the sink: a few bad messages in a small batch are just bad messages. */
export const MIN_FLOOD_LETTERS = 10;
export const DEFAULT_MAX_DEAD_LETTER_RATIO = 0.5;

type Row = PendingRow<ConsumedMessage>;
type Letter = DeadLetter<ConsumedMessage>;

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
    /** --max-dead-letter-ratio. */
    private readonly maxDeadLetterRatio = DEFAULT_MAX_DEAD_LETTER_RATIO,
  ) {}

  /** `generation()`: the consumer group's generation now; rows and letters of an earlier one are left out. */
  async apply(batch: RowBatch<ConsumedMessage>, generation: () => number): Promise<AppliedCounts> {
    const counts = emptyCounts();
    const fresh = (item: { generation: number }): boolean => item.generation === generation();
    const letters = batch.deadLetters.filter(fresh);
    this.checkFlood(letters, batch.messages);
    const byTable = new Map<string, Row[]>();
    for (const row of batch.rows.values()) {
      const rows = byTable.get(row.table);
      if (rows) rows.push(row);
      else byTable.set(row.table, [row]);
    }
    for (const [table, rows] of byTable) await this.insert(table, rows, counts, letters, fresh);
    const live = letters.filter(fresh);
    this.checkFlood(live, batch.messages);
    if (live.length > 0) {
      await this.deadLetters.send(live.map(({ source, error }) => ({ message: source, error })));
      for (const { source, error } of live) {
        this.logger.warn({ topic: source.topic, partition: source.partition, offset: source.offset.toString(), error }, `message sent to ${source.topic}.dlq: ${error}`);
      }
    }
    counts.deadLetters = live.length;
    if (batch.truncate !== undefined && fresh(batch.truncate)) {
      const { table, position } = batch.truncate;
      const hasSeq = this.targets.get(table)?.hasSeq ?? false;
      await this.retrying(`a truncate of ${table} (ALTER … DELETE of the rows before ${position.version}/${position.seq}); offsets not committed`,
        () => this.writer.applyTruncate(table, position, hasSeq));
      counts.truncates += 1;
    }
    return counts;
  }

  private checkFlood(letters: readonly Letter[], messages: number): void {
    if (letters.length < MIN_FLOOD_LETTERS || letters.length <= this.maxDeadLetterRatio * messages) return;
    const [first] = letters;
    const example = first ? ` The first: ${first.source.topic} partition ${first.source.partition} offset ${first.source.offset}: ${first.error}.` : '';
    throw new DeadLetterFlood(`stopping: ${letters.length} of ${messages} messages in one batch could not be applied, more than ` +
      `--max-dead-letter-ratio ${this.maxDeadLetterRatio}; that many usually means the cause is not the messages.${example} ` +
      'Nothing of this batch was dead-lettered or committed: fix the cause and start again (or raise --max-dead-letter-ratio to dead-letter them).');
  }

  /**
   * Retries while ClickHouse is away or has a systemic error (errors.ts), saying what it waits for.
   * `signal` also ends the wait (the caller's own reason to stop, e.g. a rebalance).
   */
  retrying<T>(holding: string, operation: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return retryWithBackoff(operation, {
      waitingFor: `ClickHouse at ${this.clickhouseName}`, holding, isTransient: isSystemicClickHouseError, dependency: 'clickhouse', logger: this.logger,
      signal: signal && this.signal ? AbortSignal.any([signal, this.signal]) : signal ?? this.signal, giveUpAfterMs: this.giveUpAfterMs,
    });
  }

  /** Inserts the rows still fresh; a row ClickHouse refuses as data joins `letters`. */
  private async insert(table: string, rows: Row[], counts: AppliedCounts, letters: Letter[], fresh: (row: Row) => boolean): Promise<void> {
    let written: Row[] = [];
    try {
      await this.retrying(`the insert of ${rows.length} rows (offsets not committed) into ${table}`, () => {
        written = rows.filter(fresh);
        return this.writer.insert(table, written.map((row) => row.line));
      });
    } catch (error) {
      const target = this.targets.get(table);
      if (target && await this.retrying(`a re-read of table ${table}`, () => target.refresh())) {
        this.logger.warn(`the insert into ${table} failed (${(error as Error).message.split('\n')[0]}) and the table has changed ` +
          `since its rows were mapped: mapping ${rows.length} rows again`);
        if (!await pauseUntilFits(target, target.lastHeader, this.logger, this.stopSignal)) {
          throw new Error(`stopped while paused on ClickHouse table ${table}; its rows are read again at the next start`);
        }
        return this.insert(table, this.remap(target, rows, letters), counts, letters, fresh);
      }
      if (!isRowDataError(error)) throw error;
      const [only] = rows;
      if (rows.length === 1 && only) {
        letters.push({ source: only.source, error: `ClickHouse refused the row: ${(error as Error).message.split('\n')[0]}`, generation: only.generation });
        return;
      }
      const middle = Math.ceil(rows.length / 2);
      await this.insert(table, rows.slice(0, middle), counts, letters, fresh);
      await this.insert(table, rows.slice(middle), counts, letters, fresh);
      return;
    }
    const tableCounts = counts.perTable.get(table) ?? { upserts: 0, deletes: 0 };
    counts.perTable.set(table, tableCounts);
    for (const row of written) {
      if (row.deleted) {
        counts.deletes += 1;
        tableCounts.deletes += 1;
      } else {
        counts.upserts += 1;
        tableCounts.upserts += 1;
      }
    }
  }

  /** Maps the rows again from their messages to the table's current columns; a row that no longer fits joins `letters`. */
  private remap(target: TableTarget, rows: Row[], letters: Letter[]): Row[] {
    const syncedAt = target.mapper.syncedAtFragment(Date.now());
    const remapped: Row[] = [];
    for (const row of rows) {
      try {
        const event = decodeEvent(row.source.key, row.source.value);
        if (event.kind !== 'upsert' && event.kind !== 'delete') continue;
        remapped.push({ ...row, line: target.mapper.row(event, syncedAt) });
      } catch (error) {
        if (!(error instanceof ValueError || error instanceof PoisonMessage)) throw error;
        letters.push({ source: row.source, error: error.message, generation: row.generation });
      }
    }
    return remapped;
  }
}
