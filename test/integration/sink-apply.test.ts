/** `sink start --once`, `replay` and `verify` against real Kafka, ClickHouse and PostgreSQL. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import kafkajs from 'kafkajs';
import { logins, type RawMessage } from '../support/change-feed.js';
import { sinkFixture, type SinkFixture } from '../support/sink-fixture.js';

async function committed(f: SinkFixture, groupId: string): Promise<string> {
  const admin = new kafkajs.Kafka({ brokers: f.services.kafkaBrokers.split(','), logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const [entry] = await admin.fetchOffsets({ groupId, topics: [f.topic] });
    return JSON.stringify(entry?.partitions.map((p) => [p.partition, p.offset]).sort());
  } finally {
    await admin.disconnect();
  }
}

describe('sink start --once, replay, verify', () => {
  let f: SinkFixture;
  before(async () => {
    f = await sinkFixture('sink_apply', 3);
  });
  after(async () => {
    await f.cleanup();
  });

  it('writes the rows, prints the summary, and verify says EQUAL', async () => {
    await f.feed.insert(logins(1, 2));
    const run = await f.sink(['start', '--once']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), `wrote 2 rows to user_logins (2 upserts, 0 deletes) from ${f.topic}`);
    const verify = await f.sink(['verify']);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, /rows: PostgreSQL 2, ClickHouse 2;.*\nEQUAL/);
    const again = await f.sink(['start', '--once']);
    assert.equal(again.stdout.trim(), `wrote 0 rows to user_logins (0 upserts, 0 deletes) from ${f.topic}`);
  });

  it('the same events delivered twice end equal to PostgreSQL', async () => {
    const sent: RawMessage[] = [];
    sent.push(...await f.feed.insert(logins(1000, 3000)));
    for (let id = 1000; id < 1100; id += 1) sent.push(...await f.feed.update({ id, username: `renamed_${id}`, event_type: 'rename', event_time: null }));
    assert.equal((await f.sink(['start', '--once', '--batch-rows', '700'])).code, 0);
    await f.feed.send(sent); // at-least-once delivery: everything again
    const run = await f.sink(['start', '--once', '--batch-rows', '700']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^wrote \d+ rows to user_logins \(\d+ upserts, 0 deletes\)/);
    const verify = await f.sink(['verify', '--range-size', '1000']);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    const [final] = await f.clickhouse<{ n: string }>('SELECT count() AS n FROM user_logins FINAL WHERE _is_deleted = 0');
    assert.deepEqual(final, { n: '3002' });
  });

  it('a delete then a re-insert of one id, and a PostgreSQL TRUNCATE followed by new rows, end right', async () => {
    await f.feed.delete(1000);
    await f.feed.insert([{ id: 1000, username: 'back', event_type: 'login', event_time: 1_700_000_000_000_000 }]);
    await f.feed.delete(1001);
    assert.equal((await f.sink(['start', '--once'])).code, 0);
    assert.equal((await f.sink(['verify'])).code, 0);
    const [row] = await f.clickhouse<{ username: string }>('SELECT username FROM user_logins FINAL WHERE id = 1000 AND _is_deleted = 0');
    assert.equal(row?.username, 'back');

    await f.feed.truncate();
    await f.feed.insert(logins(5000, 50, 'after_truncate'));
    const run = await f.sink(['start', '--once']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /1 truncate applied/);
    const verify = await f.sink(['verify']);
    assert.equal(verify.code, 0, verify.stdout);
    assert.match(verify.stdout, /rows: PostgreSQL 50, ClickHouse 50;/);
  });

  it('after TRUNCATE TABLE in ClickHouse, replay --from-lsn 0/0 rebuilds it exactly, twice, leaving the live offsets alone', async () => {
    await f.feed.insert(logins(6000, 20, 'late'));
    await f.feed.delete(6000);
    assert.equal((await f.sink(['start', '--once'])).code, 0);
    const before = await committed(f, f.env.SINK_GROUP!);
    await f.clickhouseCommand('TRUNCATE TABLE user_logins');
    for (let round = 0; round < 2; round += 1) {
      const replay = await f.sink(['replay', '--from-lsn', '0/0']);
      assert.equal(replay.code, 0, replay.stderr);
      assert.match(replay.stdout, /^replayed 70 rows to user_logins \(69 upserts, 1 delete\).*\(events with commit LSN >= 0\/0\)/);
      const verify = await f.sink(['verify']);
      assert.equal(verify.code, 0, verify.stdout);
    }
    assert.equal(await committed(f, f.env.SINK_GROUP!), before);
  });

  it('replay --from-lsn applies only events at or above that LSN', async () => {
    await f.clickhouseCommand('TRUNCATE TABLE user_logins');
    const from = f.feed.nextLsn(); // everything sent before has a lower commit LSN
    await f.feed.insert(logins(7000, 5, 'newest'));
    const replay = await f.sink(['replay', '--from-lsn', from]);
    assert.equal(replay.code, 0, replay.stderr);
    assert.match(replay.stdout, /^replayed 5 rows/);
    assert.match(replay.stdout, /events below --from-lsn skipped/);
    const [count] = await f.clickhouse<{ n: string }>('SELECT count() AS n FROM user_logins FINAL WHERE _is_deleted = 0');
    assert.equal(count?.n, '5');
    await f.sink(['replay', '--from-lsn', '0/0']); // leave the table whole again
  });

  it('verify names the differing ids and exits 1', async () => {
    await f.clickhouseCommand(`INSERT INTO user_logins (id, username, event_type, event_time, _version, _is_deleted) VALUES
      (5001, 'tampered', 'login', 1700000000, 18446744073709551615, 0), (999999, 'ghost', 'login', 1700000000, 1, 0)`);
    const pg = (await import('pg')).default;
    const db = new pg.Client({ connectionString: f.services.databaseUrl });
    await db.connect();
    await db.query('DELETE FROM user_logins WHERE id = 5002');
    await db.end();
    const verify = await f.sink(['verify']);
    assert.equal(verify.code, 1, verify.stdout + verify.stderr);
    assert.match(verify.stdout, /DIFFERENT: 3 ids differ/);
    assert.match(verify.stdout, /id 5001: username: PostgreSQL "after_truncate_5001", ClickHouse "tampered"/);
    assert.match(verify.stdout, /id 5002: in ClickHouse but not in PostgreSQL/);
    assert.match(verify.stdout, /id 999999: in ClickHouse but not in PostgreSQL/);
    assert.match(verify.stdout, /ids 0\.\.9999: PostgreSQL \d+ rows \(hash \w+\), ClickHouse \d+ rows/);
  });
});
