/**
 * The replication stream: pgoutput over a walsender connection
 * (pg-logical-replication's LogicalReplicationService) → decoded changes →
 * the batcher; commits and keepalives → the checkpointer; the confirmed LSN →
 * standby status updates.
 *
 * How pg-logical-replication 2.5 is used, and why (read in its dist/ source):
 * - `acknowledge: { auto: false, timeoutSeconds: 0 }`: its timer would ack the
 *   last *received* LSN (data loss on a crash);
 * - `subscribe(plugin, slot, lsn)` always gets the confirmed LSN;
 * - our own plugin object: its pgoutput parser runs values through pg-types'
 *   global parsers (ms Dates in local time, lossy) and turns unchanged TOAST
 *   into undefined; ours keeps PostgreSQL's text (pgoutput-reader.ts). The
 *   plugin's `start()` is also where we get the pg client, to pause its socket
 *   (backpressure) and to write standby status;
 * - standby status is written here, not with its `acknowledge()`: that one
 *   reports lsn+1, which can make PostgreSQL skip a transaction whose commit
 *   record starts exactly at the confirmed commit's end LSN after a restart;
 * - its flowControl option stays off: it awaits each message separately and
 *   turns a handler failure into an 'error' event while going on (a lost
 *   change). We pause the socket instead, and we keep writing status while
 *   paused, so wal_sender_timeout never fires.
 *
 * Contract: changes are pushed in the order PostgreSQL sends them (commit
 * order); transactions carrying walbridge's replication origin are skipped
 * whole; status reports only the checkpointer's confirmed LSN.
 */
import { LogicalReplicationService } from 'pg-logical-replication';
import type pg from 'pg';
import { formatLsn, parseLsn, type Lsn } from '../../core/lsn.js';
import type { Checkpointer } from './checkpointer.js';
import type { ChangeDecoder, DecodedChange, TransactionContext } from './decode.js';
import { isRowMessage, readPgoutput, type LogicalMessage } from './pgoutput-reader.js';
import { TEXT_OUTPUT_OPTIONS } from './slot.js';
import type { CapturedTable } from './table.js';

export interface ListenerOptions {
  databaseUrl: string;
  slot: string;
  publication: string;
  /** The origin whose transactions are walbridge's own marking: skipped. */
  ownOrigin: string;
  decoder: ChangeDecoder;
  checkpointer: Checkpointer;
  /** Partitions of a captured table's topic: its truncate is sent to each. */
  partitionsOf(table: CapturedTable): number;
  push(change: DecodedChange, partition?: number): void;
  /** Called after the confirmed LSN moved (on a commit or an idle keepalive). */
  onConfirmed(lsn: Lsn): void;
  /** A transaction of others (not cdc's own marking) committed: for the freshness metric. */
  onCommit?(endLsn: Lsn, commitTimeUs: number): void;
  onFailure(error: Error): void;
  statusIntervalMs?: number;
  /** Ask the server for a keepalive with each periodic status (`--once` waits on its WAL end). */
  pingOnInterval?: boolean;
  /**
   * Asks pgoutput for logical messages (`messages 'true'`, PostgreSQL 14+) and
   * hands each transactional one over synchronously, in stream order, inside
   * its transaction: whatever the callback pushes belongs to that transaction
   * (confirmed with its commit). Messages outside a transaction are ignored.
   */
  onLogicalMessage?(message: LogicalMessage, txn: TransactionContext): void;
}

type PgConnection = { stream: NodeJS.ReadableStream & { writable: boolean }; sendCopyFromChunk(chunk: Buffer): void };

/**
 * Our pgoutput plugin (the shape of the library's AbstractPlugin, which its
 * index does not export): hands the raw payload on; START_REPLICATION with quoted names.
 */
class RawPgoutput {
  constructor(readonly options: { publication: string; messages: boolean; onClient(client: pg.Client): void }) {}

  get name(): string {
    return 'pgoutput';
  }

  parse(buffer: Buffer): Buffer {
    return buffer;
  }

  start(client: pg.Client, slotName: string, lastLsn: string): Promise<unknown> {
    this.options.onClient(client);
    const publication = client.escapeIdentifier(this.options.publication).replace(/'/g, "''");
    const messages = this.options.messages ? `, messages 'true'` : '';
    return client.query(
      `START_REPLICATION SLOT ${client.escapeIdentifier(slotName)} LOGICAL ${lastLsn} (proto_version '1', publication_names '${publication}'${messages})`,
    );
  }
}

/** Microseconds between 1970-01-01 and 2000-01-01. */
const PG_EPOCH_MICROS = 946_684_800_000_000n;

export class Listener {
  private readonly service: LogicalReplicationService;
  private connection: PgConnection | null = null;
  private txn: TransactionContext | null = null;
  /** The commit LSN of the last transaction read (Debezium's lastCommitLsn in `source.sequence`). */
  private lastCommitLsn: Lsn | null = null;
  private skipping = false;
  private statusTimer: NodeJS.Timeout | null = null;
  private statusSoon: NodeJS.Timeout | null = null;
  private stopping = false;
  private held = false;
  /**
   * Set on the first failure. pg-protocol hands on the rest of a socket chunk
   * synchronously, so messages after the failing one (its transaction's
   * Commit included) still arrive: they are ignored, so nothing after the
   * failure reaches the checkpointer. Separate from `stopping`: `stop()` must
   * still run after a failure.
   */
  private failed = false;
  private keepaliveWaiters: (() => void)[] = [];
  private markStarted: () => void = () => {};
  /** Resolves once the server has started streaming (standby status can be sent from then on). */
  readonly started = new Promise<void>((resolve) => (this.markStarted = resolve));
  skippedOwnChanges = 0;

  constructor(private readonly options: ListenerOptions) {
    this.service = new LogicalReplicationService(
      { connectionString: options.databaseUrl, options: TEXT_OUTPUT_OPTIONS, application_name: `walbridge-cdc pid=${process.pid}` },
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: false } },
    );
    this.service.on('data', (lsn: string, payload: Buffer) => this.guard(() => this.onData(lsn, payload)));
    this.service.on('heartbeat', (lsn: string, _time: number, shouldRespond: boolean) => this.guard(() => this.onKeepalive(lsn, shouldRespond)));
    this.service.on('error', (error: Error) => this.fail(error));
    this.service.on('start', () => this.markStarted());
  }

  /**
   * Starts streaming from `startLsn` (the slot's confirmed LSN or later).
   * Resolves when the stream ends after `stop()`; rejects when it breaks.
   */
  async run(startLsn: Lsn): Promise<void> {
    const plugin = new RawPgoutput({
      publication: this.options.publication,
      messages: this.options.onLogicalMessage !== undefined,
      onClient: (client) => this.onClient(client),
    });
    await this.service.subscribe(plugin, this.options.slot, formatLsn(startLsn));
  }

  pause(): void {
    this.connection?.stream.pause();
  }

  resume(): void {
    if (!this.stopping && !this.held) this.connection?.stream.resume();
  }

  /** Stops reading for good (an orderly stop's flush): backpressure released meanwhile does not resume it. */
  hold(): void {
    this.held = true;
    this.pause();
  }

  /** Sends the confirmed LSN now; with `ping`, resolves when the server has answered (so it has processed it). */
  async sendStatus(ping = false): Promise<void> {
    const connection = this.connection;
    // A stream whose server went away (a restart) takes no status: the slot keeps what it had.
    if (!connection || !connection.stream.writable) return;
    const confirmed = this.options.checkpointer.confirmed;
    const message = Buffer.alloc(34);
    message.write('r', 0);
    message.writeBigUInt64BE(confirmed, 1); // written
    message.writeBigUInt64BE(confirmed, 9); // flushed: becomes the slot's confirmed_flush_lsn
    message.writeBigUInt64BE(confirmed, 17); // applied
    message.writeBigInt64BE(BigInt(Date.now()) * 1000n - PG_EPOCH_MICROS, 25);
    message.writeUInt8(ping ? 1 : 0, 33);
    const answered = ping ? new Promise<void>((resolve) => this.keepaliveWaiters.push(resolve)) : Promise.resolve();
    connection.sendCopyFromChunk(message);
    if (ping) await Promise.race([answered, new Promise((resolve) => setTimeout(resolve, 3_000))]);
  }

  /** Final status (confirmed and acknowledged by the server), then closes the stream. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.clearTimers();
    // Read again (data is ignored from now on) so the server's answer to the final status arrives.
    this.connection?.stream.resume();
    try {
      await this.sendStatus(true);
    } finally {
      await this.service.stop();
      this.service.removeAllListeners();
    }
  }

  private onClient(client: pg.Client): void {
    this.connection = (client as unknown as { connection: PgConnection }).connection;
    const interval = this.options.statusIntervalMs ?? 10_000;
    const ping = this.options.pingOnInterval ?? false;
    this.statusTimer = setInterval(() => this.guard(() => void this.sendStatus(ping)), interval);
  }

  private onData(lsnText: string, payload: Buffer): void {
    if (this.stopping || this.failed) return;
    if (this.skipping && isRowMessage(payload)) {
      this.skippedOwnChanges++;
      return;
    }
    const message = readPgoutput(payload);
    const { decoder, checkpointer } = this.options;
    switch (message.tag) {
      case 'begin':
        this.txn = { xid: message.xid, finalLsn: message.finalLsn, commitTimeUs: message.commitTimeUs, lastCommitLsn: this.lastCommitLsn, order: 1 };
        this.skipping = false;
        checkpointer.begin();
        return;
      case 'origin':
        if (message.name === this.options.ownOrigin) this.skipping = true;
        return;
      case 'relation':
        decoder.relation(message.relation);
        return;
      case 'type':
        decoder.type(message.oid, message.namespace, message.name);
        return;
      case 'insert':
        if (decoder.captures(message.relationOid)) this.options.push(decoder.insert(message.relationOid, message.newTuple, parseLsn(lsnText), this.inTxn()));
        return;
      case 'update':
        if (decoder.captures(message.relationOid)) {
          for (const change of decoder.update(message.relationOid, message.oldTuple, message.keyTuple, message.newTuple, parseLsn(lsnText), this.inTxn())) {
            this.options.push(change);
          }
        }
        return;
      case 'delete':
        if (decoder.captures(message.relationOid)) {
          for (const change of decoder.delete(message.relationOid, message.oldTuple, message.keyTuple, parseLsn(lsnText), this.inTxn())) this.options.push(change);
        }
        return;
      case 'truncate':
        for (const oid of message.relationOids) {
          if (!decoder.captures(oid)) continue;
          const change = decoder.truncate(oid, parseLsn(lsnText), this.inTxn());
          const partitions = this.options.partitionsOf(change.table);
          for (let partition = 0; partition < partitions; partition++) this.options.push(change, partition);
        }
        return;
      case 'message':
        if (message.transactional && this.txn && !this.skipping) this.options.onLogicalMessage?.(message, this.txn);
        return;
      case 'commit':
        if (!this.skipping) this.options.onCommit?.(message.endLsn, message.commitTimeUs);
        this.lastCommitLsn = message.commitLsn;
        this.txn = null;
        this.skipping = false;
        if (checkpointer.commit(message.endLsn)) this.confirmedMoved();
        return;
      case 'other':
        return;
    }
  }

  private onKeepalive(lsnText: string, shouldRespond: boolean): void {
    const waiters = this.keepaliveWaiters;
    this.keepaliveWaiters = [];
    for (const resolve of waiters) resolve();
    // Once stopping (or failed), data is ignored, so a keepalive's WAL end says nothing about what was delivered.
    if (this.stopping || this.failed) return;
    const moved = this.options.checkpointer.keepalive(parseLsn(lsnText));
    if (moved) this.options.onConfirmed(this.options.checkpointer.confirmed);
    if (shouldRespond || moved) void this.sendStatus(false);
  }

  /** The batcher delivered more: the confirmed LSN may have moved. */
  confirmedMoved(): void {
    if (this.failed) return;
    this.options.onConfirmed(this.options.checkpointer.confirmed);
    if (this.statusSoon || this.stopping) return;
    // Coalesce: at most one status message per 100 ms while busy.
    this.statusSoon = setTimeout(() => {
      this.statusSoon = null;
      this.guard(() => void this.sendStatus(false));
    }, 100);
  }

  private inTxn(): TransactionContext {
    if (!this.txn) throw new Error('pgoutput change outside a transaction');
    return this.txn;
  }

  private guard(body: () => void): void {
    try {
      body();
    } catch (error) {
      this.fail(error as Error);
    }
  }

  private fail(error: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.clearTimers();
    this.connection?.stream.pause();
    const txn = this.txn;
    if (txn) {
      // Say where: an operator who decides to skip the transaction needs its commit LSN.
      error.message += ` (in transaction ${txn.xid}, committed at ${formatLsn(txn.finalLsn)}; nothing from it on was confirmed)`;
    }
    this.options.onFailure(error);
  }

  private clearTimers(): void {
    if (this.statusTimer) clearInterval(this.statusTimer);
    if (this.statusSoon) clearTimeout(this.statusSoon);
    this.statusTimer = null;
    this.statusSoon = null;
  }
}
