/**
 * The clients alone, on the same rows cdc and sink carry: what walbridge
 * could reach at best on this machine, so the bottleneck is visible. Both
 * Kafka clients are measured the way cdc sends (idempotent, acks=all, one
 * request in flight, batches of 1,000, one partition): kafkajs (the sink's
 * consumer, cdc's former producer) and @platformatic/kafka (cdc's producer).
 */
import { randomBytes } from 'node:crypto';
import kafkajs from 'kafkajs';
import { compatibilityPartitioner, Producer, stringSerializers } from '@platformatic/kafka';
import { openClickHouse } from '../../src/sink/clickhouse/client.js';
import type { ServiceUrls } from '../../test/support/services.js';
import { workspace, type Workspace } from './scenarios.js';

export type KafkaClientName = 'kafkajs' | 'platformatic';

const BATCH = 1_000;
/** At most this much per send, as cdc's send batcher (a broker refuses record batches over ~1 MB). */
const BATCH_BYTES = 512 * 1024;

/** Incompressible text of `bytes` characters (hex), as the wide-rows scenario's column. */
function payloadText(bytes: number): string {
  return randomBytes(Math.ceil(bytes / 2)).toString('hex').slice(0, bytes);
}

/** An envelope the size and shape cdc sends for one user_logins row (with a `payload` column of that many bytes, if any). */
function sampleEnvelope(id: number, payloadBytes: number): string {
  return JSON.stringify({
    before: null,
    after: {
      id, username: `user_${id}`, event_type: 'login', event_time: 1764211200000000 + id, sent_to_kafka: false,
      ...(payloadBytes > 0 ? { payload: payloadText(payloadBytes) } : {}),
    },
    source: {
      version: '0.1.0', connector: 'postgresql', name: 'walbridge', ts_ms: 1764211200000, snapshot: 'false', db: 'walbridge',
      sequence: null, schema: 'public', table: 'user_logins', txId: 1000 + id, lsn: 23_000_000 + id, xmin: null, commit_lsn: '0/15F9A40',
    },
    op: 'c',
    ts_ms: 1764211200000,
    transaction: null,
  });
}

function sampleBatch(first: number, rows: number, size: number, payloadBytes: number): { key: string; value: string }[] {
  const messages = [];
  for (let id = first; id < Math.min(rows, first + size); id += 1) messages.push({ key: `{"id":${id}}`, value: sampleEnvelope(id, payloadBytes) });
  return messages;
}

/**
 * One client's raw producer rate in messages/s; the topic is created
 * beforehand (not timed). `payloadBytes`: each envelope also carries a text
 * column of that size (the wide-rows scenario), batches then bounded by bytes.
 */
export async function rawKafkaProducer(base: ServiceUrls, rows: number, client: KafkaClientName, payloadBytes = 0): Promise<number> {
  const ws = await workspace(`raw_${client}${payloadBytes > 0 ? '_wide' : ''}`, base);
  const batch = Math.max(1, Math.min(BATCH, Math.floor(BATCH_BYTES / (payloadBytes + 400))));
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
        for (let first = 0; first < rows; first += batch) await producer.send({ topic, acks: -1, messages: sampleBatch(first, rows, batch, payloadBytes) });
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
      for (let first = 0; first < rows; first += batch) {
        await producer.send({ messages: sampleBatch(first, rows, batch, payloadBytes).map((m) => ({ topic, ...m })) });
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

/**
 * ClickHouse alone with wide rows: JSONEachRow inserts (batches of 16 MB of
 * payload) of `rows` rows with a `payload` text of `payloadBytes` into a copy
 * of `table` (a table the sink made, in `ws`); rows/s.
 */
export async function rawClickHouseWideInsert(ws: Workspace, table: string, rows: number, payloadBytes: number): Promise<number> {
  const { client } = openClickHouse(ws.clickhouseUrl);
  const copy = `${table}_raw`;
  try {
    await client.command({ query: `CREATE TABLE ${copy} AS ${table}` });
    const perInsert = Math.max(1, Math.floor((16 * 1024 * 1024) / payloadBytes));
    const started = performance.now();
    for (let first = 0; first < rows; first += perInsert) {
      const values = [];
      for (let id = first; id < Math.min(rows, first + perInsert); id += 1) {
        values.push({ id, username: `user_${id}`, event_type: 'login', event_time: '2026-11-27 00:00:00', payload: payloadText(payloadBytes), _version: 23_000_000 + id, _is_deleted: 0 });
      }
      await client.insert({ table: copy, values, format: 'JSONEachRow' });
    }
    return rows / ((performance.now() - started) / 1000);
  } finally {
    await client.close();
  }
}
