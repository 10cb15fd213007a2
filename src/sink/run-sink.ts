/**
 * Puts the sink together for the three ways it runs:
 * - start (follow): consumer group, commits, until a signal;
 * - start --once (drain): consumer group, commits, up to the end offsets
 *   taken at start;
 * - replay: a throwaway consumer group (deleted afterwards) reading every
 *   partition from its beginning to the end offsets taken at start, no
 *   commits, applying only events whose version >= --from-lsn. The live
 *   group's offsets are never touched; applying is idempotent.
 */
import { randomBytes } from 'node:crypto';
import { redactUrl } from '../config/connections.js';
import { deadLetterTopic } from '../core/envelope.js';
import { createKafka } from '../kafka/client.js';
import { deleteGroup, groupOffsets, openTopicReader } from '../kafka/consumer.js';
import { DeadLetterProducer } from '../kafka/dead-letter.js';
import { topicOffsets } from '../kafka/topics.js';
import type { Logger } from '../observability/logger.js';
import type { BatchLimits } from './row-batch.js';
import { retryWithBackoff } from '../core/retry.js';
import { installShutdown } from '../core/shutdown.js';
import { BatchApplier } from './batch-applier.js';
import { openClickHouse } from './clickhouse/client.js';
import { describeTarget, RowMapper } from './clickhouse/rows.js';
import { ClickHouseWriter } from './clickhouse/writer.js';
import { isTransientClickHouseError } from './clickhouse/errors.js';
import { SinkWorker, type SinkTotals } from './sink-worker.js';

export interface SinkRunOptions {
  kafkaBrokers: string[];
  clickhouseUrl: string;
  topic: string;
  targetTable: string;
  groupId: string;
  limits: BatchLimits;
  mode: 'follow' | 'drain' | 'replay';
  /** Replay: apply only events with version >= this. */
  fromVersion: bigint;
  logger: Logger;
}

export interface SinkRunResult {
  totals: SinkTotals;
  topicExists: boolean;
  deadLetterTopic: string;
}

const TOPIC_POLL_MS = 5_000;
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

export async function runSink(options: SinkRunOptions): Promise<SinkRunResult> {
  const { logger, topic } = options;
  const shutdown = installShutdown(logger);
  const kafka = createKafka(options.kafkaBrokers, 'walbridge-sink', logger);
  const { client, database } = openClickHouse(options.clickhouseUrl);
  const clickhouseName = redactUrl(options.clickhouseUrl);
  const dlq = new DeadLetterProducer(kafka, topic, deadLetterTopic(topic));
  try {
    // Nothing is held yet at the start, so the first signal is enough to give up waiting.
    const waitForClickHouse = <T>(what: string, operation: () => Promise<T>): Promise<T> =>
      retryWithBackoff(operation, {
        waitingFor: `ClickHouse at ${clickhouseName}`, holding: what, isTransient: isTransientClickHouseError, logger, signal: shutdown.stopSignal,
      });
    const target = await waitForClickHouse('the start (reading the target table)', () => describeTarget(client, database, options.targetTable));
    const writer = new ClickHouseWriter(client, target);
    await waitForClickHouse('the start', () => writer.ensureTruncatesTable());
    const truncateFloor = await waitForClickHouse('the start', () => writer.truncateFloor());

    let ends = await topicOffsets(kafka, topic);
    if (ends.length === 0) {
      if (options.mode !== 'follow') return { totals: emptyTotals(), topicExists: false, deadLetterTopic: dlq.topic };
      logger.warn(`waiting for topic ${topic} to exist (is cdc running? is --topic-prefix/--table/--topic right?)`);
      while (ends.length === 0) {
        const stopped = await Promise.race([shutdown.requested.then(() => true), delay(TOPIC_POLL_MS).then(() => false)]);
        if (stopped) return { totals: emptyTotals(), topicExists: false, deadLetterTopic: dlq.topic };
        ends = await topicOffsets(kafka, topic);
      }
    }

    const replay = options.mode === 'replay';
    const groupId = replay ? `${options.groupId}-replay-${randomBytes(4).toString('hex')}` : options.groupId;
    let drainTo: Map<number, bigint> | undefined;
    if (options.mode !== 'follow') {
      const committed = replay ? new Map<number, bigint>() : await groupOffsets(kafka, groupId, topic);
      drainTo = new Map();
      for (const { partition, high, low } of ends) {
        const start = committed.get(partition) ?? low;
        if ((start > low ? start : low) < high) drainTo.set(partition, high);
      }
      if (drainTo.size === 0) return { totals: emptyTotals(), topicExists: true, deadLetterTopic: dlq.topic };
    }

    const reader = await openTopicReader(kafka, { topic, groupId, logger });
    const worker = new SinkWorker(reader, new RowMapper(target), new BatchApplier(writer, dlq, logger, clickhouseName, shutdown.abortSignal), logger, {
      limits: options.limits, drainTo, commit: !replay, fromVersion: options.fromVersion, truncateFloor,
    });
    void shutdown.requested.then(() => worker.stop());
    const progress = setInterval(() => logProgress(logger, worker.totals), 10_000).unref();
    try {
      worker.start();
      await worker.done;
    } finally {
      clearInterval(progress);
      await withTimeout(reader.disconnect(), DISCONNECT_TIMEOUT_MS, () =>
        logger.warn(`leaving consumer group ${groupId} took over ${DISCONNECT_TIMEOUT_MS / 1000}s; exiting anyway (offsets are already committed)`));
      if (replay) await deleteGroup(kafka, groupId).catch((error: unknown) => logger.warn(`could not delete replay group ${groupId}: ${(error as Error).message}`));
    }
    if (worker.error) throw worker.error;
    return { totals: worker.totals, topicExists: true, deadLetterTopic: dlq.topic };
  } finally {
    shutdown.dispose();
    await dlq.close();
    await client.close();
  }
}

function emptyTotals(): SinkTotals {
  return { upserts: 0, deletes: 0, truncates: 0, deadLetters: 0, messages: 0, tombstones: 0, collapsed: 0, beforeTruncate: 0, belowFromLsn: 0 };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function logProgress(logger: Logger, totals: SinkTotals): void {
  logger.info({ ...totals }, `progress: ${totals.messages} messages read, ${totals.upserts + totals.deletes} rows written`);
}
