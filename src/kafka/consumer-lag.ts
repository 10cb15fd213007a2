/**
 * Where a consumer group stands against its topics: its lag (for the
 * metrics) and what retention deleted before it read it (at the sink's start).
 */
import type { Kafka } from './client.js';
import { groupOffsets } from './consumer.js';
import { topicOffsets } from './topics.js';
import { sinkMetrics } from '../observability/metrics.js';

/**
 * For --metrics-port: the consumer group's lag per partition (end offset −
 * committed offset; the whole partition when nothing is committed yet).
 * Returns the totals of lag and committed offsets, so the caller can tell
 * progress: offsets committed, or a lag that is not growing.
 */
export async function recordConsumerLag(kafka: Kafka, groupId: string, topics: readonly string[]): Promise<{ lag: bigint; committed: bigint }> {
  const committed = await groupOffsets(kafka, groupId, topics);
  const gauge = sinkMetrics().consumerLag;
  let total = 0n;
  let committedTotal = 0n;
  for (const topic of topics) {
    for (const { partition, high, low } of await topicOffsets(kafka, topic)) {
      const from = committed.get(topic)?.get(partition) ?? low;
      const lag = high > from ? high - from : 0n;
      gauge.set({ topic, partition: String(partition) }, Number(lag));
      total += lag;
      committedTotal += from;
    }
  }
  return { lag: total, committed: committedTotal };
}

/**
 * Messages retention deleted before a reader got them, per topic partition,
 * as sentences: for a consumer group, those below its committed offsets
 * (lost to it); for a replay (groupId null), any deleted at all (the replay
 * cannot rebuild from before them). Partitions the group never committed
 * count from offset 0, as the sink reads from the beginning.
 */
export async function retentionLosses(kafka: Kafka, topics: readonly string[], groupId: string | null): Promise<string[]> {
  const committed = groupId === null ? new Map<string, Map<number, bigint>>() : await groupOffsets(kafka, groupId, topics);
  const losses: string[] = [];
  for (const topic of topics) {
    for (const { partition, low } of await topicOffsets(kafka, topic)) {
      const from = committed.get(topic)?.get(partition) ?? 0n;
      if (low <= from) continue;
      losses.push(groupId === null
        ? `topic ${topic} partition ${partition} starts at offset ${low}: retention deleted the ${low} messages before it, so this replay cannot rebuild what they carried (re-snapshot with \`cdc snapshot\`)`
        : `topic ${topic} partition ${partition}: retention deleted offsets ${from}–${low - 1n} before group ${groupId} read them: ${low - from} changes never reached ClickHouse ` +
          `(re-snapshot the table with \`cdc snapshot\`, and give the topic a longer retention)`);
    }
  }
  return losses;
}
