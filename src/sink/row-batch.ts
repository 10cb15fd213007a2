/**
 * The rows of one ClickHouse insert, collected from Kafka messages.
 *
 * - Collapse: rows with the same key replace each other, last wins unless
 *   its version is lower (several changes to one key in one transaction
 *   share a version, and ReplacingMergeTree cannot order rows of equal
 *   version inside one insert; a lower version can only be a message read
 *   again after a rebalance, already superseded).
 * - Limits: full at `maxRows` distinct rows or `maxBytes` of row text; the
 *   caller flushes when full or soon after it has read everything there is
 *   (at most one insert per `lingerMs`; sink-worker.ts). A
 *   truncate seals the batch: it is applied after the batch's rows, before
 *   anything that came after it.
 * - Acknowledgement: `nextOffsets` holds, per partition, the offset after the
 *   last message taken into this batch (rows, dead letters and skipped
 *   messages alike); the caller commits them once the batch is written.
 * - Generations: every row, letter and offset records the consumer group
 *   generation it was read in (consumer.ts). After a rebalance, what was read
 *   before it is neither written nor committed (`current()`): the partition's
 *   new owner, or this member reading it again from the committed offset,
 *   applies those messages in order (docs/design.md, "Several sink members").
 */
import type { EventPosition } from '../core/envelope.js';

export interface BatchLimits {
  maxRows: number;
  maxBytes: number;
  lingerMs: number;
}

export const DEFAULT_LIMITS: BatchLimits = { maxRows: 10_000, maxBytes: 8 * 1024 * 1024, lingerMs: 50 };

export interface PendingRow<M> {
  /** The ClickHouse table the row goes to. */
  table: string;
  line: string;
  version: bigint;
  deleted: boolean;
  /** The message the row came from, for the dead-letter topic if ClickHouse rejects it. */
  source: M;
  /** The consumer group generation the message was read in. */
  generation: number;
}

export interface DeadLetter<M> {
  source: M;
  error: string;
  generation: number;
}

export interface SealingTruncate {
  table: string;
  position: EventPosition;
  generation: number;
}

export class RowBatch<M> {
  readonly rows = new Map<string, PendingRow<M>>();
  readonly deadLetters: DeadLetter<M>[] = [];
  /** topic → partition → the last offset taken and the generation it was read in (updated in place: no object per message). */
  private readonly taken = new Map<string, Map<number, { last: bigint; generation: number }>>();
  /** The truncate that ends this batch, if any. */
  truncate: SealingTruncate | undefined;
  bytes = 0;
  messages = 0;
  /** Rows replaced by (or dropped for) another row of the same key. */
  collapsed = 0;
  private unkeyed = 0;

  constructor(private readonly limits: BatchLimits) {}

  get empty(): boolean {
    return this.messages === 0;
  }

  /** No more messages fit: full, or sealed by a truncate. */
  get full(): boolean {
    return this.truncate !== undefined || this.rows.size >= this.limits.maxRows || this.bytes >= this.limits.maxBytes;
  }

  /** Records that the message at `offset` of the topic's `partition` belongs to this batch. */
  take(topic: string, partition: number, offset: bigint, generation: number): void {
    this.messages += 1;
    let offsets = this.taken.get(topic);
    if (!offsets) this.taken.set(topic, (offsets = new Map()));
    const entry = offsets.get(partition);
    if (entry) {
      entry.last = offset;
      entry.generation = generation;
    } else {
      offsets.set(partition, { last: offset, generation });
    }
  }

  /** The offsets to commit once written: those read in the generation `current` (earlier ones are read again). */
  nextOffsets(current: number): Map<string, Map<number, bigint>> {
    const result = new Map<string, Map<number, bigint>>();
    for (const [topic, partitions] of this.taken) {
      const offsets = new Map([...partitions].filter(([, taken]) => taken.generation === current).map(([partition, taken]) => [partition, taken.last + 1n]));
      if (offsets.size > 0) result.set(topic, offsets);
    }
    return result;
  }

  /** The partitions whose last message taken here was read in another generation than `current`: their rows are dropped. */
  readBefore(current: number): Array<[topic: string, partition: number]> {
    return [...this.taken].flatMap(([topic, partitions]) =>
      [...partitions].filter(([, taken]) => taken.generation !== current).map(([partition]) => [topic, partition] as [string, number]));
  }

  /** Whether a message of the partition was last taken here in generation `current`. */
  takenIn(topic: string, partition: number, current: number): boolean {
    return this.taken.get(topic)?.get(partition)?.generation === current;
  }

  /** Adds a row; a row with the same key already here is replaced. A null key never collapses. */
  addRow(key: string | null, row: PendingRow<M>): void {
    const slot = key ?? `\u0000unkeyed:${this.unkeyed++}`;
    const previous = this.rows.get(slot);
    if (previous) {
      this.collapsed += 1;
      if (previous.generation === row.generation && previous.version > row.version) return;
      this.bytes -= previous.line.length;
      this.rows.delete(slot); // re-inserted below: Map order then follows the last change
    }
    this.rows.set(slot, row);
    this.bytes += row.line.length;
  }

  /** `bytes`: the message's size, counted against maxBytes like row text (letters hold the message until written). */
  addDeadLetter(letter: DeadLetter<M>, bytes: number): void {
    this.deadLetters.push(letter);
    this.bytes += bytes;
  }

  seal(truncate: SealingTruncate): void {
    this.truncate = truncate;
  }
}
