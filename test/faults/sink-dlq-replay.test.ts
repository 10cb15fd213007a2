/**
 * What reaches the DLQ, and how it comes back:
 * - a flood of dead letters in one batch stops the sink (exit 1) with
 *   nothing dead-lettered or committed;
 * - `sink dlq replay` re-applies the letters once the cause is fixed, and a
 *   second replay (same group or a new one) changes nothing;
 * - a ClickHouse column dropped under a running sink pauses it (DLQ empty)
 *   until the column is back.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import kafkajs from 'kafkajs';
import { logins } from '../support/change-feed.js';
import { startCli } from '../support/cli.js';
import { sinkFixture, type SinkFixture } from '../support/sink-fixture.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Messages in the topic (0 when it does not exist). */
async function messagesIn(f: SinkFixture, topic: string): Promise<number> {
  const admin = new kafkajs.Kafka({ brokers: f.services.kafkaBrokers.split(','), logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(topic)) return 0;
    return (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
  } finally {
    await admin.disconnect();
  }
}

async function visibleRows(f: SinkFixture): Promise<string | undefined> {
  return (await f.clickhouse<{ n: string }>('SELECT count() AS n FROM user_logins FINAL WHERE _is_deleted = 0'))[0]?.n;
}

describe('dead letters: the flood stop and dlq replay', () => {
  let f: SinkFixture;
  before(async () => {
    f = await sinkFixture('sink_dlq', 1);
  });
  after(async () => {
    await f.cleanup();
  });

  it('stops on a flood, dead-letters with a raised ratio, and replays the letters idempotently after the fix', async () => {
    // A wrong column type by hand: every row's event_type ('login', 'register') is refused.
    await f.clickhouseCommand('ALTER TABLE user_logins MODIFY COLUMN event_type Nullable(Int32)');
    await f.feed.insert(logins(1, 30));
    const flood = await f.sink(['start', '--once']);
    assert.equal(flood.code, 1, flood.stderr);
    assert.match(flood.stderr, /30 of 30 messages in one batch could not be applied, more than --max-dead-letter-ratio 0\.5/);
    assert.equal(await messagesIn(f, `${f.topic}.dlq`), 0, 'nothing dead-lettered');

    const lettered = await f.sink(['start', '--once', '--max-dead-letter-ratio', '1']);
    assert.equal(lettered.code, 0, lettered.stderr);
    assert.match(lettered.stdout, /30 messages dead-lettered/);
    assert.equal(await messagesIn(f, `${f.topic}.dlq`), 30);

    await f.clickhouseCommand('ALTER TABLE user_logins MODIFY COLUMN event_type Nullable(String)');
    const replayed = await f.sink(['dlq', 'replay']);
    assert.equal(replayed.code, 0, replayed.stderr);
    assert.match(replayed.stdout, /^replayed 30 rows to user_logins/);
    assert.equal((await f.sink(['verify'])).code, 0);

    const again = await f.sink(['dlq', 'replay']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^replayed 0 rows/, 'its group committed: nothing is read twice');
    const otherGroup = await f.sink(['dlq', 'replay', '--group', 'another']);
    assert.equal(otherGroup.code, 0, otherGroup.stderr);
    assert.match(otherGroup.stdout, /^replayed 30 rows/);
    const verify = await f.sink(['verify']);
    assert.equal(verify.code, 0, verify.stdout);
    assert.equal(await visibleRows(f), '30');
    assert.equal(await messagesIn(f, `${f.topic}.dlq`), 30, 'no letter added');
  });

  it('pauses on a column dropped under it, dead-letters nothing, and resumes once it is back', async () => {
    f.feed.withSchemaHeader = true; // the events say which columns the table must hold
    const sink = startCli('sink', ['start', '--topic-prefix', f.services.topicPrefix, '--max-dead-letter-ratio', '1'], f.env);
    try {
      await f.feed.insert(logins(100, 10));
      const deadline = Date.now() + 60_000;
      while ((await visibleRows(f)) !== '40' && Date.now() < deadline) await sleep(200);
      assert.equal(await visibleRows(f), '40');
      await f.clickhouseCommand('ALTER TABLE user_logins DROP COLUMN username');
      await f.feed.insert(logins(200, 10));
      while (!/sink paused on ClickHouse table user_logins/.test(sink.output().stderr) && Date.now() < deadline + 30_000) await sleep(200);
      assert.match(sink.output().stderr, /sink paused on ClickHouse table user_logins .*username/);
      assert.equal(await visibleRows(f), '40', 'nothing written while paused');
      await f.clickhouseCommand('ALTER TABLE user_logins ADD COLUMN username Nullable(String) AFTER id');
      while ((await visibleRows(f)) !== '50' && Date.now() < deadline + 60_000) await sleep(200);
      assert.equal(await visibleRows(f), '50');
    } finally {
      sink.child.kill('SIGTERM');
    }
    const stopped = await sink.exited;
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.equal(await messagesIn(f, `${f.topic}.dlq`), 30, 'only the letters of the first test');
    // The values the drop took are the operator's to bring back: a replay refills them.
    assert.equal((await f.sink(['replay', '--from-lsn', '0/0'])).code, 0);
    const verify = await f.sink(['verify']);
    assert.equal(verify.code, 0, verify.stdout);
  });
});
