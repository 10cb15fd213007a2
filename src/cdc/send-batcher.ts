/**
 * Groups events into Kafka sends and sets the pace of the replication stream.
 *
 * Contract: events are delivered in the order pushed. One send is in flight
 * at a time (the idempotent producer's rule); while it is, new events gather
 * into the next batch. After a batch is acknowledged, its `sent_to_kafka`
 * marks are committed (in batch order, overlapping the next send), and only
 * then `onDelivered(n)` reports that the first n events pushed are done.
 * Memory is bounded: past `highWaterBytes` of undelivered events
 * `onPressure(true)` asks the source to stop reading, below `lowWaterBytes`
 * `onPressure(false)` lets it go on. The first failure is final: it is
 * reported once through `onFailure` and nothing is delivered after it.
 */
import type { EventProducer, OutgoingMessage } from '../kafka/producer.js';
import type { Marker } from './postgres/marker.js';

export interface BatcherOptions {
  producer: EventProducer;
  topic: string;
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
  messages: OutgoingMessage[];
  ids: string[];
  bytes: number;
  /** Count of events pushed up to and including this batch's last one. */
  end: number;
}

export class Batcher {
  private current: Batch = emptyBatch(0);
  private readonly sealed: Batch[] = [];
  private sending = false;
  private pumpScheduled = false;
  private marks: Promise<void> = Promise.resolve();
  private pushed = 0;
  private delivered = 0;
  private buffered = 0;
  private paused = false;
  private failure: Error | null = null;
  private waiters: { count: number; resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(private readonly options: BatcherOptions) {}

  get pushedCount(): number {
    return this.pushed;
  }

  push(message: OutgoingMessage, markId: string | null): void {
    if (this.failure) return;
    const bytes = message.value.length + (message.key?.length ?? 0) + 64;
    const batch = this.current;
    batch.messages.push(message);
    if (markId !== null) batch.ids.push(markId);
    batch.bytes += bytes;
    batch.end = ++this.pushed;
    this.buffered += bytes;
    if (batch.bytes >= this.options.maxBatchBytes || batch.messages.length >= this.options.maxBatchMessages) this.seal();
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
    if (this.current.messages.length === 0) return;
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
    this.options.producer.send(this.options.topic, batch.messages).then(
      () => {
        this.sending = false;
        batch.messages = [];
        this.marks = this.marks.then(() => this.markAndReport(batch));
        this.pump();
      },
      (error: Error) => this.fail(error),
    );
  }

  private async markAndReport(batch: Batch): Promise<void> {
    if (this.failure) return;
    try {
      if (this.options.marker) await this.options.marker.mark(batch.ids);
    } catch (error) {
      this.fail(error as Error);
      return;
    }
    this.delivered = batch.end;
    this.buffered -= batch.bytes;
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

function emptyBatch(end: number): Batch {
  return { messages: [], ids: [], bytes: 0, end };
}
