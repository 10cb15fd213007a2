/** Proves each service of the stack is the real thing, with the clients walbridge uses. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import kafkajs from 'kafkajs';
import { openClickHouse } from '../../src/sink/clickhouse/client.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

describe('local stack smoke', () => {
  let services: IsolatedServices;
  before(async () => {
    services = await isolatedServices('smoke');
  });
  after(async () => {
    await services.cleanup();
  });

  it('PostgreSQL runs wal_level=logical and creates and drops a pgoutput slot', async () => {
    const client = new pg.Client({ connectionString: services.databaseUrl });
    await client.connect();
    try {
      assert.equal((await client.query('SHOW wal_level')).rows[0].wal_level, 'logical');
      const slot = `${services.name}_smoke`;
      const created = await client.query(`SELECT lsn FROM pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
      assert.match(created.rows[0].lsn, /^[0-9A-F]+\/[0-9A-F]+$/);
      const listed = await client.query('SELECT plugin FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      assert.equal(listed.rows[0].plugin, 'pgoutput');
      await client.query('SELECT pg_drop_replication_slot($1)', [slot]);
      assert.equal((await client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).rowCount, 0);
    } finally {
      await client.end();
    }
  });

  it('Kafka 4 broker takes an idempotent acks=all produce and a group consume through kafkajs', async () => {
    const kafka = new kafkajs.Kafka({ brokers: services.kafkaBrokers.split(','), logLevel: kafkajs.logLevel.NOTHING });
    const topic = `${services.topicPrefix}.smoke`;
    const admin = kafka.admin();
    await admin.connect();
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    const consumer = kafka.consumer({ groupId: `${services.name}-smoke` });
    try {
      await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
      await producer.connect();
      await producer.send({ topic, acks: -1, messages: [{ key: '{"id":1}', value: 'one' }, { key: '{"id":2}', value: 'two' }] });
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      const received = new Set<string>();
      await new Promise<void>((resolve) => {
        void consumer.run({
          eachMessage: async ({ message }) => {
            received.add(message.value?.toString() ?? '');
            if (received.size === 2) resolve();
          },
        });
      });
      assert.deepEqual([...received].sort(), ['one', 'two']);
      const apiVersions = await admin.describeCluster();
      assert.equal(apiVersions.brokers.length, 1);
    } finally {
      await consumer.disconnect();
      await producer.disconnect();
      await admin.disconnect();
    }
  });

  it('ClickHouse inserts into a ReplacingMergeTree and SELECT … FINAL keeps the highest version', async () => {
    const { client } = openClickHouse(services.clickhouseUrl);
    try {
      await client.command({ query: 'CREATE TABLE smoke (id UInt64, v String, ver UInt64) ENGINE = ReplacingMergeTree(ver) ORDER BY id' });
      await client.insert({ table: 'smoke', values: [{ id: 1, v: 'old', ver: 1 }], format: 'JSONEachRow' });
      await client.insert({ table: 'smoke', values: [{ id: 1, v: 'new', ver: 2 }, { id: 2, v: 'x', ver: 1 }], format: 'JSONEachRow' });
      const result = await client.query({ query: 'SELECT id, v FROM smoke FINAL ORDER BY id', format: 'JSONEachRow' });
      assert.deepEqual(await result.json(), [{ id: '1', v: 'new' }, { id: '2', v: 'x' }]);
    } finally {
      await client.close();
    }
  });
});
