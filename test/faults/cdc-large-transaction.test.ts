/**
 * A 1M-row transaction streams through with bounded memory: backpressure from
 * Kafka reaches the replication socket, nothing holds the transaction whole.
 * Peak RSS (VmHWM) of the cdc process is measured from /proc.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import kafkajs from 'kafkajs';
import { cliEnv, runCli, startCli } from '../support/cli.js';
import { createUserLogins, sql } from '../support/cdc.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

const ROWS = Number(process.env.WALBRIDGE_LARGE_ROWS ?? 1_000_000);
const PEAK_RSS_LIMIT_MB = 400;

async function peakRssKb(pid: number): Promise<number | undefined> {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined; // exited
  }
}

describe('cdc large transaction', () => {
  let services: IsolatedServices;
  before(async () => {
    services = await isolatedServices('cdc_large');
    await createUserLogins(services.databaseUrl);
  });
  after(async () => {
    await services.cleanup();
  });

  it(`streams a ${ROWS.toLocaleString('en')}-row transaction with bounded memory`, async (t) => {
    const args = ['start', '--slot', 'large', '--topic-prefix', services.topicPrefix, '--once'];
    assert.equal((await runCli('cdc', [...args, '--snapshot', 'none'], cliEnv(services))).code, 0);
    await sql(services.databaseUrl,
      `INSERT INTO user_logins (username, event_type, event_time) SELECT 'user' || g, 'login', now() FROM generate_series(1, ${ROWS}) g`);

    const started = Date.now();
    const run = startCli('cdc', args, cliEnv(services));
    let peakKb = 0;
    const sampler = setInterval(() => {
      void peakRssKb(run.child.pid!).then((kb) => {
        if (kb !== undefined && kb > peakKb) peakKb = kb;
      });
    }, 100);
    const result = await run.exited;
    clearInterval(sampler);
    const seconds = (Date.now() - started) / 1000;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`^sent ${ROWS} events \\(${ROWS} inserts\\)`));

    const admin = new kafkajs.Kafka({ brokers: services.kafkaBrokers.split(','), logLevel: kafkajs.logLevel.NOTHING }).admin();
    await admin.connect();
    const offsets = await admin.fetchTopicOffsets(`${services.topicPrefix}.public.user_logins`);
    await admin.disconnect();
    assert.equal(offsets.reduce((sum, o) => sum + Number(o.high), 0), ROWS);
    assert.equal((await sql(services.databaseUrl, 'SELECT count(*)::int AS n FROM user_logins WHERE NOT sent_to_kafka')).rows[0].n, 0);
    assert.match((await runCli('cdc', args, cliEnv(services))).stdout, /^sent 0 events/, 'the 1M marking updates were skipped, not re-sent');

    const peakMb = Math.round(peakKb / 1024);
    t.diagnostic(`${ROWS} rows in ${seconds.toFixed(1)} s (${Math.round(ROWS / seconds)} rows/s end to end incl. marking); cdc peak RSS (VmHWM) ${peakMb} MB`);
    assert.ok(peakKb > 0, 'sampled the process');
    assert.ok(peakMb < PEAK_RSS_LIMIT_MB, `peak RSS ${peakMb} MB stays under ${PEAK_RSS_LIMIT_MB} MB`);
  });
});
