/**
 * kill -9 at random moments while the sink works through a large backlog
 * (so some kills fall between an insert and its offset commit), restarted
 * each time: nothing is lost and no id is visible twice. Then SIGTERM: the
 * sink finishes the batch in hand, commits, and exits 0 within seconds.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import kafkajs from 'kafkajs';
import { logins } from '../support/change-feed.js';
import { startCli } from '../support/cli.js';
import { sinkFixture, type SinkFixture } from '../support/sink-fixture.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const SHORT_SESSION = ['--session-timeout-ms', '6000'];

async function lag(f: SinkFixture): Promise<bigint> {
  const admin = new kafkajs.Kafka({ brokers: f.services.kafkaBrokers.split(','), logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const ends = await admin.fetchTopicOffsets(f.topic);
    const [group] = await admin.fetchOffsets({ groupId: f.env.SINK_GROUP!, topics: [f.topic] });
    let total = 0n;
    for (const end of ends) {
      const done = group?.partitions.find((p) => p.partition === end.partition)?.offset ?? '-1';
      total += BigInt(end.high) - (BigInt(done) < 0n ? 0n : BigInt(done));
    }
    return total;
  } finally {
    await admin.disconnect();
  }
}

describe('sink killed with -9 and restarted', () => {
  let f: SinkFixture;
  before(async () => {
    f = await sinkFixture('sink_crash', 3);
  });
  after(async () => {
    await f.cleanup();
  });

  it('loses nothing and shows no duplicate', async () => {
    // Large enough that three rounds of small batches do not drain it.
    const rows = 100_000;
    for (let first = 1; first <= rows; first += 5_000) await f.feed.insert(logins(first, 5_000));
    for (let id = 1; id <= rows; id += 30) await f.feed.update({ id, username: `updated_${id}`, event_type: 'update', event_time: null });
    let deleted = 0;
    for (let id = 7; id <= rows; id += 120, deleted += 1) await f.feed.delete(id);
    const total = await lag(f);
    // Each round waits for the sink to commit progress (a new member first
    // waits out the killed one's session: the broker's least, 6 s, here rather
    // than the default 30 s), then kills it a random
    // moment later, while it is writing the next batches: some kills land
    // between an insert and its offset commit.
    let before = total;
    for (let round = 0; round < 3; round += 1) {
      const sink = startCli('sink', ['start', '--topic-prefix', f.services.topicPrefix, '--batch-rows', '2000', '--linger-ms', '100', ...SHORT_SESSION], f.env);
      const deadline = Date.now() + 90_000;
      while ((await lag(f)) >= before && Date.now() < deadline) await sleep(200);
      await sleep(Math.floor(Math.random() * 300));
      sink.child.kill('SIGKILL');
      const result = await sink.exited;
      assert.equal(result.signal, 'SIGKILL', `the sink ended before it was killed: ${result.stderr}`);
      const now = await lag(f);
      assert.ok(now < before, `round ${round + 1}: no offsets committed before the kill (lag ${before} → ${now})`);
      before = now;
    }
    assert.ok(before > 0n, 'the backlog was gone before the last kill: make it larger');
    const finish = await f.sink(['start', '--once', ...SHORT_SESSION]);
    assert.equal(finish.code, 0, finish.stderr);
    assert.equal(await lag(f), 0n);
    const verify = await f.sink(['verify']);
    assert.equal(verify.code, 0, verify.stdout);
    const [visible] = await f.clickhouse<{ n: string }>('SELECT count() AS n FROM user_logins FINAL WHERE _is_deleted = 0');
    assert.equal(visible?.n, String(rows - deleted));
  });

  it('on SIGTERM finishes the batch in hand, commits and exits 0 within seconds', async () => {
    // A group of its own: the killed members above would hold up its join until their sessions expire.
    const group = ['--group', 'sigterm-test'];
    await f.feed.insert(logins(200_000, 60_000));
    const sink = startCli('sink', ['start', '--topic-prefix', f.services.topicPrefix, '--batch-rows', '5000', ...group], f.env);
    const count = async (): Promise<number> =>
      Number((await f.clickhouse<{ n: string }>('SELECT count() AS n FROM user_logins WHERE id >= 200000'))[0]?.n ?? 0);
    const deadline = Date.now() + 60_000;
    while ((await count()) === 0 && Date.now() < deadline) await sleep(100);
    const signalled = Date.now();
    sink.child.kill('SIGTERM');
    const result = await sink.exited;
    assert.equal(result.code, 0, result.stderr);
    assert.ok(Date.now() - signalled < 10_000, `took ${Date.now() - signalled} ms to stop: ${result.stderr}`);
    const wrote = /^wrote (\d+) rows to user_logins/.exec(result.stdout);
    assert.ok(wrote && Number(wrote[1]) > 0, result.stdout);
    const finish = await f.sink(['start', '--once', ...group]);
    assert.equal(finish.code, 0, finish.stderr);
    const verify = await f.sink(['verify']);
    assert.equal(verify.code, 0, verify.stdout);
  });
});
