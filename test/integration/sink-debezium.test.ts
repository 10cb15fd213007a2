/**
 * A topic written by Debezium's PostgreSQL connector (no source.commit_lsn:
 * the sink falls back to source.lsn), into a table of another shape: int8
 * beyond 2^53 and numeric stay exact, and a row ClickHouse itself refuses is
 * isolated (batch split in halves) and dead-lettered.
 * Decimal(18, 2), not wider: 18.16 prints Decimal128 values wrongly (a NUL
 * byte inside the digits of toString(toDecimal128('1912345678901234567890.19', 2))),
 * which verify would rightly report as a difference.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import kafkajs from 'kafkajs';
import { openClickHouse } from '../../src/sink/clickhouse/client.js';
import { cliEnv, runCli } from '../support/cli.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

describe('Debezium topic, other table, exact values', () => {
  let services: IsolatedServices;
  before(async () => {
    services = await isolatedServices('sink_debezium');
  });
  after(async () => {
    await services.cleanup();
  });

  it('applies it and verify says EQUAL', async () => {
    const db = new pg.Client({ connectionString: services.databaseUrl });
    await db.connect();
    const { client } = openClickHouse(services.clickhouseUrl);
    const kafka = new kafkajs.Kafka({ brokers: services.kafkaBrokers.split(','), logLevel: kafkajs.logLevel.NOTHING });
    const producer = kafka.producer();
    try {
      await db.query('CREATE TABLE ledger (id bigint PRIMARY KEY, amount numeric(30,2), big bigint, code text, at timestamptz)');
      await client.command({ query: `CREATE TABLE ledger (id Int64, amount Nullable(Decimal(18, 2)), big Nullable(Int64), code Nullable(FixedString(3)),
        at Nullable(DateTime('UTC')), _version UInt64, _is_deleted UInt8) ENGINE = ReplacingMergeTree(_version) ORDER BY id` });
      const rows = Array.from({ length: 40 }, (_, i) => ({
        id: 9007199254740993n + BigInt(i), amount: `${i}1234567890123.${String(i % 100).padStart(2, '0')}`,
        big: -9223372036854775807n + BigInt(i), code: i === 17 ? 'toolong' : 'abc', at: `2024-01-02T03:04:${String(i).padStart(2, '0')}.654321Z`,
      }));
      for (const r of rows) {
        if (r.id === 9007199254740993n + 17n) continue; // ClickHouse will refuse it: not in PostgreSQL either
        await db.query('INSERT INTO ledger VALUES ($1, $2, $3, $4, $5)', [r.id.toString(), r.amount, r.big.toString(), r.code, r.at]);
      }
      const topic = `${services.topicPrefix}.public.ledger`;
      const admin = kafka.admin();
      await admin.connect();
      await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
      await admin.disconnect();
      await producer.connect();
      // Debezium's JSON: int8 as a bare number, numeric as a string, timestamptz as ISO text, source.lsn a number.
      const values = rows.map((r, i) => `{"before":null,"after":{"id":${r.id},"amount":"${r.amount}","big":${r.big},"code":"${r.code}","at":"${r.at}"},` +
        `"source":{"version":"2.7.0.Final","connector":"postgresql","name":"${services.topicPrefix}","ts_ms":1,"snapshot":"false","db":"x",` +
        `"sequence":"[null,\\"${1000 + i}\\"]","schema":"public","table":"ledger","txId":${500 + i},"lsn":${24000000 + i * 100},"xmin":null},` +
        `"op":"c","ts_ms":1,"transaction":null}`);
      await producer.send({ topic, acks: -1, messages: rows.map((r, i) => ({ key: `{"id":${r.id}}`, value: values[i] ?? null })) });

      const env = cliEnv(services);
      const run = await runCli('sink', ['start', '--once', '--topic-prefix', services.topicPrefix, '--table', 'public.ledger'], env);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /^wrote 39 rows to ledger \(39 upserts, 0 deletes\)/);
      assert.match(run.stdout, /1 message dead-lettered/);
      const result = await client.query({ query: 'SELECT toString(id) AS i, toString(amount) AS a, toString(big) AS b, _version FROM ledger FINAL WHERE ledger.id = 9007199254740993', format: 'JSONEachRow' });
      assert.deepEqual(await result.json(), [{ i: '9007199254740993', a: '1234567890123.00', b: '-9223372036854775807', _version: '24000000' }]);
      const verify = await runCli('sink', ['verify', '--table', 'public.ledger'], env);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
      assert.match(verify.stdout, /rows: PostgreSQL 39, ClickHouse 39;/);
    } finally {
      await producer.disconnect();
      await client.close();
      await db.end();
    }
  });
});
