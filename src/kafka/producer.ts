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
import net from 'node:net';
import { compatibilityPartitioner, Producer, type MessageToProduce, type ProducerOptions } from '@platformatic/kafka';
import type { KafkaConnection } from '../config/kafka.js';
import { cdcMetrics } from '../observability/metrics.js';
import type { Kafka } from './client.js';

export interface OutgoingMessage {
  topic: string;
  /** null for a message sent to an explicit partition (a truncate). */
  key: string | null;
  /** null: a tombstone. */
  value: string | null;
  partition?: number;
  headers?: Map<Buffer, Buffer>;
}

/**
 * Contract: `send` resolves only after Kafka acknowledged every message of the
 * call with acks=all; within a partition messages keep the order given. The
 * caller serializes calls (never two in flight), so order holds across calls.
 * A rejected send means some messages of it may or may not be stored.
 */
export interface EventProducer {
  send(messages: OutgoingMessage[]): Promise<void>;
  disconnect(): Promise<void>;
}

export async function connectProducer(connection: KafkaConnection, clientId: string): Promise<EventProducer> {
  const producer = new Producer({
    clientId,
    bootstrapBrokers: connection.brokers,
    ...platformaticSecurity(connection),
    idempotent: true,
    acks: -1,
    partitioner: compatibilityPartitioner,
    // No serializers: keys and values arrive as Buffers (encodeAll).
    timeout: 30_000,
    retries: 8,
    retryDelay: 300,
  });
  const metrics = cdcMetrics();
  // The producer id is fetched on the first send otherwise: fail at start, not mid-stream.
  await producer.initIdempotentProducer({});
  return {
    send: async (messages) => {
      const timer = metrics.sendSeconds.startTimer();
      metrics.sendMessages.observe(messages.length);
      const keys = encodeAll(messages.map((m) => m.key ?? ''));
      const values = encodeAll(messages.map((m) => m.value ?? ''));
      const records = new Array<MessageToProduce<Buffer, Buffer, Buffer, Buffer>>(messages.length);
      for (let i = 0; i < messages.length; i++) {
        const { topic, key, value, partition, headers } = messages[i]!;
        const record: MessageToProduce<Buffer, Buffer, Buffer, Buffer> = { topic };
        if (key !== null) record.key = keys[i]!;
        // A tombstone's value is absent (null on the wire).
        if (value !== null) record.value = values[i]!;
        if (partition !== undefined) record.partition = partition;
        if (headers !== undefined) record.headers = headers;
        records[i] = record;
      }
      await producer.send({ messages: records });
      timer();
    },
    disconnect: () => producer.close(),
  };
}

/**
 * KafkaConnection → @platformatic/kafka's tls and sasl (it takes Kafka's
 * mechanism names as they are). Node verifies the certificate against the
 * host connected to either way; tlsServerName also sends that name (SNI,
 * which TLS proxies in front of brokers route by), set only when the
 * bootstrap brokers are host names: an IP address as SNI is against the RFC
 * and draws a warning from Node.
 */
function platformaticSecurity(connection: KafkaConnection): Pick<ProducerOptions<Buffer, Buffer, Buffer, Buffer>, 'tls' | 'tlsServerName' | 'sasl'> {
  const { tls, sasl } = connection;
  const byName = connection.brokers.every((broker) => net.isIP(broker.slice(0, broker.lastIndexOf(':'))) === 0);
  return {
    ...(tls === null ? {} : { tls, tlsServerName: byName }),
    ...(sasl === null ? {} : { sasl }),
  };
}

/**
 * UTF-8 of each text, as views of one Buffer per call. Why: the envelopes are
 * concatenated (cons) strings; encoding each on its own flattened it into a
 * fresh copy first and cost one native call per message (GC and
 * `Buffer.from` were 40 % of cdc's CPU). `join` copies the pieces once,
 * without flattening. When every text is ASCII (the usual case: the joined
 * text's UTF-8 is as long as the text) character offsets are byte offsets;
 * otherwise each text is encoded separately.
 */
export function encodeAll(texts: string[]): Buffer[] {
  const joined = texts.join('');
  // One pass: the UTF-8 of an all-ASCII text is as long as the text.
  const bytes = Buffer.from(joined, 'utf8');
  if (bytes.length !== joined.length) return texts.map((text) => Buffer.from(text, 'utf8'));
  const views = new Array<Buffer>(texts.length);
  let offset = 0;
  for (let i = 0; i < texts.length; i++) {
    const end = offset + texts[i]!.length;
    views[i] = bytes.subarray(offset, end);
    offset = end;
  }
  return views;
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
