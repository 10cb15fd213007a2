/**
 * Several sink members in one group (separate processes) while the group
 * rebalances under them: members join, leave (SIGTERM) and die (SIGKILL)
 * while a stream runs that holds truncates and transactions whose events of
 * one key must apply in order (INSERT; DELETE of one id split over batches,
 * INSERT; TRUNCATE; INSERT). Small batches, so transactions straddle them.
 * Every time, `sink verify` must find ClickHouse EQUAL to PostgreSQL.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { logins, type Login } from '../support/change-feed.js';
import { startCli, type RunningCli } from '../support/cli.js';
import { sinkFixture, type SinkFixture } from '../support/sink-fixture.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const PARTITIONS = 4;

function login(id: number, tag: string): Login {
  return { id, username: `${tag}_${id}`, event_type: 'login', event_time: 1_700_000_000_000_000 + id };
}

/** One round of traffic with ids from `base`: a block, an insert and delete of one id at both ends of one transaction, updates, deletes. */
async function round(f: SinkFixture, base: number, withTruncate: boolean): Promise<void> {
  await f.feed.insert(logins(base, 150, `r${base}`));
  const middle = logins(base + 200, 120, `m${base}`).map((l) => ({ op: 'insert' as const, login: l }));
  await f.feed.transaction([{ op: 'insert', login: login(base + 199, 'gone') }, ...middle, { op: 'delete', id: base + 199 }]);
  for (let id = base; id < base + 150; id += 7) await f.feed.update({ ...login(id, 'updated'), event_type: 'update' });
  await f.feed.transaction([{ op: 'update', login: login(base + 3, 'twice') }, { op: 'delete', id: base + 3 }, { op: 'insert', login: login(base + 3, 'back') }]);
  if (withTruncate) {
    await f.feed.transaction([{ op: 'insert', login: login(base + 400, 'before_truncate') }, { op: 'truncate' }, { op: 'insert', login: login(base + 401, 'after_truncate') }]);
  }
}

/**
 * Runs `members` sink processes through a stream while the group changes:
 * all but one start, traffic, the last joins, a truncating round, one member
 * is killed (-9) or stopped, more traffic, a member leaves; then the group is
 * drained with `--once` and verified.
 */
async function scenario(f: SinkFixture, members: number, group: string, firstId: number): Promise<void> {
  const args = ['start', '--topic-prefix', f.services.topicPrefix, '--group', group, '--batch-rows', '40', '--linger-ms', '20'];
  const running: RunningCli[] = [];
  const start = (): void => void running.push(startCli('sink', args, { ...f.env, LOG_LEVEL: 'info' }));
  /** A member is stopped only once it has joined (a signal before its handlers are installed would just end it). */
  const joined = async (member: RunningCli): Promise<void> => {
    const deadline = Date.now() + 60_000;
    while (!/joined group/.test(member.output().stderr) && Date.now() < deadline) await sleep(100);
    assert.match(member.output().stderr, /joined group/);
  };
  for (let i = 0; i < members - 1; i += 1) start();
  let id = firstId;
  const next = (): number => (id += 1_000);
  await round(f, next(), false);
  start(); // the last member joins mid-stream: the group rebalances
  await round(f, next(), true);
  await sleep(1_500);
  await round(f, next(), false);
  const [first, second] = running;
  assert.ok(first && second);
  await joined(first);
  first.child.kill(members > 2 ? 'SIGKILL' : 'SIGTERM'); // a member dies (or leaves) with batches in hand
  await round(f, next(), true);
  await round(f, next(), false);
  start(); // and is replaced
  await sleep(1_000);
  await joined(second);
  second.child.kill('SIGTERM');
  await round(f, next(), true);
  await round(f, next(), false);
  await sleep(2_000);
  for (const member of running) {
    if (member.child.exitCode !== null || member.child.signalCode !== null) continue;
    await joined(member);
    member.child.kill('SIGTERM');
  }
  for (const member of running) {
    const result = await member.exited;
    const errors = result.stderr.split('\n').filter((line) => /"level":50|^error/.test(line)).join('\n');
    assert.ok(result.code === 0 || result.signal === 'SIGKILL', `a member ended with code ${result.code}, signal ${result.signal}: ${errors}`);
  }
  const drain = await f.sink(['start', '--once', '--group', group], 180_000);
  assert.equal(drain.code, 0, drain.stderr);
  const verify = await f.sink(['verify']);
  assert.equal(verify.code, 0, verify.stdout);
  assert.match(verify.stdout, /EQUAL/);
}

describe('several sink members with rebalances', () => {
  let f: SinkFixture;
  before(async () => {
    f = await sinkFixture('sink_members', PARTITIONS);
  });
  after(async () => {
    await f.cleanup();
  });

  it('two members: truncates and same-transaction changes end right (verify EQUAL)', async () => {
    await scenario(f, 2, 'members-two', 0);
  });

  it('three members, one killed with -9: verify EQUAL', async () => {
    await scenario(f, 3, 'members-three', 100_000);
  });
});

describe('two sinks reading different topics in one consumer group', () => {
  let a: SinkFixture;
  let b: SinkFixture;
  before(async () => {
    [a, b] = await Promise.all([sinkFixture('group_a', 2), sinkFixture('group_b', 3)]);
  });
  after(async () => {
    await Promise.all([a.cleanup(), b.cleanup()]);
  });

  it('each gets its own topic\'s partitions: the leader assigns by every member\'s subscription', async () => {
    // With kafkajs' round robin the leader (the first member) spread its own topic over both, and the
    // second sink, handed nothing it reads, waited for ever.
    const group = ['--group', `shared_${a.services.name}`];
    await a.feed.insert(logins(1, 50));
    await b.feed.insert(logins(1, 70));
    const leader = startCli('sink', ['start', '--topic-prefix', a.services.topicPrefix, ...group], { ...a.env, LOG_LEVEL: 'info' });
    try {
      const deadline = Date.now() + 60_000;
      while (!/joined group/.test(leader.output().stderr) && Date.now() < deadline) await sleep(100);
      assert.match(leader.output().stderr, /joined group/);
      const second = await b.sink(['start', '--once', ...group], 90_000);
      assert.equal(second.code, 0, `the second sink did not finish: ${second.stderr}`);
      assert.match(second.stdout, /^wrote 70 rows to user_logins/);
      await a.feed.insert(logins(100, 30)); // the leader still has its partitions after the rebalance
      const visible = async (): Promise<string | undefined> =>
        (await a.clickhouse<{ n: string }>('SELECT count() AS n FROM user_logins FINAL WHERE _is_deleted = 0'))[0]?.n;
      while ((await visible()) !== '80' && Date.now() < deadline + 60_000) await sleep(200);
      assert.equal(await visible(), '80');
      assert.doesNotMatch(leader.output().stderr, /topics it does not read/);
    } finally {
      leader.child.kill('SIGTERM');
    }
    assert.equal((await leader.exited).code, 0);
    assert.equal((await b.sink(['verify'])).code, 0);
  });
});
