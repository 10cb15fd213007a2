/**
 * `cdc start`: preflight → publication, topic, marker → slot (created with its
 * initial snapshot, or resumed) → replication stream, until `--once` has
 * drained what was committed before the start, or a signal, or a failure.
 *
 * Contract: the slot's confirmed LSN only ever covers events acknowledged by
 * Kafka and marked `sent_to_kafka` (design.md §2); on stop, what was read is
 * flushed and confirmed first; on failure nothing more is confirmed.
 */
import pg from 'pg';
import type { Operation } from '../core/envelope.js';
import { topicName } from '../core/envelope.js';
import { formatLsn, maxLsn, parseLsn, type Lsn } from '../core/lsn.js';
import { createKafka } from '../kafka/client.js';
import { connectProducer, partitionCount } from '../kafka/producer.js';
import { ensureTopic } from '../kafka/topics.js';
import type { Logger } from '../observability/logger.js';
import { Checkpointer } from './postgres/checkpointer.js';
import { ChangeDecoder, type DecodedChange } from './postgres/decode.js';
import { Listener } from './postgres/listener.js';
import { openMarker, originName, type Marker } from './postgres/marker.js';
import { preflight } from './postgres/preflight.js';
import { createSlot, ensurePublication, type CreatedSlot } from './postgres/slot.js';
import { clearSnapshotFlag, raiseSnapshotFlag } from './postgres/snapshot-flag.js';
import { readSnapshot, type SnapshotMode } from './postgres/snapshot.js';
import { qualifiedName } from './postgres/table.js';
import { Batcher } from './send-batcher.js';
import { startSnapshotStage, type SnapshotStage } from './snapshot-stage.js';
import { watermarksSupported } from './postgres/watermarks.js';
import { Gate } from './gate.js';

export interface CaptureOptions {
  databaseUrl: string;
  kafkaBrokers: string[];
  slot: string;
  publication: string;
  table: { schema: string; table: string };
  topicPrefix: string;
  partitions: number;
  snapshot: SnapshotMode;
  /** Whether --snapshot was given (a missing slot that cdc streamed from before is refused otherwise). */
  snapshotExplicit: boolean;
  once: boolean;
  fromLsn: Lsn | null;
  markSent: boolean;
  signal: AbortSignal;
  logger: Logger;
}

export interface CaptureSummary {
  slot: string;
  topic: string;
  /** Events read, by operation (a truncate counts once, though it is sent to every partition). */
  counts: Record<Operation, number>;
  /** Kafka messages read but not delivered (acknowledged and marked) before the stop: not confirmed, so sent again on restart. */
  undelivered: number;
  confirmed: Lsn;
}

const BATCH = { maxBatchBytes: 512 * 1024, maxBatchMessages: 5_000, highWaterBytes: 8 * 1024 * 1024, lowWaterBytes: 2 * 1024 * 1024 };
const STOP_FLUSH_MS = 10_000;

export async function runCapture(options: CaptureOptions): Promise<CaptureSummary> {
  const { logger, signal } = options;
  const closers: (() => Promise<unknown>)[] = [];
  const admin = new pg.Client({ connectionString: options.databaseUrl, application_name: 'walbridge-cdc-admin' });
  await admin.connect();
  closers.push(() => admin.end());
  try {
    const checked = await preflight(admin, { table: options.table, slot: options.slot, markSent: options.markSent, fromLsn: options.fromLsn, snapshot: options.snapshot, snapshotExplicit: options.snapshotExplicit });
    const { table } = checked;
    if (table.replicaIdentity !== 'f') {
      await admin.query(`ALTER TABLE ${qualifiedName(admin, table)} REPLICA IDENTITY FULL`);
      logger.info({ table: `${table.schema}.${table.table}` }, 'set REPLICA IDENTITY FULL, so updates carry unchanged TOAST values (in the old row)');
    }
    if (await ensurePublication(admin, options.publication, table)) logger.info({ publication: options.publication }, 'created publication');
    const target = options.once ? parseLsn((await admin.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn) : null;

    const kafka = createKafka(options.kafkaBrokers, 'walbridge-cdc', logger);
    const topic = topicName(options.topicPrefix, table.schema, table.table);
    await ensureTopic(kafka, topic, options.partitions);
    const partitions = await partitionCount(kafka, topic);
    const producer = await connectProducer(options.kafkaBrokers, 'walbridge-cdc');
    closers.push(() => producer.disconnect());

    // A missing slot is created before the marker opens: walbridge's origin
    // (the marker's) then only ever exists for a slot that did, which is how
    // preflight tells a lost slot from a new one.
    let created: CreatedSlot | null = null;
    let releaseCreated = async (): Promise<void> => {};
    if (checked.slot === null) {
      // Preflight made sure the role may raise and clear the flag.
      if (options.snapshot !== 'none') await raiseSnapshotFlag(admin, options.slot, options.snapshot);
      const slot = await createSlot(options.databaseUrl, options.slot);
      created = slot;
      let released = false;
      releaseCreated = async () => {
        if (released) return;
        released = true;
        await slot.release();
      };
      closers.push(releaseCreated);
      logger.info({ slot: options.slot, consistentPoint: formatLsn(slot.consistentPoint) }, 'created replication slot');
    }

    const marking = options.markSent && table.sentFlag !== null && table.primaryKey.length === 1;
    if (options.markSent && !marking) logger.info('not marking sent_to_kafka: the table has no such boolean column or a composite primary key');
    let marker: Marker | null = null;
    if (marking) {
      marker = await openMarker(options.databaseUrl, table, options.slot, logger);
      closers.push(() => marker!.close());
    }

    let failure: Error | null = null;
    let checkpointer: Checkpointer | null = null;
    let rejectFailed: (error: Error) => void = () => {};
    const failed = new Promise<never>((_, reject) => (rejectFailed = reject));
    failed.catch(() => {});
    const gate = new Gate();
    const fail = (error: Error): void => {
      if (failure) return;
      failure = error;
      // Nothing after a failure is confirmed, not even by the final status on stop.
      checkpointer?.freeze();
      rejectFailed(error);
      gate.open(); // a snapshot waiting on backpressure sees the failure and ends
    };
    signal.addEventListener('abort', () => gate.open(), { once: true });
    let listener: Listener | null = null;
    let snapshots: SnapshotStage | null = null;
    const capturedName = `${table.schema}.${table.table}`;
    const counts: Record<Operation, number> = { c: 0, u: 0, d: 0, r: 0, t: 0 };
    let delivered = 0;
    const summary = (confirmed: Lsn): CaptureSummary => ({ slot: options.slot, topic, counts, undelivered: batcher.pushedCount - delivered, confirmed });
    const batcher = new Batcher({
      producer,
      topic,
      marker,
      ...BATCH,
      onDelivered: (count) => {
        delivered = count;
        if (checkpointer?.deliveredThrough(count)) listener?.confirmedMoved();
      },
      onPressure: (paused) => {
        if (paused) {
          gate.close();
          listener?.pause();
        } else {
          gate.open();
          listener?.resume();
        }
      },
      onFailure: fail,
    });
    const push = (change: DecodedChange, partition?: number): void => {
      snapshots?.observe(capturedName, change.key);
      if (partition === undefined) batcher.push({ key: change.key, value: change.value }, change.markId);
      else batcher.push({ key: null, value: change.value, partition }, null);
      checkpointer?.submit(1);
      if (!partition) counts[change.op]++;
    };
    const decoder = new ChangeDecoder(table, options.topicPrefix, checked.database, marking);
    const stopped = (): boolean => signal.aborted || failure !== null;

    // The slot: created with its snapshot, or resumed (finishing an interrupted snapshot first).
    let startLsn: Lsn;
    let snapshotDone = true;
    const snapshotBase = { databaseUrl: options.databaseUrl, table, decoder, gate, push, stopped, logger };
    if (created !== null) {
      try {
        if (options.snapshot !== 'none') {
          await readSnapshot({ ...snapshotBase, snapshotName: created.snapshotName, mode: options.snapshot, consistentPoint: created.consistentPoint });
          snapshotDone = !stopped();
        }
      } finally {
        await releaseCreated();
      }
      startLsn = created.consistentPoint;
    } else {
      const confirmed = checked.slot!.confirmedFlush ?? 0n;
      startLsn = options.fromLsn === null ? confirmed : maxLsn(confirmed, options.fromLsn);
      const pending = checked.pendingSnapshot;
      if (pending !== null) {
        // The mode it was started with, whatever --snapshot says now (it applies to a slot's creation only).
        logger.warn({ slot: options.slot, mode: pending }, `the initial snapshot of this slot was interrupted: reading the remaining rows again, as --snapshot ${pending}`);
        await readSnapshot({ ...snapshotBase, snapshotName: null, mode: pending, consistentPoint: confirmed });
        snapshotDone = !stopped();
      }
    }
    await Promise.race([batcher.drain(), failed]);
    if (snapshotDone) await clearSnapshotFlag(admin, options.slot);
    if (stopped()) return summary(startLsn);

    // The stream.
    checkpointer = new Checkpointer(startLsn, batcher.pushedCount);
    let reachedTarget: () => void = () => {};
    const targetReached = new Promise<void>((resolve) => (reachedTarget = resolve));
    if (target !== null && startLsn >= target) reachedTarget();
    // Incremental snapshots (cdc snapshot) need pgoutput's logical messages: PostgreSQL 14+.
    const incremental = await watermarksSupported(admin);
    const stream = new Listener({
      databaseUrl: options.databaseUrl,
      slot: options.slot,
      publication: options.publication,
      ownOrigin: originName(options.slot),
      decoder,
      checkpointer,
      partitions,
      push,
      onConfirmed: (lsn) => {
        if (target !== null && lsn >= target) reachedTarget();
      },
      onFailure: fail,
      statusIntervalMs: options.once ? 1_000 : 10_000,
      pingOnInterval: options.once,
      ...(incremental ? { onLogicalMessage: (message, txn) => snapshots?.onLogicalMessage(message, txn) } : {}),
    });
    listener = stream;
    logger.info({ slot: options.slot, publication: options.publication, topic, from: formatLsn(startLsn), marking }, 'streaming');
    const aborted = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    const running = stream.run(startLsn).then(() => {
      if (!stopped()) throw new Error('the replication stream ended unexpectedly');
    });
    running.catch(fail);
    try {
      await Promise.race([stream.started, aborted, failed]);
      if (incremental && !stopped()) {
        snapshots = await startSnapshotStage({
          databaseUrl: options.databaseUrl,
          slot: options.slot,
          captures: (name) => name === capturedName,
          encode: (_table, columns, row, version) => decoder.snapshotRow(columns, row, version, false, Date.now()),
          push,
          delivered: () => batcher.drain(),
          untilIdle: options.once,
          onFailure: fail,
          logger,
        });
      }
      await Promise.race([targetReached, aborted, failed]);
      if (options.once && snapshots) await Promise.race([snapshots.idle, aborted, failed]);
      // Orderly stop: no more reading (no new chunk either); deliver what was read; confirm it.
      await snapshots?.stop();
      stream.pause();
      await Promise.race([batcher.drain(), failed, new Promise((resolve) => setTimeout(resolve, STOP_FLUSH_MS).unref())]);
    } finally {
      await snapshots?.stop();
      await stream.stop();
    }
    logger.info({ confirmed: formatLsn(checkpointer.confirmed), skippedOwnChanges: stream.skippedOwnChanges }, 'stopped');
    return summary(checkpointer.confirmed);
  } finally {
    for (const close of closers.reverse()) await close().catch((error: Error) => logger.warn({ err: error.message }, 'while closing'));
  }
}
