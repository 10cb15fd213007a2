/**
 * ClickHouse stopped while the sink runs and rows keep coming, twice: before
 * the sink's first message (its first look at the table waits) and for 20 s
 * in mid-stream (an insert waits). The sink says what it waits for, retries
 * with capped backoff, commits nothing meanwhile, never exits, and catches
 * up by itself once ClickHouse is back.
 * Needs the test stack scripts/test.sh starts (WALBRIDGE_TEST_STACK_DIR).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { logins } from '../support/change-feed.js';
import { startCli } from '../support/cli.js';
import { sinkFixture, type SinkFixture } from '../support/sink-fixture.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The stack's ClickHouse server process: the one started with this stack's
 * config file. (Its PID file can hold the PID of the `setsid` that forked
 * it, so the process is found by its exact command line instead.)
 */
async function clickhousePid(stackDir: string): Promise<number> {
  const wanted = `--config-file=${path.join(stackDir, 'clickhouse', 'config.xml')}`;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const args: string[] = await readFile(`/proc/${entry}/cmdline`, 'utf8').then((text) => text.split('\0'), () => []);
    if (args[0]?.endsWith('clickhouse-server') && args.includes(wanted)) return Number(entry);
  }
  throw new Error(`no clickhouse-server running with ${wanted}`);
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(500);
  }
}

/** Stops the stack's ClickHouse (SIGTERM, waited for); returns when it is gone. */
async function stopClickHouse(stackDir: string): Promise<void> {
  const pid = await clickhousePid(stackDir);
  process.kill(pid, 'SIGTERM');
  await until('ClickHouse to stop', 30_000, async () => !alive(pid));
}

async function startClickHouse(stackDir: string, clickhouseUrl: string): Promise<void> {
  const port = new URL(clickhouseUrl).port;
  await promisify(execFile)('bash', [path.join(ROOT, 'scripts/stack.sh'), 'up'], {
    env: { ...process.env, STACK_DIR: stackDir, STACK_PORT_PREFIX: port.slice(0, 1) },
  });
}

describe('ClickHouse down while the sink runs', () => {
  let f: SinkFixture;
  const stackDir = process.env.WALBRIDGE_TEST_STACK_DIR;
  before(async () => {
    f = await sinkFixture('sink_ch_down', 3);
  });
  after(async () => {
    await f.cleanup();
  });

  it('the sink waits, then recovers by itself; nothing lost', async () => {
    assert.ok(stackDir, 'this test stops and starts the test stack\'s ClickHouse: run it through scripts/test.sh with its own stack');
    const count = async (): Promise<number> =>
      Number((await f.clickhouse<{ n: string }>('SELECT count() AS n FROM user_logins FINAL WHERE _is_deleted = 0'))[0]?.n ?? 0);
    const sink = startCli('sink', ['start', '--topic-prefix', f.services.topicPrefix, '--batch-rows', '2000', '--linger-ms', '200'], { ...f.env, LOG_LEVEL: 'info' });
    try {
      // Down before the first message: the sink's first look at the table (describe, create, alter) waits too.
      await until('the sink to join its group', 60_000, async () => /joined group/.test(sink.output().stderr));
      await stopClickHouse(stackDir);
      await f.feed.insert(logins(1, 5_000));
      await until('the sink to wait for ClickHouse', 30_000, async () =>
        /waiting for ClickHouse at http:\/\/.*holding the schema check of user_logins/.test(sink.output().stderr));
      assert.equal(sink.child.exitCode, null, `the sink exited while ClickHouse was down: ${sink.output().stderr}`);
      await startClickHouse(stackDir, f.services.clickhouseUrl);
      await until('the first rows in ClickHouse', 60_000, async () => (await count()) === 5_000);

      // Down for 20 s in mid-stream: the inserts wait.
      await stopClickHouse(stackDir);
      const stoppedAt = Date.now();
      await f.feed.insert(logins(5_001, 5_000));
      for (let id = 1; id <= 100; id += 1) await f.feed.update({ id, username: `while_down_${id}`, event_type: 'update', event_time: null });
      await sleep(Math.max(0, 20_000 - (Date.now() - stoppedAt)));
      assert.match(sink.output().stderr, /waiting for ClickHouse at http:\/\/.*holding the insert of \d+ rows \(offsets not committed\)/);
      assert.equal(sink.child.exitCode, null, `the sink exited while ClickHouse was down: ${sink.output().stderr}`);

      await startClickHouse(stackDir, f.services.clickhouseUrl);
      await until('the sink to catch up', 90_000, async () => (await count()) === 10_000);
    } finally {
      sink.child.kill('SIGTERM');
    }
    const result = await sink.exited;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /is back; the insert of \d+ rows/);
    const verify = await f.sink(['verify']);
    assert.equal(verify.code, 0, verify.stdout);
  });
});
