/**
 * The sink's flow: Kafka messages → batch → ClickHouse → offset commit.
 *
 * Order and acknowledgement:
 * - messages are decoded and mapped as they arrive, into the batch being
 *   filled; at most one batch is being written while the next one fills;
 * - batches are written strictly one after another, so inserts follow the
 *   partitions' order, and a batch's offsets are committed only after its
 *   dead letters, insert and truncate all returned;
 * - a full batch (rows, bytes, or sealed by a truncate) blocks further reading
 *   until the batch before it is written: memory stays bounded.
 * - every message taken carries the consumer group generation it was read
 *   in; after a rebalance, the applier leaves out rows of an older one and
 *   only offsets of the current one are committed (row-batch.ts);
 * - every truncate marker seals its batch and is applied, even when a
 *   truncate at least as new is recorded (writer.ts).
 *
 * When a batch is written (latency without a flood of small inserts):
 * - at once when full, or when a drain has reached its end offsets;
 * - otherwise as soon as no insert is running and `lingerMs` passed since the
 *   previous insert started: while an insert runs, the next batch gathers,
 *   so batches grow with the load (a catch-up fills them during each insert)
 *   and a trickle gathers into at most 1000/lingerMs inserts a second.
 *   Whether the last fetch reached the partition's end is not asked: a rule
 *   that let a batch wait (up to 1 s) while a partition was behind made
 *   steady loads bistable — at 10,000 rows/s one second of messages is more
 *   than a fetch returns, so once behind the sink stayed behind, at ~1 s of
 *   latency and with batches (and RSS) ten times larger (docs/performance.md,
 *   "Third round").
 *
 * Modes: follow (until stop() or a signal), or drain (to the end offsets taken
 * at start, then finish). Replay is a drain with a throwaway group, no
 * commits, and a lower bound on versions.
 *
 * Tables: each topic has its ClickHouse table (TableTarget). Before a message
 * is mapped, its table is made to hold the message's schema version
 * (`walbridge.schema` header); when it cannot, reading pauses on that message
 * (schema-pause.ts): the batch in hand is still written and committed, the
 * message and everything after it are not.
 */
import { recordSinkBatch } from '../observability/metrics.js';
import { partitionKey, type BatchControl, type ConsumedMessage, type TopicReader } from '../kafka/consumer.js';
import type { Logger } from '../observability/logger.js';
import { RowBatch, type BatchLimits } from './row-batch.js';
import { comparePositions, decodeEvent, PoisonMessage, SCHEMA_HEADER } from '../core/envelope.js';
import type { AppliedCounts, BatchApplier } from './batch-applier.js';
import { ValueError } from './clickhouse/column-types.js';
import { pauseUntilFits } from './schema-pause.js';
import type { TableTarget } from './table-target.js';

export interface SinkTotals extends AppliedCounts {
  messages: number;
  tombstones: number;
  /** Events replaced by a later event of the same key in the same batch. */
  collapsed: number;
  /** Events older than a truncate already applied: it covers them. */
  beforeTruncate: number;
  /** Replay only: events with a version below --from-lsn. */
  belowFromLsn: number;
}

export interface WorkerOptions {
  limits: BatchLimits;
  /** Drain mode: topic → partition → end offset to read up to (exclusive). Undefined: follow. */
  drainTo: ReadonlyMap<string, ReadonlyMap<number, bigint>> | undefined;
  commit: boolean;
  fromVersion: bigint;
}

const KEEPALIVE_MS = 3_000;

/** An error of the Kafka client itself (keepAlive during a rebalance): kafkajs handles it by rejoining the group. */
function isKafkaClientError(error: unknown): boolean {
  return (error as { name?: string }).name?.startsWith('KafkaJS') ?? false;
}

/** The Kafka header carrying the change's table schema, if the message has one. */
function schemaHeader(message: ConsumedMessage): Buffer | undefined {
  const value = message.headers[SCHEMA_HEADER];
  const first = Array.isArray(value) ? value[0] : value;
  if (first === undefined) return undefined;
  return typeof first === 'string' ? Buffer.from(first, 'utf8') : first;
}

export function emptyTotals(): SinkTotals {
  return {
    upserts: 0, deletes: 0, truncates: 0, deadLetters: 0, perTable: new Map(), messages: 0, tombstones: 0, collapsed: 0, beforeTruncate: 0, belowFromLsn: 0,
  };
}

export class SinkWorker {
  private current: RowBatch<ConsumedMessage>;
  private flushing: Promise<void> | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private fatal: Error | undefined;
  private finished = false;
  /** `topic\0partition` → next offset read. */
  private readonly reached = new Map<string, bigint>();
  private lastFlushStartedAt = 0;
  private resolveDone: () => void = () => undefined;
  /** Resolves when the worker has nothing left to write (drained, stopped, or failed). */
  readonly done = new Promise<void>((resolve) => (this.resolveDone = resolve));

  constructor(
    private readonly reader: TopicReader,
    /** topic → its ClickHouse table. */
    private readonly routes: ReadonlyMap<string, TableTarget>,
    private readonly applier: BatchApplier,
    private readonly logger: Logger,
    private readonly options: WorkerOptions,
    /** Totals carried over from an earlier worker of the same run (the sink re-subscribes when new topics appear). */
    readonly totals: SinkTotals = emptyTotals(),
  ) {
    this.current = new RowBatch(options.limits);
    reader.onFatal((error) => this.fail(error));
    if (options.drainTo && this.drained()) this.finish();
  }

  /** The error that stopped the worker, if one did. */
  get error(): Error | undefined {
    return this.fatal;
  }

  /** Starts reading (joining the group happens in the background); failures end the worker. */
  start(): void {
    this.reader.run((topic, partition, messages, control) => this.onMessages(topic, partition, messages, control))
      .catch((error: unknown) => this.fail(error as Error));
  }

  /** Stop reading; write and commit what was taken; then `done` resolves. */
  stop(): void {
    this.stopping = true;
    if (!this.flushing) this.continueAfterFlush();
  }

  private async onMessages(topic: string, partition: number, messages: ConsumedMessage[], control: BatchControl): Promise<void> {
    const slot = partitionKey(topic, partition);
    // The generation the messages were read in. Should a rejoin complete while this handler runs (kafkajs can rejoin
    // from a fetcher), they are of an older one: the applier drops their rows and the reader reads them again.
    const generation = this.reader.generation;
    try {
      const end = this.options.drainTo?.get(topic)?.get(partition);
      const target = this.routes.get(topic);
      if (!target) throw new Error(`message from topic ${topic}, which this sink did not subscribe to`);
      for (const message of messages) {
        if (this.stopping || this.fatal || this.finished) return;
        if (this.options.drainTo && (end === undefined || message.offset >= end)) {
          control.taken(message.offset); // past the drain target: fetched past, never applied nor committed
          continue;
        }
        while (this.current.full) await this.makeRoom(control);
        if (this.stopping || this.fatal || this.finished) return;
        const header = schemaHeader(message);
        // A new schema version: the rows in hand go in first, in the table as they knew it (an omitted field takes the
        // type's zero value on 18.16, not the DEFAULT an ADD COLUMN gives the rows already there).
        if (!target.ready(header) && target.prepared && !await this.writeInHand(control)) return;
        const prepared = target.ready(header) ? true : await this.prepare(target, header, message, control);
        if (prepared === false) return;
        this.accept(message, target, prepared === true ? undefined : prepared, generation);
        control.taken(message.offset);
        this.reached.set(slot, message.offset + 1n);
      }
      // Every message of the batch is taken: offsets up to its last record (transaction markers included) are passed.
      this.reached.set(slot, control.lastOffset + 1n);
      if (this.flushing) return; // continueAfterFlush decides when it is done
      if (this.flushDueIn() <= 0) this.startFlush();
      else this.armLinger();
    } catch (error) {
      if (isKafkaClientError(error)) throw error;
      this.fail(error as Error);
    }
  }

  /** Writes (and commits) every row taken so far; false when the worker failed or stopped meanwhile. */
  private async writeInHand(control: BatchControl): Promise<boolean> {
    while (this.flushing || !this.current.empty) {
      if (this.fatal || this.finished) return false;
      await this.makeRoom(control);
    }
    return !(this.fatal || this.finished || this.stopping);
  }

  /**
   * Makes the table hold the message's schema; pauses while it cannot. False:
   * stopped meanwhile (the message is not taken). A malformed header: the
   * message is a dead letter.
   */
  private async prepare(target: TableTarget, header: Buffer | undefined, message: ConsumedMessage, control: BatchControl): Promise<boolean | PoisonMessage> {
    let blockers: string[];
    try {
      // Reading, creating or altering the table: a ClickHouse away (restarting, paused) is waited for like at an insert.
      blockers = await this.keepingAlive(control, (signal) =>
        this.applier.retrying(`the schema check of ${target.name} (offsets not committed)`, () => target.prepare(header), signal));
    } catch (error) {
      if (error instanceof PoisonMessage) return error;
      throw error;
    }
    if (blockers.length === 0) return true;
    this.logger.warn({ topic: message.topic, partition: message.partition, offset: message.offset.toString() }, `pausing at this message of ${message.topic}`);
    return pauseUntilFits(target, header, this.logger, undefined, {
      blockers, stopped: () => this.stopping || this.fatal !== undefined || this.finished, tick: () => control.keepAlive(),
    });
  }

  private accept(message: ConsumedMessage, target: TableTarget, poison: PoisonMessage | undefined, generation: number): void {
    const batch = this.current;
    batch.take(message.topic, message.partition, message.offset, generation);
    this.totals.messages += 1;
    try {
      if (poison) throw poison;
      const event = decodeEvent(message.key, message.value);
      if (event.kind === 'tombstone') {
        this.totals.tombstones += 1;
        return;
      }
      if (event.version < this.options.fromVersion) {
        this.totals.belowFromLsn += 1;
        return;
      }
      const position = { version: event.version, seq: event.seq };
      if (event.kind === 'truncate') {
        // Applied even when already recorded: rows before it may have been written since (writer.ts, docs/design.md).
        batch.seal({ table: target.name, position, generation });
        if (comparePositions(position, target.truncateFloor) > 0) target.truncateFloor = position;
        return;
      }
      if (comparePositions(position, target.truncateFloor) < 0) {
        this.totals.beforeTruncate += 1;
        return;
      }
      const line = target.mapper.row(event, target.mapper.syncedAtFragment(Date.now()));
      batch.addRow(message.key ? `${message.topic}\u0000${message.key.toString('utf8')}` : null, {
        table: target.name, line, version: event.version, deleted: event.kind === 'delete', source: message, generation,
      });
    } catch (error) {
      if (!(error instanceof PoisonMessage || error instanceof ValueError)) throw error;
      batch.addDeadLetter({ source: message, error: error.message, generation }, (message.value?.length ?? 0) + (message.key?.length ?? 0));
    }
  }

  private drained(): boolean {
    for (const [topic, ends] of this.options.drainTo ?? []) {
      for (const [partition, end] of ends) {
        if ((this.reached.get(partitionKey(topic, partition)) ?? -1n) < end) return false;
      }
    }
    return true;
  }

  private async makeRoom(control: BatchControl): Promise<void> {
    if (!this.flushing) {
      this.startFlush();
      return;
    }
    const flushing = this.flushing;
    await this.keepingAlive(control, () => flushing);
  }

  /**
   * Waits for `work` while sending the group heartbeat every few seconds (kafkajs has no background one).
   * When the heartbeat throws (a rebalance), `work`'s signal is aborted and the error is thrown.
   */
  private async keepingAlive<T>(control: BatchControl, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const abort = new AbortController();
    const working = work(abort.signal);
    let settled = false;
    void working.then(() => (settled = true), () => (settled = true));
    while (!settled) {
      await Promise.race([working, new Promise((resolve) => setTimeout(resolve, KEEPALIVE_MS))]).catch(() => {});
      if (settled) break;
      try {
        await control.keepAlive();
      } catch (error) {
        abort.abort();
        throw error;
      }
    }
    return working;
  }

  /** Milliseconds until the current batch is due to be written (<= 0: now; Infinity: empty). */
  private flushDueIn(): number {
    const batch = this.current;
    if (batch.empty) return Infinity;
    if (batch.full || this.stopping || (this.options.drainTo && this.drained())) return 0;
    return this.lastFlushStartedAt + this.options.limits.lingerMs - Date.now();
  }

  private armLinger(): void {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    const due = this.flushDueIn();
    if (this.flushing || due === Infinity) return;
    this.lingerTimer = setTimeout(() => {
      this.lingerTimer = undefined;
      if (this.flushing || this.current.empty) return;
      if (this.flushDueIn() <= 0) this.startFlush();
      else this.armLinger();
    }, Math.max(0, due));
  }

  private startFlush(): void {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    const batch = this.current;
    this.current = new RowBatch(this.options.limits);
    this.lastFlushStartedAt = Date.now();
    this.flushing = this.flush(batch)
      .catch((error: unknown) => this.fail(error as Error))
      .finally(() => {
        this.flushing = undefined;
        this.continueAfterFlush();
      });
  }

  private async flush(batch: RowBatch<ConsumedMessage>): Promise<void> {
    const started = Date.now();
    const counts = await this.applier.apply(batch, () => this.reader.generation);
    const generation = this.reader.generation;
    if (this.options.commit) await this.reader.commit(batch.nextOffsets(generation));
    for (const [topic, partition] of batch.readBefore(generation)) {
      // Its rows were dropped (the fence): they must be read again before this partition counts as drained.
      this.reader.rewind(topic, partition);
      if (!this.current.takenIn(topic, partition, generation)) this.reached.delete(partitionKey(topic, partition));
    }
    this.totals.upserts += counts.upserts;
    this.totals.deletes += counts.deletes;
    this.totals.truncates += counts.truncates;
    this.totals.deadLetters += counts.deadLetters;
    for (const [table, written] of counts.perTable) {
      const total = this.totals.perTable.get(table) ?? { upserts: 0, deletes: 0 };
      total.upserts += written.upserts;
      total.deletes += written.deletes;
      this.totals.perTable.set(table, total);
    }
    this.totals.collapsed += batch.collapsed;
    recordSinkBatch(batch.rows.values(), counts.deadLetters);
    this.logger.debug({ messages: batch.messages, rows: batch.rows.size, bytes: batch.bytes, ms: Date.now() - started }, 'batch written');
  }

  private continueAfterFlush(): void {
    if (this.finished) return;
    if (this.fatal) return this.finish();
    const pending = !this.current.empty;
    const drainedAll = this.options.drainTo !== undefined && this.drained();
    if (this.stopping || drainedAll) {
      if (pending) this.startFlush();
      else this.finish();
      return;
    }
    if (this.flushDueIn() <= 0) this.startFlush();
    else this.armLinger();
  }

  private fail(error: Error): void {
    this.fatal ??= error;
    this.stopping = true;
    if (!this.flushing) this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.lingerTimer);
    this.resolveDone();
  }
}
