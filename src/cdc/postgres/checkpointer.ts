/**
 * Which LSN cdc may confirm to PostgreSQL (docs/design.md, "confirm late, never
 * early").
 *
 * Contract: events are numbered in the order they are handed to delivery;
 * delivery reports the count of events that are both acknowledged by Kafka
 * and marked `sent_to_kafka`, which only grows (batches complete in order).
 * A transaction becomes confirmable when every event up to its last one is
 * delivered; the confirmed LSN is the end LSN of the latest such commit, so a
 * later transaction never overtakes an unfinished earlier one. When nothing
 * is open or in flight, a keepalive's WAL end may be confirmed, so an idle
 * slot does not pin WAL. The confirmed LSN never moves backwards.
 */
import { maxLsn, type Lsn } from '../../core/lsn.js';

interface PendingCommit {
  lastEvent: number;
  endLsn: Lsn;
}

export class Checkpointer {
  private readonly pending: PendingCommit[] = [];
  private head = 0;
  private submitted = 0;
  private delivered = 0;
  private inTransaction = false;
  private frozen = false;
  private confirmedLsn: Lsn;

  /**
   * `startLsn`: what the slot has already confirmed (or `--from-lsn`);
   * `delivered`: events numbered before the stream (the snapshot's), all delivered.
   */
  constructor(startLsn: Lsn, delivered = 0) {
    this.confirmedLsn = startLsn;
    this.submitted = delivered;
    this.delivered = delivered;
  }

  get confirmed(): Lsn {
    return this.confirmedLsn;
  }

  /** Nothing received is waiting for Kafka or the marker, and no transaction is open. */
  get idle(): boolean {
    return !this.inTransaction && this.head === this.pending.length && this.delivered === this.submitted;
  }

  /**
   * After a failure: the confirmed LSN stays where it is, whatever commits,
   * deliveries or keepalives are reported later (an event of the failed
   * transaction may never have been counted, so its commit proves nothing).
   */
  freeze(): void {
    this.frozen = true;
  }

  begin(): void {
    this.inTransaction = true;
  }

  submit(count: number): void {
    this.submitted += count;
  }

  /** The transaction that began last has committed; true when the confirmed LSN moved. */
  commit(endLsn: Lsn): boolean {
    if (this.frozen) return false;
    this.inTransaction = false;
    this.pending.push({ lastEvent: this.submitted, endLsn });
    return this.advance();
  }

  /** Delivery finished every event numbered up to `count`; true when the confirmed LSN moved. */
  deliveredThrough(count: number): boolean {
    if (this.frozen) return false;
    if (count > this.delivered) this.delivered = count;
    return this.advance();
  }

  /** A keepalive reported the server's WAL end; confirmed only when idle. */
  keepalive(walEnd: Lsn): boolean {
    if (this.frozen || !this.idle || walEnd <= this.confirmedLsn) return false;
    this.confirmedLsn = walEnd;
    return true;
  }

  private advance(): boolean {
    const before = this.confirmedLsn;
    while (this.head < this.pending.length && this.pending[this.head]!.lastEvent <= this.delivered) {
      this.confirmedLsn = maxLsn(this.confirmedLsn, this.pending[this.head]!.endLsn);
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending.splice(0, this.head);
      this.head = 0;
    }
    return this.confirmedLsn !== before;
  }
}
