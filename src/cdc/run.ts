/**
 * `cdc start`, as a short sequence of named stages:
 *   prepare   preflight, REPLICA IDENTITY, publication, topics
 *   openSlot  the slot: created (with its exported snapshot), or resumed
 *   deliver   producer, marker, send batcher, and how a failure stops all
 *   snapshot  the initial load (or the rest of an interrupted one)
 *   stream    the replication stream, until `--once` has drained what was
 *             committed before the start, or a signal, or a failure; with it
 *             the incremental snapshots (snapshot-stage.ts) of tables added
 *             to an existing slot or asked for by `cdc snapshot`
 *
 * Contract (docs/design.md, "confirm late"): the slot's confirmed LSN only
 * ever covers events acknowledged by Kafka and marked `sent_to_kafka`; on
 * stop, what was read is flushed and confirmed first; after a failure
 * nothing more is confirmed.
 *
 * Outages (outages.ts): after a lost PostgreSQL connection or an
 * unreachable Kafka the attempt's sessions are closed and the stages run
 * again from `prepare`. The slot's confirmed LSN is re-read each time: before
 * PostgreSQL 17 it can be earlier than what cdc last confirmed after a server
 * restart, so nothing here assumes it only grows.
 */
import pg from 'pg';
import type { ColumnPolicy } from '../config/column-policy.js';
import type { TableSelection } from '../config/table-selection.js';
import type { Operation } from '../core/envelope.js';
import { formatLsn, maxLsn, parseLsn, type Lsn } from '../core/lsn.js';
import type { KafkaConnection } from '../config/kafka.js';
import { createKafka } from '../kafka/client.js';
import { connectProducer, type EventProducer } from '../kafka/producer.js';
import type { TopicSettings } from '../kafka/topic-settings.js';
import type { Logger } from '../observability/logger.js';
import { cdcMetrics, commitFreshness, lsnValue } from '../observability/metrics.js';
import { Checkpointer } from './postgres/checkpointer.js';
import { ChangeDecoder, type DecodedChange } from './postgres/decode.js';
import { Listener } from './postgres/listener.js';
import { openMarker, originName, type Marker } from './postgres/marker.js';
import { preflight, type PreflightResult, type ReplicaIdentityChoice } from './postgres/preflight.js';
import { createSlot, type CreatedSlot } from './postgres/slot.js';
import { clearSnapshotFlag, raiseSnapshotFlag } from './postgres/snapshot-flag.js';
import { readSnapshot, type SnapshotMode } from './postgres/snapshot.js';
import { missingValues, type CapturedTable } from './postgres/table.js';
import { supportsWatermarks } from './postgres/watermarks.js';
import { adopt, applyReplicaIdentity, openTopic, publishAndRequest, warnAboutTopics } from './capture-tables.js';
import { startSnapshotStage, type SnapshotStage } from './snapshot-stage.js';
import { Batcher } from './send-batcher.js';
import { Gate } from './gate.js';
import { KafkaUnreachable, StreamEnded } from './connection-loss.js';
import { rideThrough, type Carried } from './outages.js';
import { brokersUnreachable } from '../kafka/reachability.js';
import { checkHeartbeatSupport, startHeartbeat, type Heartbeat } from './heartbeat.js';

export interface CaptureOptions {
  databaseUrl: string;
  kafka: KafkaConnection;
  slot: string;
  publication: string;
  tables: TableSelection;
  replicaIdentity: ReplicaIdentityChoice;
  topicPrefix: string;
  /** Partitions of a topic cdc creates. */
  partitions: number;
  /** Replication and retention of a topic cdc creates (kafka/topic-settings.ts). */
  topicSettings: TopicSettings;
  snapshot: SnapshotMode;
  /** Whether --snapshot was given (a missing slot that cdc streamed from before is refused otherwise). */
  snapshotExplicit: boolean;
  once: boolean;
  fromLsn: Lsn | null;
  markSent: boolean;
  tombstones: boolean;
  /** Columns left out of the events or hashed (personal data), checked against the captured tables at the start. */
  columns: ColumnPolicy;
  /** Create the slot failover-enabled (PostgreSQL 17+; refused on older servers). */
  failover: boolean;
  /** Give up on an outage (PostgreSQL or Kafka away) after this long (`--retry-for`); undefined: never. */
  retryForMs: number | undefined;
  /** --heartbeat-interval in ms (heartbeat.ts); not with `once`. */
  heartbeatIntervalMs?: number;
  signal: AbortSignal;
  /** A heartbeat for /readyz (observability/health.ts): the confirmed LSN moved. */
  progressed?: () => void;
  logger: Logger;
}

export interface CaptureSummary {
  slot: string;
  topics: string[];
  /** Events read, by operation (a truncate counts once, though it is sent to every partition). */
  counts: Record<Operation, number>;
  /** Kafka messages read but not delivered (acknowledged and marked) before the stop: not confirmed, so sent again on restart. */
  undelivered: number;
  confirmed: Lsn;
}

const BATCH = { maxBatchBytes: 512 * 1024, maxBatchMessages: 5_000, highWaterBytes: 8 * 1024 * 1024, lowWaterBytes: 2 * 1024 * 1024 };
const STOP_FLUSH_MS = 10_000;
/** A closer that hangs on a dead connection must not hold up the next attempt. */
const CLOSE_TIMEOUT_MS = 10_000;

/** The first failure of an attempt, whichever part had it; `failed` rejects with it. */
class FirstFailure {
  error: Error | null = null;
  readonly failed: Promise<never>;
  private reject: (error: Error) => void = () => {};
  private readonly hooks: (() => void)[] = [];

  constructor() {
    this.failed = new Promise<never>((_, reject) => (this.reject = reject));
    this.failed.catch(() => {});
  }

  readonly fail = (error: Error): void => {
    if (this.error) return;
    this.error = error;
    for (const hook of this.hooks) hook();
    this.reject(error);
  };

  /** Runs on the first failure (at once when it already happened). */
  onFailure(hook: () => void): void {
    this.hooks.push(hook);
    if (this.error) hook();
  }
}


/** What the stages of one attempt share. `closers` run in reverse order when it ends. */
export interface Run {
  options: CaptureOptions;
  logger: Logger;
  closers: (() => Promise<unknown>)[];
  failure: FirstFailure;
  carried: Carried;
  admin: pg.Client;
  kafka: ReturnType<typeof createKafka>;
  checked: PreflightResult;
  decoder: ChangeDecoder;
  partitions: Map<CapturedTable, number>;
  /** `--once`: the WAL position at the start, which the stream must reach. */
  target: Lsn | null;
}

/** `cdc start`: the stages, run again after an outage (outages.ts). */
export function runCapture(options: CaptureOptions): Promise<CaptureSummary> {
  return rideThrough(options, attempt);
}

async function attempt(options: CaptureOptions, carried: Carried): Promise<CaptureSummary> {
  const closers: Run['closers'] = [];
  const failure = new FirstFailure();
  try {
    const run = await prepare(options, closers, failure, carried);
    const slot = await openSlot(run);
    const delivery = await deliver(run);
    const startLsn = await snapshot(run, slot, delivery);
    if (delivery.stopped()) return delivery.summary(startLsn);
    return await stream(run, startLsn, delivery);
  } finally {
    for (const close of closers.reverse()) await closeWithin(close, options.logger);
  }
}

async function closeWithin(close: () => Promise<unknown>, logger: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<void>((resolve) => (timer = setTimeout(() => {
    logger.warn({ timeoutMs: CLOSE_TIMEOUT_MS }, 'a connection did not close in time; left behind');
    resolve();
  }, CLOSE_TIMEOUT_MS)));
  await Promise.race([close().catch((error: Error) => logger.warn({ err: error.message }, 'while closing')), timedOut]);
  clearTimeout(timer);
}

async function prepare(options: CaptureOptions, closers: Run['closers'], failure: FirstFailure, carried: Carried): Promise<Run> {
  const { logger } = options;
  const admin = new pg.Client({ connectionString: options.databaseUrl, application_name: 'walbridge-cdc-admin' });
  // Mostly idle: a loss (server restart) is heard here, not on its next query.
  admin.on('error', failure.fail);
  await admin.connect();
  closers.push(() => admin.end());
  const checked = await preflight(admin, {
    tables: options.tables, replicaIdentity: options.replicaIdentity, slot: options.slot, markSent: options.markSent,
    fromLsn: options.fromLsn, resuming: carried.fromLsnChecked, snapshot: options.snapshot, snapshotExplicit: options.snapshotExplicit, failover: options.failover,
  });
  carried.fromLsnChecked = true;
  options.columns.check(checked.tables, 'captured (--table)');
  if (options.heartbeatIntervalMs !== undefined) checkHeartbeatSupport(checked.server);
  for (const table of checked.tables) await applyReplicaIdentity(admin, table, options.replicaIdentity, logger);
  const publication = await publishAndRequest(options, admin, checked);
  if (publication.created) logger.info({ publication: options.publication, tables: checked.tables.map((t) => t.qualified) }, 'created publication');
  if (publication.added.length > 0) {
    const requested = checked.slot !== null && options.snapshot !== 'none';
    logger.warn({ publication: options.publication, tables: publication.added.map((t) => t.qualified) },
      requested
        ? `added to the publication: their changes are captured from now on, and their rows are read by an incremental snapshot (--snapshot ${options.snapshot}) while the stream goes on`
        : 'added to the publication: their changes are captured from now on; rows they already had are not sent (snapshot them with cdc snapshot)');
  }
  carried.target ??= options.once ? parseLsn((await admin.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn) : null;

  // A quick probe: kafkajs alone would retry a refused connection for ~40 s before the outage is even seen.
  const unreachable = await brokersUnreachable(options.kafka);
  if (unreachable !== null) throw new KafkaUnreachable(unreachable);
  const kafka = createKafka(options.kafka, 'walbridge-cdc', logger);
  const decoder = new ChangeDecoder(checked.tables, {
    topicPrefix: options.topicPrefix, database: checked.database, markSent: options.markSent, tombstones: options.tombstones,
    missingValues: (table) => missingValues(admin, table), columns: options.columns,
  });
  const partitions = new Map<CapturedTable, number>();
  for (const table of checked.tables) partitions.set(table, await openTopic(kafka, decoder.topicOf(table), options, logger));
  await warnAboutTopics(kafka, checked.tables.map((t) => decoder.topicOf(t)), logger);
  return { options, logger, closers, failure, carried, admin, kafka, checked, decoder, partitions, target: carried.target };
}

/**
 * A missing slot is created (raising the snapshot flag first) before the
 * marker opens: walbridge's origin (the marker's) then only ever exists for a
 * slot that did, which is how preflight tells a lost slot from a new one.
 */
async function openSlot(run: Run): Promise<CreatedSlot | null> {
  const { options, admin, logger } = run;
  if (run.checked.slot !== null) return null;
  // Preflight made sure the role may raise and clear the flag.
  if (options.snapshot !== 'none') await raiseSnapshotFlag(admin, options.slot, options.snapshot);
  const slot = await createSlot(options.databaseUrl, options.slot, run.checked.server, { failover: options.failover });
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    await slot.release();
  };
  run.closers.push(release);
  logger.info({ slot: options.slot, consistentPoint: formatLsn(slot.consistentPoint), failover: options.failover }, 'created replication slot');
  return { ...slot, release };
}

interface Delivery {
  batcher: Batcher;
  gate: Gate;
  /** Rejects with the first failure of any part. */
  failed: Promise<never>;
  fail(error: Error): void;
  stopped(): boolean;
  push(change: DecodedChange, partition?: number): void;
  /** Set once the stream starts: from then on, delivery moves the confirmed LSN. */
  attach(checkpointer: Checkpointer, listener: Listener): void;
  summary(confirmed: Lsn): CaptureSummary;
}

async function deliver(run: Run): Promise<Delivery> {
  const { options, logger } = run;
  const producer: EventProducer = await connectProducer(options.kafka, 'walbridge-cdc');
  run.closers.push(() => producer.disconnect());
  let marker: Marker | null = null;
  const marked = run.checked.tables.filter((t) => t.sentFlag !== null);
  if (options.markSent && marked.length > 0) {
    marker = await openMarker(options.databaseUrl, options.slot, logger, run.failure.fail);
    run.closers.push(() => marker!.close());
  } else if (options.markSent) {
    // No captured table has the flag yet; one adopted while running may: open the marker then (marks are never dropped).
    marker = lazyMarker(() => openMarker(options.databaseUrl, options.slot, logger, run.failure.fail), run.closers);
  }
  logger.info({ marking: options.markSent ? marked.map((t) => t.qualified) : [] }, options.markSent ? 'marking sent_to_kafka on the tables that have it' : 'not marking sent_to_kafka');

  const { failure } = run;
  const { fail, failed } = failure;
  let checkpointer: Checkpointer | null = null;
  let listener: Listener | null = null;
  const gate = new Gate();
  failure.onFailure(() => {
    // Nothing after a failure is confirmed, not even by the final status on stop.
    checkpointer?.freeze();
    gate.open(); // a snapshot waiting on backpressure sees the failure and ends
  });
  options.signal.addEventListener('abort', () => gate.open(), { once: true });
  const { counts } = run.carried;
  const eventsTotal = cdcMetrics().events;
  let delivered = 0;
  const batcher = new Batcher({
    producer,
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
  return {
    batcher, gate, failed, fail,
    stopped: () => options.signal.aborted || failure.error !== null,
    push: (change, partition) => {
      batcher.push(change, partition);
      checkpointer?.submit(1);
      // A truncate counts once, though sent to each partition; a tombstone not at all.
      if (!partition && change.value !== null) {
        counts[change.op]++;
        eventsTotal.inc({ table: change.table.qualified, op: change.op });
      }
    },
    attach: (c, l) => {
      checkpointer = c;
      listener = l;
    },
    summary: (confirmed) => ({
      slot: options.slot, topics: run.checked.tables.map((t) => run.decoder.topicOf(t)), counts, undelivered: batcher.pushedCount - delivered, confirmed,
    }),
  };
}

/** The initial load of a created slot, or the rest of an interrupted one; returns where the stream starts. */
async function snapshot(run: Run, created: CreatedSlot | null, delivery: Delivery): Promise<Lsn> {
  const { options, logger, admin, checked, decoder } = run;
  const base = { databaseUrl: options.databaseUrl, tables: checked.tables, decoder, gate: delivery.gate, push: delivery.push, stopped: delivery.stopped, logger };
  let startLsn: Lsn;
  let done = true;
  if (created !== null) {
    try {
      if (options.snapshot !== 'none') {
        await readSnapshot({ ...base, snapshotName: created.snapshotName, mode: options.snapshot, consistentPoint: created.consistentPoint });
        done = !delivery.stopped();
      }
    } finally {
      await created.release();
    }
    startLsn = created.consistentPoint;
  } else {
    const confirmed = checked.slot!.confirmedFlush ?? 0n;
    startLsn = options.fromLsn === null ? confirmed : maxLsn(confirmed, options.fromLsn);
    const pending = checked.pendingSnapshot;
    if (pending !== null) {
      // The mode it was started with, whatever --snapshot says now (it applies to a slot's creation only).
      logger.warn({ slot: options.slot, mode: pending }, `the initial snapshot of this slot was interrupted: reading the remaining rows again, as --snapshot ${pending}`);
      await readSnapshot({ ...base, snapshotName: null, mode: pending, consistentPoint: confirmed });
      done = !delivery.stopped();
    }
  }
  await Promise.race([delivery.batcher.drain(), delivery.failed]);
  if (done) await clearSnapshotFlag(admin, options.slot);
  return startLsn;
}

async function stream(run: Run, startLsn: Lsn, delivery: Delivery): Promise<CaptureSummary> {
  const { options, logger, target } = run;
  const incremental = supportsWatermarks(run.checked.server);
  let snapshots: SnapshotStage | null = null;
  let heartbeat: Heartbeat | null = null;
  const checkpointer = new Checkpointer(startLsn, delivery.batcher.pushedCount);
  run.carried.confirmed = startLsn;
  let reachedTarget: () => void = () => {};
  const targetReached = new Promise<void>((resolve) => (reachedTarget = resolve));
  if (target !== null && startLsn >= target) reachedTarget();
  const freshness = commitFreshness();
  cdcMetrics().confirmedLsn.set(lsnValue(startLsn)); // not 0 until the first confirmation: rate() would see a jump
  const listener = new Listener({
    databaseUrl: options.databaseUrl,
    slot: options.slot,
    publication: options.publication,
    ownOrigin: originName(options.slot),
    decoder: run.decoder,
    checkpointer,
    partitionsOf: (table) => run.partitions.get(table) ?? 1,
    push: (change, partition) => {
      snapshots?.observe(change.table.qualified, change.key, change.xid);
      delivery.push(change, partition);
    },
    onCommit: freshness.committed,
    onConfirmed: (lsn) => {
      run.carried.confirmed = lsn;
      freshness.confirmed(lsn);
      heartbeat?.confirmed(lsn);
      cdcMetrics().confirmedLsn.set(lsnValue(lsn));
      options.progressed?.();
      if (target !== null && lsn >= target) reachedTarget();
    },
    onFailure: delivery.fail,
    statusIntervalMs: options.once ? 1_000 : 10_000,
    pingOnInterval: options.once,
    ...(incremental ? {
      onLogicalMessage: (message, txn) => {
        heartbeat?.onLogicalMessage(message, txn);
        snapshots?.onLogicalMessage(message, txn);
      },
    } : {}),
  });
  delivery.attach(checkpointer, listener);
  logger.info({ slot: options.slot, publication: options.publication, tables: run.checked.tables.map((t) => t.qualified), from: formatLsn(startLsn) }, 'streaming');
  const aborted = new Promise<void>((resolve) => options.signal.addEventListener('abort', () => resolve(), { once: true }));
  const running = listener.run(startLsn).then(() => {
    if (!delivery.stopped()) throw new StreamEnded();
  });
  running.catch(delivery.fail);
  try {
    await Promise.race([listener.started, aborted, delivery.failed]);
    if (!delivery.stopped()) run.carried.recovered(startLsn);
    if (options.heartbeatIntervalMs !== undefined && !options.once && !delivery.stopped()) {
      heartbeat = startHeartbeat({ databaseUrl: options.databaseUrl, slot: options.slot, intervalMs: options.heartbeatIntervalMs, logger });
    }
    if (incremental && !delivery.stopped()) {
      snapshots = await startSnapshotStage({
        databaseUrl: options.databaseUrl,
        slot: options.slot,
        server: run.checked.server,
        selection: options.tables,
        adopt: (name) => adopt(run, name),
        encode: (table, columns, row, version) =>
          run.decoder.snapshotRow(run.decoder.snapshotLayout(table, columns), row, { version, txId: null, tsMs: Date.now() }, 'incremental'),
        push: delivery.push,
        delivered: () => delivery.batcher.drain(),
        untilIdle: options.once,
        onFailure: delivery.fail,
        logger,
      });
    }
    await Promise.race([targetReached, aborted, delivery.failed]);
    if (snapshots && options.once) await Promise.race([snapshots.idle, aborted, delivery.failed]);
    // Orderly stop: no new chunk; no more reading; deliver what was read; confirm it.
    await snapshots?.stop();
    listener.hold();
    await Promise.race([delivery.batcher.drain(), delivery.failed, new Promise((resolve) => setTimeout(resolve, STOP_FLUSH_MS).unref())]);
  } finally {
    await heartbeat?.stop();
    await snapshots?.stop();
    await listener.stop();
  }
  logger.info({ confirmed: formatLsn(checkpointer.confirmed), skippedOwnChanges: listener.skippedOwnChanges }, 'stopped');
  return delivery.summary(checkpointer.confirmed);
}

/**
 * A marker opened on its first use (its session holds walbridge's replication
 * origin, so it is not opened for nothing). Its closer is registered at once:
 * once the attempt is torn down, a late mark (an ack that was in flight) is
 * refused rather than opening a session nobody would close, which would hold
 * the origin against the next attempt.
 */
function lazyMarker(open: () => Promise<Marker>, closers: Run['closers']): Marker {
  let opened: Promise<Marker> | null = null;
  let closed = false;
  closers.push(async () => {
    closed = true;
    if (opened) await (await opened).close();
  });
  return {
    mark: async (keys, writers) => {
      if (closed) throw new Error('marking after the attempt was torn down (nothing is confirmed by it)');
      opened ??= open();
      await (await opened).mark(keys, writers);
    },
    close: async () => {},
  };
}
