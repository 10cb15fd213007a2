/**
 * The clients alone, on the same rows cdc and sink carry: what walbridge
 * could reach at best on this machine, so the bottleneck is visible. Both
 * Kafka clients are measured the way cdc sends (idempotent, acks=all, one
 * request in flight, batches of 1,000, one partition): kafkajs (the sink's
 * consumer, cdc's former producer) and @platformatic/kafka (cdc's producer).
 */
import kafkajs from 'kafkajs';
import { compatibilityPartitioner, Producer, stringSerializers } from '@platformatic/kafka';
import { openClickHouse } from '../../src/sink/clickhouse/client.js';
import type { ServiceUrls } from '../../test/support/services.js';
import { workspace } from './scenarios.js';

export type KafkaClientName = 'kafkajs' | 'platformatic';

const BATCH = 1_000;

/** An envelope the size and shape cdc sends for one user_logins row. */
function sampleEnvelope(id: number): string {
  return JSON.stringify({
    before: null,
    after: { id, username: `user_${id}`, event_type: 'login', event_time: 1764211200000000 + id, sent_to_kafka: false },
    source: {
      version: '0.1.0', connector: 'postgresql', name: 'walbridge', ts_ms: 1764211200000, snapshot: 'false', db: 'walbridge',
      sequence: null, schema: 'public', table: 'user_logins', txId: 1000 + id, lsn: 23_000_000 + id, xmin: null, commit_lsn: '0/15F9A40',
    },
    op: 'c',
    ts_ms: 1764211200000,
    transaction: null,
  });
}

function sampleBatch(first: number, rows: number): { key: string; value: string }[] {
  const messages = [];
  for (let id = first; id < Math.min(rows, first + BATCH); id += 1) messages.push({ key: `{"id":${id}}`, value: sampleEnvelope(id) });
  return messages;
}

/** One client's raw producer rate in messages/s; the topic is created beforehand (not timed). */
export async function rawKafkaProducer(base: ServiceUrls, rows: number, client: KafkaClientName): Promise<number> {
  const ws = await workspace(`raw_${client}`, base);
  const brokers = base.kafkaBrokers.split(',');
  const topic = `${ws.topicPrefix}.raw`;
  const kafka = new kafkajs.Kafka({ clientId: 'bench-raw', brokers, logLevel: kafkajs.logLevel.NOTHING });
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    if (client === 'kafkajs') {
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
      await producer.connect();
      try {
        const started = performance.now();
        for (let first = 0; first < rows; first += BATCH) await producer.send({ topic, acks: -1, messages: sampleBatch(first, rows) });
        return rows / ((performance.now() - started) / 1000);
      } finally {
        await producer.disconnect();
      }
    }
    const producer = new Producer({
      clientId: 'bench-raw', bootstrapBrokers: brokers, idempotent: true, acks: -1, partitioner: compatibilityPartitioner, serializers: stringSerializers,
    });
    try {
      await producer.initIdempotentProducer({});
      const started = performance.now();
      for (let first = 0; first < rows; first += BATCH) {
        await producer.send({ messages: sampleBatch(first, rows).map((m) => ({ topic, ...m })) });
      }
      return rows / ((performance.now() - started) / 1000);
    } finally {
      await producer.close();
    }
  } finally {
    await admin.disconnect();
    await ws.cleanup();
  }
}

/** ClickHouse alone: JSONEachRow inserts of 50,000 rows into the same table — what sink could reach at best. */
export async function rawClickHouseInsert(base: ServiceUrls, rows: number): Promise<number> {
  const ws = await workspace('raw_clickhouse', base);
  const { client } = openClickHouse(ws.clickhouseUrl);
  try {
    const started = performance.now();
    for (let first = 0; first < rows; first += 50_000) {
      const values = [];
      for (let id = first; id < Math.min(rows, first + 50_000); id += 1) {
        values.push({ id, username: `user_${id}`, event_type: 'login', event_time: 1764211200 + (id % 86_400), _version: 23_000_000 + id, _is_deleted: 0 });
      }
      await client.insert({ table: 'user_logins', values, format: 'JSONEachRow' });
    }
    return rows / ((performance.now() - started) / 1000);
  } finally {
    await client.close();
    await ws.cleanup();
  }
}
