/**
 * The cdc side's Kafka producer: idempotent, acks=all, one request in flight
 * (what kafkajs' idempotent mode needs), Java-compatible murmur2 partitioning
 * so a key lands where Kafka Connect would put it.
 */
import kafkajs from 'kafkajs';
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

export async function connectProducer(kafka: Kafka): Promise<EventProducer> {
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: kafkajs.Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  return {
    send: async (topic, messages) => {
      await producer.send({ topic, acks: -1, timeout: 30_000, messages });
    },
    disconnect: () => producer.disconnect(),
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
