/**
 * The settings walbridge creates its topics with, and the start-time check
 * of topics it finds. Why they matter to the delivery contract:
 * - cdc confirms an LSN once Kafka acked its messages with acks=all. That ack
 *   survives a broker loss only if the topic has replicas and
 *   min.insync.replicas > 1 (acks=all waits for that many copies).
 * - Kafka deletes messages past retention whether or not the sink read them,
 *   and `sink replay --from-lsn 0/0` rebuilds ClickHouse exactly only while
 *   the topic still holds every message. So topics are created keeping
 *   everything (retention.ms = -1) unless told otherwise.
 */
import kafkajs from 'kafkajs';
import { ConfigError } from '../core/exit-codes.js';
import type { Kafka } from './client.js';

export interface TopicSettings {
  /** null: min(3, brokers in the cluster). */
  replicationFactor: number | null;
  /** null: 2 when the replication factor is 3 or more, else 1. */
  minInsyncReplicas: number | null;
  /** -1 keeps every message. */
  retentionMs: number;
}

export const DEFAULT_TOPIC_SETTINGS: TopicSettings = { replicationFactor: null, minInsyncReplicas: null, retentionMs: -1 };

export interface ResolvedTopicSettings {
  replicationFactor: number;
  minInsyncReplicas: number;
  retentionMs: number;
}

/**
 * What the cluster looks like when a topic is created: the brokers that
 * answer now, and how many it is built for — the replication of its
 * `__consumer_offsets` topic when that exists (a broker that is down
 * right now still counts there).
 */
export interface ClusterSize {
  alive: number;
  expected: number;
}

/**
 * The settings a new topic gets; a request the cluster cannot meet is
 * refused (ConfigError). With brokers down it never settles for fewer
 * replicas than the cluster is built for: that topic would be created
 * weaker for good (acks=all met by fewer copies), so it fails instead
 * (a runtime error: a restart, once the brokers are back, creates it).
 */
export function resolveTopicSettings(requested: TopicSettings, cluster: ClusterSize): ResolvedTopicSettings {
  const expected = Math.max(cluster.alive, cluster.expected);
  const replicationFactor = requested.replicationFactor ?? Math.min(3, expected);
  if (replicationFactor > expected) {
    throw new ConfigError(`--replication-factor ${replicationFactor} needs as many brokers, and the Kafka cluster has ${expected}; lower it or add brokers`);
  }
  if (replicationFactor > cluster.alive) {
    throw new Error(`a topic with replication factor ${replicationFactor} cannot be created while only ${cluster.alive} of the Kafka cluster's ${expected} brokers answer; ` +
      'it is not created with fewer replicas (that would weaken it for good): start again once the brokers are back');
  }
  const minInsyncReplicas = requested.minInsyncReplicas ?? (replicationFactor >= 3 ? 2 : 1);
  if (minInsyncReplicas > replicationFactor) {
    throw new ConfigError(`--min-insync-replicas ${minInsyncReplicas} is more than the replication factor ${replicationFactor}: every acks=all send would fail`);
  }
  return { replicationFactor, minInsyncReplicas, retentionMs: requested.retentionMs };
}

export function topicConfigEntries(settings: ResolvedTopicSettings): { name: string; value: string }[] {
  return [
    { name: 'min.insync.replicas', value: String(settings.minInsyncReplicas) },
    { name: 'retention.ms', value: String(settings.retentionMs) },
  ];
}

/** What a topic is configured with, as the check below needs it. */
export interface TopicFacts {
  topic: string;
  replicationFactor: number;
  minInsyncReplicas: number;
  retentionMs: number;
  retentionBytes: number;
}

/**
 * What could lose or fail to protect messages on this topic, as sentences
 * that end with the fix; empty when nothing does. Pure, for unit tests.
 */
export function topicWarnings(facts: TopicFacts, brokers: number): string[] {
  const warnings: string[] = [];
  const alter = (config: string) =>
    `kafka-configs.sh --bootstrap-server … --alter --entity-type topics --entity-name ${facts.topic} --add-config ${config}`;
  if (facts.retentionMs >= 0) {
    warnings.push(`topic ${facts.topic} has retention.ms=${facts.retentionMs} (${humanDuration(facts.retentionMs)}): Kafka deletes older messages read or not, ` +
      `so a sink stopped that long loses them and \`sink replay --from-lsn 0/0\` cannot rebuild from before it (${alter('retention.ms=-1')})`);
  }
  if (facts.retentionBytes >= 0) {
    warnings.push(`topic ${facts.topic} has retention.bytes=${facts.retentionBytes}: Kafka deletes the oldest messages past that size per partition, read or not (${alter('retention.bytes=-1')})`);
  }
  const wanted = Math.min(3, brokers);
  if (facts.replicationFactor < wanted) {
    warnings.push(`topic ${facts.topic} has ${facts.replicationFactor} replica(s) on a cluster of ${brokers} brokers: losing one broker can lose messages cdc already confirmed ` +
      `(recreate it with replication factor ${wanted}, or add replicas with kafka-reassign-partitions.sh)`);
  }
  if (facts.replicationFactor > 1 && facts.minInsyncReplicas < 2) {
    warnings.push(`topic ${facts.topic} has min.insync.replicas=${facts.minInsyncReplicas}: acks=all is met by the leader alone, so a leader lost right after an ack ` +
      `can lose the message (${alter(`min.insync.replicas=${Math.min(2, facts.replicationFactor)}`)})`);
  }
  return warnings;
}

/** The facts of each existing topic of `topics` (missing ones are left out), and the cluster's broker count. */
export async function describeTopics(kafka: Kafka, topics: readonly string[]): Promise<{ brokers: number; facts: TopicFacts[] }> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const brokers = (await admin.describeCluster()).brokers.length;
    const existing = new Set(await admin.listTopics());
    const present = topics.filter((t) => existing.has(t));
    if (present.length === 0) return { brokers, facts: [] };
    const metadata = await admin.fetchTopicMetadata({ topics: present });
    const configs = await admin.describeConfigs({
      includeSynonyms: false,
      resources: present.map((name) => ({
        type: kafkajs.ConfigResourceTypes.TOPIC,
        name,
        configNames: ['min.insync.replicas', 'retention.ms', 'retention.bytes'],
      })),
    });
    const facts = present.map((topic): TopicFacts => {
      const config = configs.resources.find((r) => r.resourceName === topic)?.configEntries ?? [];
      const number = (name: string, fallback: number) => Number(config.find((e) => e.configName === name)?.configValue ?? fallback);
      const partitions = metadata.topics.find((t) => t.name === topic)?.partitions ?? [];
      return {
        topic,
        replicationFactor: Math.min(...partitions.map((p) => p.replicas.length)),
        minInsyncReplicas: number('min.insync.replicas', 1),
        retentionMs: number('retention.ms', 604_800_000),
        retentionBytes: number('retention.bytes', -1),
      };
    });
    return { brokers, facts };
  } finally {
    await admin.disconnect();
  }
}

/** The warnings of every existing topic of `topics`, in order. */
export async function checkTopics(kafka: Kafka, topics: readonly string[]): Promise<Map<string, string[]>> {
  const { brokers, facts } = await describeTopics(kafka, topics);
  return new Map(facts.map((f) => [f.topic, topicWarnings(f, brokers)]));
}

function humanDuration(ms: number): string {
  const hours = ms / 3_600_000;
  return hours >= 48 ? `${+(hours / 24).toFixed(1)} days` : `${+hours.toFixed(1)} hours`;
}
