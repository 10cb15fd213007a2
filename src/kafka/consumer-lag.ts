/**
 * For --metrics-port: the consumer group's lag per partition (end offset −
 * committed offset; the whole partition when nothing is committed yet).
 * Returns the totals of lag and committed offsets, so the caller can tell
 * progress: offsets committed, or a lag that is not growing.
 */
import type { Kafka } from './client.js';
import { groupOffsets } from './consumer.js';
import { topicOffsets } from './topics.js';
import { sinkMetrics } from '../observability/metrics.js';

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
