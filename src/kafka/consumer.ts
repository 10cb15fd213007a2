/**
 * Reading a set of topics with a consumer group, offsets committed by the
 * caller. The set is fixed for the reader's life: kafkajs matches a regex
 * subscription only against topics existing at subscribe time, so the sink
 * opens a new reader (after flushing and committing) when its selection grows.
 *
 * Contract of run(handler):
 * - the handler gets the fetched messages one partition batch at a time, the
 *   next batch only after its promise resolved (that is the backpressure);
 *   within a partition, offsets only increase;
 * - the handler calls `taken(offset)` for each message it took: only those
 *   are fetched past; a message not taken is fetched again;
 * - while it waits longer than a few seconds it calls `keepAlive()` (the
 *   group heartbeat; kafkajs has no background heartbeat). keepAlive throws
 *   when the group is rebalancing: let it propagate.
 * - nothing is ever committed automatically. commit() writes the given next
 *   offsets for partitions this member is assigned, never moving an offset
 *   backwards, also past what another member committed while it held the
 *   partition (the group's offsets are read again at every rebalance); a
 *   commit refused because the group is rebalancing is skipped (the messages
 *   are read again, and applying them is idempotent).
 * - `generation` counts the group's rebalances as this member sees them (one
 *   more when a rebalance starts, one more when it has its new assignment,
 *   one more when kafkajs restarts the consumer after a broker failure).
 *   A batch kafkajs fetches between a rebalance's start and its new
 *   assignment is refused, so that it rejoins (see `rejoinPending`); so is
 *   a batch that starts past where this member's reading of its partition
 *   stands in this generation (see `nextExpected`).
 * - rewind(topic, partition): rows of the partition read in an earlier
 *   generation were dropped; the reader makes sure they are fetched again.
 *   kafkajs has no revocation callback; with its eager protocol every
 *   partition is revoked at a rebalance and fetched again from its committed
 *   offset, so a message read in an earlier generation must not be written
 *   any more: its partition's owner now applies it again, in order.
 */
import kafkajs from 'kafkajs';
import type { Logger } from '../observability/logger.js';
import type { Kafka } from './client.js';
import { subscriptionAssigner } from './subscription-assigner.js';

export interface ConsumedMessage {
  topic: string;
  partition: number;
  offset: bigint;
  key: Buffer | null;
  value: Buffer | null;
  headers: kafkajs.IHeaders;
}

export interface BatchControl {
  /** Offset of the batch's last record, control records included (they never reach the handler). */
  lastOffset: bigint;
  taken(offset: bigint): void;
  keepAlive(): Promise<void>;
}

export type BatchHandler = (topic: string, partition: number, messages: ConsumedMessage[], control: BatchControl) => Promise<void>;

/** topic → partition → offset. */
export type TopicOffsets = ReadonlyMap<string, ReadonlyMap<number, bigint>>;

export interface TopicReader {
  run(handler: BatchHandler): Promise<void>;
  commit(nextOffsets: TopicOffsets): Promise<void>;
  /** Leaves the group; call after the last commit. */
  disconnect(): Promise<void>;
  /** Called when kafkajs gives up (a crash it will not restart from). */
  onFatal(listener: (error: Error) => void): void;
  /** The current group generation, as this member counts it (see above). */
  readonly generation: number;
  /** Rows of this partition read in an earlier generation were dropped: have it read again from its committed offset. */
  rewind(topic: string, partition: number): void;
}

const REBALANCE_ERRORS = new Set(['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'NOT_COORDINATOR']);

/**
 * Why Kafka did not take an offset commit that is safe to skip, else
 * undefined (an authorization error, say, which must stop the sink).
 * kafkajs retries a commit first; when it gives up, the broker's error is the
 * cause (retries exhausted, or a non-retriable one such as ILLEGAL_GENERATION,
 * which a rebalance under a commit gives).
 */
export function commitNotTaken(error: unknown): string | undefined {
  const chain: { name?: string; type?: string; retriable?: boolean }[] = [];
  for (let e = error as { cause?: unknown; originalError?: unknown } | undefined; e && chain.length < 5; e = (e.cause ?? e.originalError) as typeof e) {
    chain.push(e as (typeof chain)[number]);
  }
  const type = chain.find((e) => e.type)?.type ?? '';
  if (REBALANCE_ERRORS.has(type)) return `group is rebalancing (${type})`;
  // A coordinator that died or moved (a broker killed, restarted): retried by kafkajs until it gave up.
  if (chain.some((e) => e.retriable === true || e.name === 'KafkaJSNumberOfRetriesExceeded')) return 'Kafka did not answer it';
  return undefined;
}

/** An error kafkajs' runner answers by rejoining the group (it checks the protocol error type). */
function rebalanceNeeded(): Error {
  return Object.assign(new kafkajs.KafkaJSError('rejoin needed after a rebalance that did not complete', { retriable: false }), { type: 'REBALANCE_IN_PROGRESS' });
}

/** The group's session timeout unless --session-timeout-ms says otherwise (kafkajs' default too). */
export const DEFAULT_SESSION_TIMEOUT_MS = 30_000;

export async function openTopicReader(
  kafka: Kafka,
  options: { topics: readonly string[]; groupId: string; logger: Logger; sessionTimeoutMs?: number | undefined },
): Promise<TopicReader> {
  const { topics, groupId, logger } = options;
  const sessionTimeout = options.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS;
  const consumer = kafka.consumer({
    groupId,
    allowAutoTopicCreation: false,
    // How long a member that died (kill -9, a lost host) keeps its
    // partitions before the broker gives them to the others.
    sessionTimeout,
    // Kafka's rule of thumb: at most a third of the session timeout.
    heartbeatInterval: Math.min(3_000, Math.floor(sessionTimeout / 3)),
    // Small fetches: each message's value is a view of its fetch response, so
    // the rows of an unwritten batch pin whole responses (the sink's peak RSS
    // grew with the backlog at 16 MB). The broker still returns a larger
    // record batch whole, so big messages pass.
    maxBytesPerPartition: 1024 * 1024,
    maxBytes: 4 * 1024 * 1024,
    // Leaving the group waits for the fetch in flight: a long poll would
    // add its whole wait to every --once run and every SIGTERM.
    maxWaitTimeInMs: 1_000,
    partitionAssigners: [subscriptionAssigner, kafkajs.PartitionAssigners.roundRobin],
  });
  const assigned = new Map<string, Set<number>>();
  const committed = new Map<string, Map<number, bigint>>();
  const fatalListeners: ((error: Error) => void)[] = [];
  // Where kafkajs starts each partition in this generation: its committed offset, or the log's start
  // when there is none or retention removed it (topic\0partition → offset). Empty when unknown.
  const startAt = new Map<string, bigint>();
  // The offset this member must be delivered next, per partition, in this generation: one past the
  // last message taken (before the first, startAt). kafkajs can rejoin from inside a fetcher (stale
  // metadata after a broker died) without REBALANCING, and a batch another fetcher read from the old
  // positions then arrives after the rejoin; taking it would move past messages whose rows the fence
  // dropped. A batch that starts past this offset is refused with a rebalance error instead.
  const nextExpected = new Map<string, bigint>();
  // Partitions sought back while a rejoin was pending; sought again to their start at the next join,
  // since kafkajs keeps a seek of a partition it no longer holds until it next fetches it.
  const soughtBack = new Set<string>();
  // A batch still being written when its partition moved away and came back
  // holds offsets that another member may have committed past meanwhile.
  let committedRead: Promise<void> = Promise.resolve();
  let readingCommitted = false;
  let reads = 0;
  const readCommitted = async (): Promise<void> => {
    const read = ++reads; // a read a later join started supersedes this one
    startAt.clear();
    const starts = new Map<string, bigint>();
    try {
      const groupCommitted = await groupOffsets(kafka, groupId, topics);
      for (const [topic, offsets] of groupCommitted) {
        const known = committed.get(topic) ?? new Map<number, bigint>();
        committed.set(topic, known);
        for (const [partition, offset] of offsets) if (offset > (known.get(partition) ?? -1n)) known.set(partition, offset);
      }
      for (const [topic, lows] of await logStartOffsets(kafka, topics)) {
        for (const [partition, low] of lows) {
          const offset = groupCommitted.get(topic)?.get(partition) ?? -1n;
          starts.set(partitionKey(topic, partition), offset > low ? offset : low);
        }
      }
    } catch (error) {
      // The offsets known from earlier reads and this member's commits stand in: at worst too low,
      // which costs a refused batch and a rejoin, never a skipped message.
      for (const [topic, offsets] of committed) for (const [partition, offset] of offsets) starts.set(partitionKey(topic, partition), offset);
      logger.warn(`could not read group ${groupId}'s committed offsets after a rebalance: ${(error as Error).message}`);
    }
    if (read !== reads) return;
    for (const [slot, offset] of starts) startAt.set(slot, offset);
  };
  // To the later of the join's start and this member's own last commit: everything before either is written.
  const seekToStart = (topic: string, partition: number): boolean => {
    const known = [startAt.get(partitionKey(topic, partition)), committed.get(topic)?.get(partition)].filter((o) => o !== undefined);
    if (known.length === 0) return false;
    const start = known.reduce((a, b) => (a > b ? a : b));
    consumer.seek({ topic, partition, offset: start.toString() });
    return true;
  };
  let generation = 0;
  // Between kafkajs' REBALANCING and the GROUP_JOIN that ends it. kafkajs treats NOT_COORDINATOR (the
  // coordinator's broker died or moved) as a rebalance, but when the rejoin that follows fails it
  // resumes fetching with the old assignment and its in-memory positions, past messages whose rows the
  // fence dropped: a 30-minute chaos run lost 100 rows that way. A batch that arrives while a rejoin
  // is pending is therefore refused with a rebalance error, so kafkajs rejoins, and every partition is
  // read again from its committed offset.
  let rejoinPending = false;
  // What this member held before the pending rejoin: kafkajs goes on fetching it when the rejoin fails.
  let heldBeforeRejoin = new Map<string, Set<number>>();
  consumer.on(consumer.events.REBALANCING, () => {
    generation += 1;
    rejoinPending = true;
    if (assigned.size > 0) heldBeforeRejoin = new Map(assigned);
    assigned.clear();
  });
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    generation += 1;
    rejoinPending = false;
    assigned.clear();
    nextExpected.clear();
    for (const [topic, partitions] of Object.entries(payload.memberAssignment)) assigned.set(topic, new Set(partitions));
    const held = new Map(assigned);
    readingCommitted = true;
    const reading = readCommitted().then(() => {
      for (const [topic, partitions] of held) {
        for (const partition of partitions) {
          if (soughtBack.has(partitionKey(topic, partition)) && seekToStart(topic, partition)) soughtBack.delete(partitionKey(topic, partition));
        }
      }
      if (committedRead === reading) readingCommitted = false;
    });
    committedRead = reading;
    const text = [...assigned].map(([topic, partitions]) => `${topic} [${[...partitions].join(', ')}]`).join(', ');
    logger.info(`joined group ${groupId}: assigned ${text || 'nothing'}`);
  });
  consumer.on(consumer.events.RECEIVED_UNSUBSCRIBED_TOPICS, ({ payload }) => {
    // Only with a member that still uses kafkajs' round robin (an older walbridge): see subscription-assigner.ts.
    logger.warn(`group ${groupId} gave this member partitions of topics it does not read (${payload.topicsNotSubscribed.join(', ')}), ` +
      'so the group leader reads other topics and assigns without looking at subscriptions: partitions may go unread. ' +
      'Give each sink with its own topic selection its own --group.');
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (!payload.restart) {
      for (const listener of fatalListeners) listener(payload.error);
      return;
    }
    // kafkajs restarts the consumer (a broker it needed died) and rejoins the group. Until then it has
    // no group: a commit would throw "Consumer group was not initialized", so nothing is assigned, and
    // what was read before belongs to an old generation (read again after the rejoin).
    generation += 1;
    assigned.clear();
    nextExpected.clear();
    logger.warn({ err: payload.error.message }, `consumer restarting after a Kafka failure; rejoining group ${groupId} (messages in hand are read again)`);
  });
  consumer.on(consumer.events.START_BATCH_PROCESS, ({ payload }) => {
    // A batch of control records or compacted-away messages only: kafkajs moves past it itself, without
    // eachBatch. (walbridge's cdc writes neither; a topic written by another producer may hold them.)
    if (payload.batchSize === 0) nextExpected.set(partitionKey(payload.topic, payload.partition), BigInt(payload.lastOffset) + 1n);
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [...topics], fromBeginning: true });

  return {
    async run(handler) {
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 1,
        eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
          if (rejoinPending) {
            logger.warn(`Kafka resumed fetching for group ${groupId} without the rejoin its rebalance needs; rejoining (messages in hand are read again)`);
            throw rebalanceNeeded();
          }
          const readIn = generation;
          if (readingCommitted) await keepingAlive(committedRead, heartbeat); // this generation's start offsets
          if (generation !== readIn) return; // a rejoin completed meanwhile: nothing taken, so fetched again
          const slot = partitionKey(batch.topic, batch.partition);
          // Batch.fetchedOffset: the offset kafkajs asked for (not in its type definitions).
          const fetched = BigInt((batch as unknown as { fetchedOffset: string }).fetchedOffset);
          const expected = nextExpected.get(slot) ?? startAt.get(slot);
          if (expected !== undefined && fetched > expected) {
            logger.warn(`Kafka delivered ${batch.topic} [${batch.partition}] from offset ${fetched}, past offset ${expected} where this member's ` +
              `reading of it stands (a batch fetched before a rejoin); rejoining so that it is read from its committed offset`);
            throw rebalanceNeeded();
          }
          const messages: ConsumedMessage[] = batch.messages.map((m) => ({
            topic: batch.topic,
            partition: batch.partition,
            offset: BigInt(m.offset),
            key: m.key,
            value: m.value,
            headers: m.headers ?? {},
          }));
          const lastOffset = BigInt(batch.lastOffset());
          let lastTaken: bigint | undefined;
          try {
            await handler(batch.topic, batch.partition, messages, {
              lastOffset,
              taken: (offset) => {
                // Read before a rejoin that completed meanwhile (kafkajs rejoins from its fetchers too): its
                // rows are dropped, so kafkajs' new positions must not move past it.
                if (generation !== readIn) return;
                resolveOffset(offset.toString());
                lastTaken = offset;
              },
              keepAlive: heartbeat,
            });
          } finally {
            if (lastTaken !== undefined && generation === readIn) {
              // kafkajs resolves the batch's last offset (control records after it) when its last message is taken.
              nextExpected.set(slot, (lastTaken === messages.at(-1)?.offset ? lastOffset : lastTaken) + 1n);
            }
          }
        },
      });
    },
    async commit(nextOffsets) {
      await committedRead;
      const partitions = [...nextOffsets].flatMap(([topic, offsets]) => [...offsets]
        .filter(([partition, offset]) => assigned.get(topic)?.has(partition) && offset > (committed.get(topic)?.get(partition) ?? -1n))
        .map(([partition, offset]) => ({ topic, partition, offset: offset.toString() })));
      if (partitions.length === 0) return;
      try {
        await consumer.commitOffsets(partitions);
      } catch (error) {
        const skipped = commitNotTaken(error);
        if (skipped === undefined) throw error;
        // Nothing is lost by a commit not made: the next one covers these offsets, or the
        // partition's next owner reads the messages again, and applying them is idempotent.
        logger.warn({ err: (error as Error).message }, `offset commit skipped, ${skipped}; those messages will be read again if this member loses the partition first`);
        return;
      }
      for (const { topic, partition, offset } of partitions) {
        const known = committed.get(topic) ?? new Map<number, bigint>();
        committed.set(topic, known);
        known.set(partition, BigInt(offset));
      }
    },
    async disconnect() {
      await consumer.disconnect();
    },
    onFatal(listener) {
      fatalListeners.push(listener);
    },
    get generation() {
      return generation;
    },
    rewind(topic, partition) {
      // After a join kafkajs reads every partition from its committed offset (nextExpected holds it to
      // that). While a rejoin is pending it may go on fetching the old assignment past the dropped rows,
      // and only a fetched batch (refused) makes it rejoin: seek back, so that one comes at once.
      if (!rejoinPending || !heldBeforeRejoin.get(topic)?.has(partition)) return;
      if (seekToStart(topic, partition)) soughtBack.add(partitionKey(topic, partition));
    },
  };
}

/** One string per topic partition, for maps keyed by both. */
export function partitionKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

/**
 * kafkajs' admin.fetchOffsets does not retry, and for a few seconds after a
 * broker starts its group coordinator answers "the coordinator is loading"
 * (retriable): seen failing `sink --once` on a fresh test stack.
 */
const FETCH_OFFSETS_ATTEMPTS = 30;
const FETCH_OFFSETS_RETRY_MS = 500;

/** The group's committed next offset per topic and partition (partitions without one are absent). */
export async function groupOffsets(kafka: Kafka, groupId: string, topics: readonly string[]): Promise<Map<string, Map<number, bigint>>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const result = new Map<string, Map<number, bigint>>();
    for (const entry of await fetchOffsetsRetrying(() => admin.fetchOffsets({ groupId, topics: [...topics] }))) {
      const offsets = new Map<number, bigint>();
      for (const { partition, offset } of entry.partitions) {
        if (BigInt(offset) >= 0n) offsets.set(partition, BigInt(offset));
      }
      result.set(entry.topic, offsets);
    }
    return result;
  } finally {
    await admin.disconnect();
  }
}

/** The first offset still in the log, per topic and partition (retention moves it). */
async function logStartOffsets(kafka: Kafka, topics: readonly string[]): Promise<Map<string, Map<number, bigint>>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const result = new Map<string, Map<number, bigint>>();
    for (const topic of topics) {
      const offsets = await fetchOffsetsRetrying(() => admin.fetchTopicOffsets(topic));
      result.set(topic, new Map(offsets.map((o) => [o.partition, BigInt(o.low)])));
    }
    return result;
  } finally {
    await admin.disconnect();
  }
}

/** Waits for `work`, sending the group heartbeat every 2 s meanwhile (it throws when the group rebalances). */
async function keepingAlive(work: Promise<void>, heartbeat: () => Promise<void>): Promise<void> {
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const tick = new Promise<'tick'>((resolve) => (timer = setTimeout(() => resolve('tick'), 2_000)));
    const outcome = await Promise.race([work.then(() => 'done' as const), tick]);
    clearTimeout(timer);
    if (outcome === 'done') return;
    await heartbeat();
  }
}

async function fetchOffsetsRetrying<T>(fetch: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await fetch();
    } catch (error) {
      if ((error as { retriable?: boolean }).retriable !== true || attempt >= FETCH_OFFSETS_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, FETCH_OFFSETS_RETRY_MS));
    }
  }
}

/** Removes a consumer group that has no members (a replay's throwaway group). */
export async function deleteGroup(kafka: Kafka, groupId: string): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.deleteGroups([groupId]);
  } finally {
    await admin.disconnect();
  }
}
