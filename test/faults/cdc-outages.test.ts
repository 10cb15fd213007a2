/**
 * cdc rides through outages while a writer keeps inserting: PostgreSQL
 * restarted with -m fast and with -m immediate, the Kafka broker killed -9
 * and started again. Each time cdc stays up, says what it waits for, streams
 * again from the slot by itself, and marks every row; the sink then finds
 * ClickHouse EQUAL to PostgreSQL (nothing lost). `cdc start --once` with
 * PostgreSQL down gives up after --retry-for with exit 1.
 * Needs the test stack scripts/test.sh starts (WALBRIDGE_TEST_STACK_DIR).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { cliEnv, runCli, startCli, type RunningCli } from '../support/cli.js';
import { slotRow, sql, waitFor } from '../support/cdc.js';
import { isolatedServices, serviceUrls, type IsolatedServices } from '../support/services.js';
import { startWriter } from '../support/writer.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SLOT = 'outages';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** scripts/stack.sh on the test stack, e.g. `kill kafka`, or `up` with STACK_SERVICES=kafka. */
async function stack(args: string[], services?: string): Promise<void> {
  const stackDir = process.env.WALBRIDGE_TEST_STACK_DIR;
  assert.ok(stackDir, 'this test stops and starts the test stack\'s services: run it through scripts/test.sh with its own stack');
  const prefix = new URL(serviceUrls().databaseUrl).port.slice(0, 1);
  await promisify(execFile)('bash', [path.join(ROOT, 'scripts/stack.sh'), ...args], {
    env: { ...process.env, STACK_DIR: stackDir, STACK_PORT_PREFIX: prefix, ...(services ? { STACK_SERVICES: services } : {}) },
  });
}

/** Inserts a row every few ms until stopped, reconnecting through outages; counts the committed rows. */
const startLoginWriter = (databaseUrl: string) =>
  startWriter(databaseUrl, () => [`INSERT INTO user_logins (username, event_type, event_time) VALUES ('writer', 'login', now())`], 20);

describe('cdc rides through outages', () => {
  let services: IsolatedServices;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    services = await isolatedServices('cdc_outages');
    env = cliEnv(services);
    const migrated = await runCli('migrate', [], env);
    assert.equal(migrated.code, 0, migrated.stderr);
  });
  after(async () => {
    await services.cleanup();
  });

  const unsent = async (): Promise<number> => (await sql(services.databaseUrl, 'SELECT count(*)::int AS n FROM user_logins WHERE NOT sent_to_kafka')).rows[0].n as number;

  /**
   * cdc streams, the writer writes, `outage` happens mid-stream; cdc must wait
   * (its log says for what), stream again and catch up by itself; then the
   * sink's copy must equal the table.
   */
  async function rideThrough(outage: () => Promise<void>, waitedFor: RegExp): Promise<string> {
    const cdc: RunningCli = startCli('cdc', ['start', '--slot', SLOT, '--topic-prefix', services.topicPrefix], { ...env, LOG_LEVEL: 'info' });
    const writer = startLoginWriter(services.databaseUrl);
    const withLog = (error: Error): never => {
      throw new Error(`${error.message}; cdc's log:\n${cdc.output().stderr}`);
    };
    try {
      await waitFor('the slot to be active', async () => ((await slotRow(services.databaseUrl, SLOT))?.active_pid ? true : undefined), 60_000).catch(withLog);
      await waitFor('the first rows marked', async () => ((await sql(services.databaseUrl, 'SELECT count(*)::int AS n FROM user_logins WHERE sent_to_kafka')).rows[0].n > 0 ? true : undefined), 60_000).catch(withLog);
      const before = writer.committed();
      await outage();
      await sleep(2_000);
      await writer.stop();
      assert.ok(writer.committed() > before, 'the writer committed rows after the outage');
      await waitFor('cdc to catch up by itself (every row marked sent)', async () => ((await unsent()) === 0 ? true : undefined), 180_000).catch(withLog);
      assert.equal(cdc.child.exitCode, null, `cdc exited during the outage:\n${cdc.output().stderr}`);
      const log = cdc.output().stderr;
      assert.match(log, waitedFor);
      assert.match(log, /is back; streaming again from \d+\/[0-9A-F]+/);
    } finally {
      await writer.stop();
      cdc.child.kill('SIGTERM');
    }
    const stopped = await cdc.exited;
    assert.equal(stopped.code, 0, stopped.stderr);

    const sink = await runCli('sink', ['start', '--once', '--topic-prefix', services.topicPrefix], env, 120_000);
    assert.equal(sink.code, 0, sink.stderr);
    const verify = await runCli('sink', ['verify', '--topic-prefix', services.topicPrefix], env, 120_000);
    assert.equal(verify.code, 0, `${verify.stdout}\n${verify.stderr}`);
    assert.match(verify.stdout, /EQUAL/);
    return stopped.stderr;
  }

  it('PostgreSQL restarted with -m fast; meanwhile cdc start --once gives up after --retry-for with exit 1', async () => {
    await rideThrough(async () => {
      await stack(['down'], 'postgres');
      try {
        const started = Date.now();
        const once = await runCli('cdc', ['start', '--once', '--retry-for', '3', '--slot', 'once_down', '--topic-prefix', services.topicPrefix], env, 60_000);
        const seconds = (Date.now() - started) / 1000;
        assert.equal(once.code, 1, once.stderr);
        assert.match(once.stderr, /error: gave up waiting for PostgreSQL at 127\.0\.0\.1:\d+\/\w+ after [34]s \(--retry-for\)/);
        assert.ok(seconds >= 3 && seconds < 30, `gave up after ${seconds}s`);
      } finally {
        await stack(['up'], 'postgres');
      }
    }, /waiting for PostgreSQL at 127\.0\.0\.1:\d+\/\w+: .*retrying in [\d.]+s, holding nothing: what was not confirmed is read again from the slot/);
  });

  it('PostgreSQL stopped with -m immediate (crash recovery) and started again', async () => {
    await rideThrough(async () => {
      await stack(['kill', 'postgres']);
      await sleep(1_000);
      await stack(['up'], 'postgres');
    }, /waiting for PostgreSQL at 127\.0\.0\.1:\d+\/\w+: /);
  });

  it('the Kafka broker killed -9 and started again', async () => {
    await rideThrough(async () => {
      await stack(['kill', 'kafka']);
      await sleep(3_000);
      await stack(['up'], 'kafka');
    }, /waiting for Kafka at 127\.0\.0\.1:\d+: .*retrying in [\d.]+s/);
  });
});
