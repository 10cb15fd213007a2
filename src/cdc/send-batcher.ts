/**
 * Groups events into Kafka sends and sets the pace of the replication stream.
 *
 * Contract: events are delivered in the order pushed (a batch holds events of
 * any captured table, each to its table's topic). One send is in flight at a
 * time (the idempotent producer's rule); while it is, new events gather into
 * the next batch. A batch is sent once the schema headers it carries are
 * ready. After a batch is acknowledged, its `sent_to_kafka` marks are
 * committed (in batch order, overlapping the next send), and only then
 * `onDelivered(n)` reports that the first n events pushed are done.
 * One marking runs at a time; the batches acknowledged while it runs are
 * marked together by the next one (one UPDATE per table): the commit's cost
 * is shared by more rows the further marking lags, instead of one commit per
 * small batch.
 * Memory is bounded: past `highWaterBytes` of undelivered events
 * `onPressure(true)` asks the source to stop reading, below `lowWaterBytes`
 * `onPressure(false)` lets it go on. The first failure is final: it is
 * reported once through `onFailure` and nothing is delivered after it.
 */
import { SCHEMA_HEADER } from '../core/envelope.js';
import type { EventProducer, OutgoingMessage } from '../kafka/producer.js';
import type { DecodedChange, SchemaHeader } from './postgres/decode.js';
import type { Marker, MarkKeys } from './postgres/marker.js';

export interface BatcherOptions {
  producer: EventProducer;
  marker: Marker | null;
  maxBatchBytes: number;
  maxBatchMessages: number;
  highWaterBytes: number;
  lowWaterBytes: number;
  onDelivered(count: number): void;
  onPressure(paused: boolean): void;
  onFailure(error: Error): void;
}

interface Batch {
  changes: DecodedChange[];
  /** The partition of each change sent to an explicit one (truncates), by index. */
  partitions: Map<number, number>;
  marks: MarkKeys;
  /** The streamed transactions that wrote the rows in `marks`. */
  writers: Set<number>;
  /** Schema headers of the batch not ready when pushed. */
  pendingSchemas: Set<SchemaHeader>;
  bytes: number;
  /** Count of events pushed up to and including this batch's last one. */
  end: number;
}

export class Batcher {
  private current: Batch = emptyBatch(0);
  private readonly sealed: Batch[] = [];
  private sending = false;
  private pumpScheduled = false;
  /** Acknowledged batches waiting for the marking that runs now to end. */
  private acknowledged: Batch[] = [];
  private marking = false;
  private pushed = 0;
  private delivered = 0;
  private buffered = 0;
  private paused = false;
  private failure: Error | null = null;
  private waiters: { count: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  /** Schema header value → the headers of a message carrying only it (weak: a replaced schema's entry goes with it). */
  private readonly sharedHeaders = new WeakMap<Buffer, Map<Buffer, Buffer>>();

  constructor(private readonly options: BatcherOptions) {}

  get pushedCount(): number {
    return this.pushed;
  }

  /** Queues one event; `partition` sends it to that partition rather than by key (a truncate, to each). */
  push(change: DecodedChange, partition?: number): void {
    if (this.failure) return;
    const bytes = (change.value?.length ?? 0) + (change.key?.length ?? 0) + 64;
    const batch = this.current;
    if (partition !== undefined) batch.partitions.set(batch.changes.length, partition);
    batch.changes.push(change);
    if (change.markKey !== null) {
      const keys = batch.marks.get(change.table);
      if (keys) keys.push(change.markKey);
      else batch.marks.set(change.table, [change.markKey]);
      if (change.xid !== null) batch.writers.add(change.xid);
    }
    if (change.schema && change.schema.value === null) batch.pendingSchemas.add(change.schema);
    batch.bytes += bytes;
    batch.end = ++this.pushed;
    this.buffered += bytes;
    if (batch.bytes >= this.options.maxBatchBytes || batch.changes.length >= this.options.maxBatchMessages) this.seal();
    if (!this.paused && this.buffered > this.options.highWaterBytes) {
      this.paused = true;
      this.options.onPressure(true);
    }
    this.schedulePump();
  }

  /** Resolves when every event pushed so far is delivered (acknowledged and marked). */
  drain(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.delivered >= this.pushed) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ count: this.pushed, resolve, reject }));
  }

  private seal(): void {
    if (this.current.changes.length === 0) return;
    this.sealed.push(this.current);
    this.current = emptyBatch(this.pushed);
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.sending) return;
    this.pumpScheduled = true;
    // On the next turn, so a burst of messages from one socket read forms one batch.
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.sending || this.failure) return;
    if (this.sealed.length === 0) this.seal();
    const batch = this.sealed.shift();
    if (!batch) return;
    this.sending = true;
    this.send(batch).then(
      () => {
        this.sending = false;
        batch.changes = [];
        this.acknowledged.push(batch);
        this.pump(); // the next send first: it overlaps this batch's marking
        this.markAcknowledged();
      },
      (error: Error) => this.fail(error),
    );
  }

  private async send(batch: Batch): Promise<void> {
    if (batch.pendingSchemas.size > 0) await Promise.all([...batch.pendingSchemas].map((schema) => schema.ready));
    const messages = new Array<OutgoingMessage>(batch.changes.length);
    for (let i = 0; i < batch.changes.length; i++) {
      const change = batch.changes[i]!;
      const partition = batch.partitions.size === 0 ? undefined : batch.partitions.get(i);
      const message: OutgoingMessage = { topic: change.topic, key: partition === undefined ? change.key : null, value: change.value, headers: this.headersOf(change) };
      if (partition !== undefined) message.partition = partition;
      messages[i] = message;
    }
    await this.options.producer.send(messages);
  }

  /**
   * The Kafka headers of a change. The usual change carries only its schema
   * header: one Map per schema header, shared by its messages (the producer
   * only reads it), rather than a Map per message.
   */
  private headersOf(change: DecodedChange): Map<Buffer, Buffer> {
    const schema = change.schema?.value ?? null;
    if (change.headers === null || change.headers.length === 0) {
      if (schema === null) return NO_HEADERS;
      let shared = this.sharedHeaders.get(schema);
      if (!shared) this.sharedHeaders.set(schema, (shared = new Map([[SCHEMA_HEADER_KEY, schema]])));
      return shared;
    }
    const headers = new Map<Buffer, Buffer>();
    if (schema !== null) headers.set(SCHEMA_HEADER_KEY, schema);
    for (const [name, value] of change.headers) headers.set(Buffer.from(name), Buffer.from(value, 'utf8'));
    return headers;
  }

  private markAcknowledged(): void {
    if (this.marking || this.failure || this.acknowledged.length === 0) return;
    const batches = this.acknowledged;
    this.acknowledged = [];
    this.marking = true;
    this.markAndReport(batches).then(
      () => {
        this.marking = false;
        this.markAcknowledged();
      },
      (error: Error) => this.fail(error), // a throwing callback: final, like any failure
    );
  }

  /** Marks consecutive acknowledged batches in one go, then reports them delivered. */
  private async markAndReport(batches: Batch[]): Promise<void> {
    if (this.failure) return;
    try {
      if (this.options.marker) {
        const [marks, writers] = batches.length === 1 ? [batches[0]!.marks, batches[0]!.writers] : mergeMarks(batches);
        if (marks.size > 0) await this.options.marker.mark(marks, writers);
      }
    } catch (error) {
      this.fail(error as Error);
      return;
    }
    if (this.failure) return; // a send failed while marking: nothing is delivered after the first failure
    this.delivered = batches.at(-1)!.end;
    for (const batch of batches) this.buffered -= batch.bytes;
    this.options.onDelivered(this.delivered);
    if (this.paused && this.buffered < this.options.lowWaterBytes) {
      this.paused = false;
      this.options.onPressure(false);
    }
    this.waiters = this.waiters.filter((waiter) => {
      if (waiter.count > this.delivered) return true;
      waiter.resolve();
      return false;
    });
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    for (const waiter of this.waiters) waiter.reject(error);
    this.waiters = [];
    this.options.onFailure(error);
  }
}

const SCHEMA_HEADER_KEY = Buffer.from(SCHEMA_HEADER);
const NO_HEADERS: Map<Buffer, Buffer> = new Map();

function mergeMarks(batches: Batch[]): [MarkKeys, Set<number>] {
  const merged: MarkKeys = new Map();
  const writers = new Set<number>();
  for (const batch of batches) {
    for (const [table, keys] of batch.marks) {
      const into = merged.get(table);
      if (into) for (const key of keys) into.push(key);
      else merged.set(table, keys.slice());
    }
    for (const xid of batch.writers) writers.add(xid);
  }
  return [merged, writers];
}

function emptyBatch(end: number): Batch {
  return { changes: [], partitions: new Map(), marks: new Map(), writers: new Set(), pendingSchemas: new Set(), bytes: 0, end };
}
