/**
 * The cdc side's Kafka producer: @platformatic/kafka 1.x, idempotent,
 * acks=all, Java-compatible murmur2 partitioning so a key lands where Kafka
 * Connect would put it.
 *
 * Why not kafkajs here: on the benchmark machine kafkajs' idempotent producer
 * tops out near 50k messages/s (CPU-bound, its per-partition grouping is
 * quadratic in the batch size), @platformatic/kafka sends the same batches at
 * 2–2.5× that rate (docs/performance.md, "clients"). Admin calls and the
 * sink's consumer stay on kafkajs (client.ts).
 */
import { compatibilityPartitioner, Producer, stringSerializers } from '@platformatic/kafka';
import type { Kafka } from './client.js';

export interface OutgoingMessage {
  /** null for a message sent to an explicit partition (a truncate). */
  key: string | null;
  value: string;
  partition?: number;
}

/**
 * Contract: `send` resolves only after Kafka acknowledged every message of the
 * call with acks=all; within a partition messages keep the order given. The
 * caller serializes calls (never two in flight), so order holds across calls.
 * A rejected send means some messages of it may or may not be stored.
 */
export interface EventProducer {
  send(topic: string, messages: OutgoingMessage[]): Promise<void>;
  disconnect(): Promise<void>;
}

export async function connectProducer(brokers: string[], clientId: string): Promise<EventProducer> {
  const producer = new Producer({
    clientId,
    bootstrapBrokers: brokers,
    idempotent: true,
    acks: -1,
    partitioner: compatibilityPartitioner,
    serializers: stringSerializers,
    timeout: 30_000,
    retries: 8,
    retryDelay: 300,
  });
  // The producer id is fetched on the first send otherwise: fail at start, not mid-stream.
  await producer.initIdempotentProducer({});
  return {
    send: async (topic, messages) => {
      await producer.send({
        messages: messages.map(({ key, value, partition }) =>
          partition === undefined ? { topic, key: key ?? undefined, value } : { topic, value, partition }),
      });
    },
    disconnect: () => producer.close(),
  };
}

/** How many partitions a topic has (a truncate goes to each of them). */
export async function partitionCount(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    return metadata.topics[0]?.partitions.length ?? 1;
  } finally {
    await admin.disconnect();
  }
}
