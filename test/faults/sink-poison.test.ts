/**
 * Messages the sink cannot apply go to `<topic>.dlq` with the reason in a
 * header; the good ones around them land. The reason quotes the bad value,
 * and a value may hold a password (a connection URL or libpq setting pasted
 * into a column): the header and the logs carry it redacted.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import kafkajs from 'kafkajs';
import { envelope, image, logins } from '../support/change-feed.js';
import { sinkFixture, type SinkFixture } from '../support/sink-fixture.js';

const PASSWORD = 'Secr3t-pw';

async function readAll(brokers: string, topic: string, count: number): Promise<kafkajs.KafkaMessage[]> {
  const kafka = new kafkajs.Kafka({ brokers: brokers.split(','), logLevel: kafkajs.logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `read-${topic}-${Date.now()}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const messages: kafkajs.KafkaMessage[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${messages.length} of ${count} messages on ${topic}`)), 30_000);
    void consumer.run({
      eachMessage: async ({ message }) => {
        messages.push(message);
        if (messages.length >= count) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  return messages;
}

describe('poison messages', () => {
  let f: SinkFixture;
  before(async () => {
    f = await sinkFixture('sink_poison', 1);
  });
  after(async () => {
    await f.cleanup();
  });

  it('go to the DLQ with the error in a header, and the good ones around them still land', async () => {
    await f.feed.insert(logins(1, 10));
    const lsn = f.feed.nextLsn();
    await f.feed.send([
      { key: '{"id":100}', value: 'this is not JSON' },
      { key: '{"id":101}', value: JSON.stringify({ hello: 'world' }) },
      { key: '{"id":102}', value: JSON.stringify(envelope('c', null, image({ id: 102, username: 'x', event_type: 'login', event_time: 1 }), lsn)).replace('"id":102', '"id":"abc"') },
      { key: '{"id":103}', value: JSON.stringify(envelope('c', null, { id: 103, event_time: 'yesterday' }, lsn)) },
      { key: '{"id":104}', value: JSON.stringify(envelope('c', null, { id: null }, lsn)) },
      { key: '{"id":105}', value: JSON.stringify(envelope('c', null, { id: 105, event_time: `http://default:${PASSWORD}@clickhouse:8123/default` }, lsn)) },
      { key: '{"id":106}', value: JSON.stringify(envelope('c', null, { id: 106, event_time: `host=db password=${PASSWORD} dbname=app` }, lsn)) },
    ]);
    await f.feed.insert(logins(11, 10));
    const run = await f.sink(['start', '--once']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^wrote 20 rows to user_logins \(20 upserts, 0 deletes\)/);
    assert.match(run.stdout, /7 messages dead-lettered to .*\.dlq/);
    assert.ok(!run.stderr.includes(PASSWORD), 'no log line carries the password');
    const verify = await f.sink(['verify']);
    assert.equal(verify.code, 0, verify.stdout);

    const letters = await readAll(f.services.kafkaBrokers, `${f.topic}.dlq`, 7);
    const byKey = new Map(letters.map((m) => [m.key?.toString(), m]));
    const reason = (id: number): string => byKey.get(`{"id":${id}}`)?.headers?.['walbridge.error']?.toString() ?? '';
    assert.match(reason(100), /not JSON/);
    assert.match(reason(101), /not a change envelope: no "op"/);
    assert.match(reason(102), /column id: "abc" does not fit Int32/);
    assert.match(reason(103), /column event_time: "yesterday" is not a timestamp/);
    assert.match(reason(104), /column id \(Int32\) is not Nullable/);
    assert.match(reason(105), /column event_time: "http:\/\/default:\*\*\*@clickhouse:8123\/default" is not a timestamp/);
    assert.match(reason(106), /column event_time: "host=db password=\*\*\* dbname=app" is not a timestamp/);
    for (const letter of letters) assert.ok(!letter.headers?.['walbridge.error']?.toString().includes(PASSWORD), 'no header carries the password');
    // The letter itself is the message as it was, unchanged (it is the user's data to repair and replay).
    assert.ok(byKey.get('{"id":105}')?.value?.toString().includes(PASSWORD));
    const first = byKey.get('{"id":100}');
    assert.equal(first?.value?.toString(), 'this is not JSON');
    assert.equal(first?.headers?.['walbridge.source.topic']?.toString(), f.topic);
    assert.equal(first?.headers?.['walbridge.source.offset']?.toString(), '10');
  });
});
