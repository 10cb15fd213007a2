/**
 * Puts the sink together for the three ways it runs:
 * - start (follow): consumer group, commits, until a signal;
 * - start --once (drain): consumer group, commits, up to the end offsets
 *   taken at start;
 * - replay: a throwaway consumer group (deleted afterwards) reading every
 *   partition from its beginning to the end offsets taken at start, no
 *   commits, applying only events whose version >= --from-lsn. The live
 *   group's offsets are never touched; applying is idempotent;
 * - dlq (`sink dlq replay`): the dead-letter topics `<topic>.dlq` of the
 *   selected topics, drained to the end offsets taken at start with their
 *   own group (`<group>-dlq`, committed), each letter applied to its source
 *   topic's table by the same worker and applier. A letter that fails again
 *   goes back to the end of its DLQ topic (dead-letter.ts), past the drain
 *   target, so a run always ends.
 *
 * The topics are the selection's (table-selection.ts), each into its own
 * ClickHouse table. kafkajs subscribes to a fixed topic list, so in follow
 * mode the topic list is polled every TOPIC_POLL_MS: when new topics match,
 * the worker stops (writing and committing the batch in hand) and a new one
 * subscribes to the grown list.
 */
import { randomBytes } from 'node:crypto';
import { redactUrl } from '../config/connections.js';
import { ConfigError } from '../core/exit-codes.js';
import { deadLetterTopic } from '../core/envelope.js';
import type { KafkaConnection } from '../config/kafka.js';
import { createKafka, type Kafka } from '../kafka/client.js';
import { deleteGroup, groupOffsets, openTopicReader } from '../kafka/consumer.js';
import { recordConsumerLag, retentionLosses } from '../kafka/consumer-lag.js';
import { checkTopics } from '../kafka/topic-settings.js';
import { declareDependency, retryMetrics } from '../observability/metrics.js';
import { DeadLetterProducer } from '../kafka/dead-letter.js';
import { listTopics, topicOffsets } from '../kafka/topics.js';
import type { Logger } from '../observability/logger.js';
import type { BatchLimits } from './row-batch.js';
import { retryWithBackoff, RetryGaveUp } from '../core/retry.js';
import { installShutdown } from '../core/shutdown.js';
import { BatchApplier } from './batch-applier.js';
import { openClickHouse } from './clickhouse/client.js';
import { checkCluster, type Cluster } from './clickhouse/cluster.js';
import { detectFeatures } from './clickhouse/schema.js';
import { ClickHouseWriter } from './clickhouse/writer.js';
import { isTransientClickHouseError } from './clickhouse/errors.js';
import { emptyTotals, SinkWorker, type SinkTotals } from './sink-worker.js';
import { TableTarget, type TargetContext } from './table-target.js';
import type { SelectedTopic, TableSelection } from './table-selection.js';

export interface SinkRunOptions {
  kafka: KafkaConnection;
  clickhouseUrl: string;
  /** The CA to trust for an https ClickHouse URL (--clickhouse-ca). */
  clickhouseCaFile?: string | undefined;
  selection: TableSelection;
  groupId: string;
  limits: BatchLimits;
  mode: 'follow' | 'drain' | 'replay' | 'dlq';
  /** --max-dead-letter-ratio (batch-applier.ts). */
  maxDeadLetterRatio: number;
  /** Replay: apply only events with version >= this. */
  fromVersion: bigint;
  /** --cluster: the cluster the sink creates its tables on (clickhouse/cluster.ts). */
  cluster?: Cluster;
  /** Create a missing ClickHouse table from the events' schema header. */
  createTables: boolean;
  /** How long to wait for an unreachable ClickHouse before failing (--wait-timeout); undefined: for ever. */
  waitTimeoutMs?: number | undefined;
  /** The consumer group's session timeout (--session-timeout-ms); undefined: the default. */
  sessionTimeoutMs?: number | undefined;
  /** A heartbeat for /readyz (observability/health.ts). */
  progressed?: () => void;
  logger: Logger;
}

export interface SinkRunResult {
  totals: SinkTotals;
  /** The topics read (the source topics, for a dlq replay), with their tables. */
  topics: SelectedTopic[];
}

const TOPIC_POLL_MS = 5_000;
const LAG_POLL_MS = 10_000;
const DISCONNECT_TIMEOUT_MS = 5_000;

/** Waits for `promise` at most `ms`; past that, calls onTimeout and resolves. */
async function withTimeout(promise: Promise<void>, ms: number, onTimeout: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      onTimeout();
      resolve();
    }, ms);
  });
  try {
    await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The selected topics that exist now (exact names included only once created). */
async function existingSelection(kafka: Kafka, selection: TableSelection): Promise<{ selected: SelectedTopic[]; missing: string[] }> {
  const existing = new Set(await listTopics(kafka));
  const all = selection.select([...existing]);
  return { selected: all.filter((t) => existing.has(t.topic)), missing: all.filter((t) => !existing.has(t.topic)).map((t) => t.topic) };
}

/** End offsets to drain to, per topic and partition, for partitions with something left to read. */
async function drainTargets(kafka: Kafka, groupId: string, topics: string[], replay: boolean): Promise<Map<string, Map<number, bigint>>> {
  const committed = replay ? new Map<string, Map<number, bigint>>() : await groupOffsets(kafka, groupId, topics);
  const drainTo = new Map<string, Map<number, bigint>>();
  for (const topic of topics) {
    const ends = new Map<number, bigint>();
    for (const { partition, high, low } of await topicOffsets(kafka, topic)) {
      const start = committed.get(topic)?.get(partition) ?? low;
      if ((start > low ? start : low) < high) ends.set(partition, high);
    }
    if (ends.size > 0) drainTo.set(topic, ends);
  }
  return drainTo;
}

export async function runSink(options: SinkRunOptions): Promise<SinkRunResult> {
  const { logger, selection } = options;
  const shutdown = installShutdown(logger);
  const kafka = createKafka(options.kafka, 'walbridge-sink', logger);
  const { client, database } = openClickHouse(options.clickhouseUrl, { caFile: options.clickhouseCaFile });
  const clickhouseName = redactUrl(options.clickhouseUrl);
  const dlq = new DeadLetterProducer(kafka, options.mode === 'dlq');
  declareDependency('clickhouse');
  try {
    // Nothing is held yet at the start, so the first signal is enough to give up waiting.
    const waitForClickHouse = <T>(what: string, operation: () => Promise<T>): Promise<T> =>
      retryWithBackoff(operation, {
        waitingFor: `ClickHouse at ${clickhouseName}`, holding: what, isTransient: isTransientClickHouseError, dependency: 'clickhouse', logger, signal: shutdown.stopSignal,
        giveUpAfterMs: options.waitTimeoutMs,
      });
    const features = await waitForClickHouse('the start (reading the server version)', () => detectFeatures(client)).catch((error: unknown) => {
      throw neverReached(error, clickhouseName);
    });
    const cluster = options.cluster;
    if (cluster !== undefined) await checkCluster(client, cluster);
    const writer = new ClickHouseWriter(client, database, features.omittedFieldDefaults, cluster);
    await waitForClickHouse('the start', () => writer.ensureTruncatesTable(logger));
    const context: TargetContext = { client, database, features, writer, createTables: options.createTables, cluster, logger };
    const targets = new Map<string, TableTarget>();
    const totals = emptyTotals();

    let { selected, missing } = await existingSelection(kafka, selection);
    if (options.mode !== 'follow' && missing.length > 0) {
      throw new ConfigError(`topic ${missing.join(', ')} does not exist (is cdc running? are --topic-prefix/--table/--topic right?)`);
    }
    if (options.mode !== 'follow' && selected.length === 0) throw new ConfigError(`no topic matches ${selection.describe()}`);
    if (selected.length === 0) {
      logger.warn(`waiting for a topic of ${selection.describe()} to exist (is cdc running? is --topic-prefix/--table/--topic right?)`);
      while (selected.length === 0) {
        const stopped = await Promise.race([shutdown.requested.then(() => true), delay(TOPIC_POLL_MS).then(() => false)]);
        if (stopped) return { totals, topics: [] };
        ({ selected, missing } = await existingSelection(kafka, selection));
      }
    }

    const replay = options.mode === 'replay';
    const groupId = replay ? `${options.groupId}-replay-${randomBytes(4).toString('hex')}`
      : options.mode === 'dlq' ? `${options.groupId}-dlq` : options.groupId;
    if (options.mode === 'dlq') {
      const existing = new Set(await listTopics(kafka));
      selected = selected.filter((t) => existing.has(deadLetterTopic(t.topic)));
      if (selected.length === 0) {
        logger.info(`no dead-letter topic for ${selection.describe()}: nothing to replay`);
        return { totals, topics: [] };
      }
    }
    /** The topic read for a selected topic: itself, or its dead letters. */
    const readTopic = (t: SelectedTopic): string => options.mode === 'dlq' ? deadLetterTopic(t.topic) : t.topic;
    const watchLag = lagWatcher(kafka, groupId, options.progressed, logger);
    const applier = new BatchApplier(writer, targets, dlq, logger, clickhouseName, shutdown.abortSignal, shutdown.stopSignal, options.waitTimeoutMs,
      options.maxDeadLetterRatio);
    // One round per topic set: when new topics appear, the round ends (flushed, committed) and the next subscribes to all.
    for (;;) {
      const topics = selected.map(readTopic);
      const routes = new Map<string, TableTarget>();
      for (const selectedTopic of selected) {
        const { targetTable } = selectedTopic;
        let target = targets.get(targetTable);
        if (!target) targets.set(targetTable, (target = new TableTarget(targetTable, context)));
        routes.set(readTopic(selectedTopic), target);
      }
      const drainTo = options.mode === 'follow' ? undefined : await drainTargets(kafka, groupId, topics, replay);
      if (drainTo && drainTo.size === 0) return { totals, topics: selected };

      await warnAboutRetention(kafka, topics, replay ? null : groupId, logger);
      logger.info(`reading ${topics.join(', ')} into ClickHouse ${selected.map((t) => t.targetTable).join(', ')}`);
      const reader = await openTopicReader(kafka, { topics, groupId, logger, sessionTimeoutMs: options.sessionTimeoutMs });
      const worker = new SinkWorker(reader, routes, applier, logger, { limits: options.limits, drainTo, commit: !replay, fromVersion: options.fromVersion }, totals);
      void shutdown.requested.then(() => worker.stop());
      const progress = setInterval(() => logProgress(logger, worker.totals), 10_000).unref();
      const lagPoll = replay ? undefined : setInterval(() => watchLag(topics), LAG_POLL_MS).unref();
      let grown: SelectedTopic[] = [];
      let pollError: Error | undefined;
      const poll = options.mode === 'follow' ? setInterval(() => {
        existingSelection(kafka, selection).then((now) => {
          grown = now.selected.filter((t) => !topics.includes(t.topic));
          if (grown.length > 0) {
            logger.info(`new topic(s) ${grown.map((t) => t.topic).join(', ')}: writing and committing what is in hand, then re-subscribing`);
            selected = now.selected;
            worker.stop();
          }
        }).catch((error: unknown) => {
          if (error instanceof ConfigError) {
            worker.stop();
            grown = [];
            pollError = error;
          } else {
            logger.warn(`could not list topics: ${(error as Error).message}`);
          }
        });
      }, TOPIC_POLL_MS) : undefined;
      try {
        worker.start();
        await worker.done;
      } finally {
        clearInterval(progress);
        clearInterval(lagPoll);
        clearInterval(poll);
        await withTimeout(reader.disconnect(), DISCONNECT_TIMEOUT_MS, () =>
          logger.warn(`leaving consumer group ${groupId} took over ${DISCONNECT_TIMEOUT_MS / 1000}s; exiting anyway (offsets are already committed)`));
        if (replay) await deleteGroup(kafka, groupId).catch((error: unknown) => logger.warn(`could not delete replay group ${groupId}: ${(error as Error).message}`));
      }
      if (worker.error) throw worker.error;
      if (pollError) throw pollError;
      if (grown.length === 0 || shutdown.stopSignal.aborted) return { totals, topics: selected };
    }
  } finally {
    shutdown.dispose();
    await dlq.close();
    await client.close();
  }
}

/** ClickHouse never answered at all: a wrong address is the user's to fix (exit 2), not a runtime failure. */
function neverReached(error: unknown, clickhouseName: string): unknown {
  const code = (error instanceof RetryGaveUp ? error.lastError as { code?: string } : undefined)?.code;
  if (code !== 'ECONNREFUSED' && code !== 'ENOTFOUND' && code !== 'EAI_AGAIN') return error;
  return new ConfigError(`${(error as Error).message}. Nothing answers at ClickHouse ${clickhouseName}: is ClickHouse running there, and is --clickhouse-url / CLICKHOUSE_URL right? (local stack: npm run stack:up)`);
}

/**
 * Polls the consumer lag for the metrics; a heartbeat for /readyz when
 * offsets were committed or the lag is not growing, while ClickHouse is not away.
 */
function lagWatcher(kafka: Kafka, groupId: string, progressed: (() => void) | undefined, logger: Logger): (topics: string[]) => void {
  let last: { lag: bigint; committed: bigint } | undefined;
  return (topics) => {
    recordConsumerLag(kafka, groupId, topics).then((now) => {
      const moving = !last || now.committed > last.committed || now.lag <= last.lag;
      if (moving && !retryMetrics().waitingNow.has('clickhouse')) progressed?.();
      last = now;
    }, (error: Error) => logger.debug({ err: error.message }, 'consumer lag poll failed'));
  };
}

/**
 * Says, before reading, what retention already cost (messages deleted before
 * this group read them) and what it could cost (topic-settings.ts). Only
 * logs: the rows that are left are still worth writing.
 */
async function warnAboutRetention(kafka: Kafka, topics: readonly string[], groupId: string | null, logger: Logger): Promise<void> {
  for (const loss of await retentionLosses(kafka, topics, groupId)) logger.error(loss);
  for (const [topic, warnings] of await checkTopics(kafka, topics)) {
    for (const warning of warnings) logger.warn({ topic }, warning);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function logProgress(logger: Logger, totals: SinkTotals): void {
  logger.info({ ...totals }, `progress: ${totals.messages} messages read, ${totals.upserts + totals.deletes} rows written`);
}
