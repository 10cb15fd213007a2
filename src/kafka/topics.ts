/**
 * Topic administration: create-if-missing with a chosen partition count and
 * settings (topic-settings.ts), and the end offsets a `--once` run drains to
 * or `status` reports.
 */
import type { Kafka } from './client.js';
import { DEFAULT_TOPIC_SETTINGS, resolveTopicSettings, topicConfigEntries, type ResolvedTopicSettings, type TopicSettings } from './topic-settings.js';

export interface PartitionOffsets {
  partition: number;
  /** The offset the next message will get (Kafka's "high watermark"). */
  high: bigint;
  low: bigint;
}

/** Creates the topic when missing; returns the settings it was created with, null when it existed. */
export async function ensureTopic(kafka: Kafka, topic: string, partitions: number, requested: TopicSettings = DEFAULT_TOPIC_SETTINGS): Promise<ResolvedTopicSettings | null> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = await admin.listTopics();
    if (existing.includes(topic)) return null;
    const offsetsReplicas = existing.includes('__consumer_offsets')
      ? (await admin.fetchTopicMetadata({ topics: ['__consumer_offsets'] })).topics[0]?.partitions[0]?.replicas.length ?? 0
      : 0;
    const settings = resolveTopicSettings(requested, { alive: (await admin.describeCluster()).brokers.length, expected: offsetsReplicas });
    // false when another process created it first: fine either way.
    await admin.createTopics({
      topics: [{ topic, numPartitions: partitions, replicationFactor: settings.replicationFactor, configEntries: topicConfigEntries(settings) }],
      waitForLeaders: true,
    });
    return settings;
  } finally {
    await admin.disconnect();
  }
}

/** End offsets per partition; an empty list when the topic does not exist. */
export async function topicOffsets(kafka: Kafka, topic: string): Promise<PartitionOffsets[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(topic)) return [];
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets
      .map((o) => ({ partition: o.partition, high: BigInt(o.high), low: BigInt(o.low) }))
      .sort((a, b) => a.partition - b.partition);
  } finally {
    await admin.disconnect();
  }
}

/** Every topic name on the cluster (internal ones included; callers filter). */
export async function listTopics(kafka: Kafka): Promise<string[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await admin.listTopics();
  } finally {
    await admin.disconnect();
  }
}
