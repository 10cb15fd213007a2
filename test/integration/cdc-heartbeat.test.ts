/**
 * `cdc start --heartbeat-interval`: with no writes to any captured table, the
 * heartbeats pass through the slot, so the confirmed LSN, the heartbeat
 * metrics and the freshness histogram move, and nothing reaches the topic.
 * PostgreSQL 13 (no logical messages in pgoutput) refuses the flag.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import kafkajs from 'kafkajs';
import { createUserLogins, serverMajor, slotRow, sql, waitFor } from '../support/cdc.js';
import { cliEnv, runCli, startCli, type RunningCli } from '../support/cli.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';
import { freePort } from '../support/ports.js';
import { get, sample } from '../support/metrics.js';
import { parseLsn } from '../../src/core/lsn.js';

async function topicEnd(brokers: string, topic: string): Promise<number> {
  const kafka = new kafkajs.Kafka({ brokers: brokers.split(','), logLevel: kafkajs.logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic)).reduce((sum, o) => sum + Number(o.high), 0);
  } finally {
    await admin.disconnect();
  }
}

describe('cdc heartbeat', () => {
  let services: IsolatedServices;
  let cdc: RunningCli | undefined;
  let major: number;
  before(async () => {
    services = await isolatedServices('heartbeat');
    await createUserLogins(services.databaseUrl);
    major = await serverMajor(services.databaseUrl);
  });
  after(async () => {
    cdc?.child.kill('SIGKILL');
    await services.cleanup();
  });

  it('moves the confirmed LSN, the heartbeat metrics and freshness with no table writes, sending nothing', async (t) => {
    const args = ['start', '--slot', 'heartbeat_probe', '--topic-prefix', services.topicPrefix];
    if (major < 14) {
      const refused = await runCli('cdc', [...args, '--heartbeat-interval', '1'], cliEnv(services));
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, /--heartbeat-interval needs PostgreSQL 14 or later/);
      return;
    }
    const port = await freePort();
    cdc = startCli('cdc', [...args, '--metrics-port', String(port)], { ...cliEnv(services), CDC_HEARTBEAT_INTERVAL: '0.5' });
    const first = await waitFor('a first heartbeat confirmed', async () => {
      const text = (await get(port, '/metrics').catch(() => undefined))?.text;
      return text !== undefined && sample(text, 'walbridge_cdc_heartbeats_total')! >= 1 ? text : undefined;
    }, 60_000);
    const topic = `${services.topicPrefix}.public.user_logins`;
    const endBefore = await topicEnd(services.kafkaBrokers, topic);
    const slotBefore = parseLsn((await slotRow(services.databaseUrl, 'heartbeat_probe'))!.confirmed_flush_lsn);
    const walNow = parseLsn((await sql(services.databaseUrl, 'SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn);

    const later = await waitFor('more heartbeats, fresher', async () => {
      const text = (await get(port, '/metrics')).text;
      return sample(text, 'walbridge_cdc_heartbeats_total')! >= sample(first, 'walbridge_cdc_heartbeats_total')! + 3 ? text : undefined;
    }, 30_000);
    // Every confirmed heartbeat was written; the one being written may be streamed and confirmed
    // before its own session's reply is read (one at a time, so at most one).
    assert.ok(sample(later, 'walbridge_cdc_heartbeats_written_total')! + 1 >= sample(later, 'walbridge_cdc_heartbeats_total')!);
    const age = Date.now() / 1000 - sample(later, 'walbridge_cdc_heartbeat_timestamp_seconds')!;
    assert.ok(age >= 0 && age < 5, `last heartbeat ${age}s old`);
    assert.ok(sample(later, 'walbridge_cdc_commit_to_kafka_ack_seconds_count')! > sample(first, 'walbridge_cdc_commit_to_kafka_ack_seconds_count')!,
      'each heartbeat is a commit: freshness is observed');
    assert.ok(sample(later, 'walbridge_cdc_confirmed_lsn')! > sample(first, 'walbridge_cdc_confirmed_lsn')!);
    const delta = (name: string): number => sample(later, name)! - sample(first, name)!;
    t.diagnostic(`per heartbeat: ${Math.round(delta('walbridge_cdc_confirmed_lsn') / delta('walbridge_cdc_heartbeats_total'))} WAL bytes confirmed (other databases' WAL included), ` +
      `commit → confirmed ${(1000 * delta('walbridge_cdc_commit_to_kafka_ack_seconds_sum') / delta('walbridge_cdc_commit_to_kafka_ack_seconds_count')).toFixed(1)} ms on average`);
    // The slot itself moves past the WAL position read before, with no table written.
    await waitFor('the slot confirmed past the earlier WAL end', async () => {
      const confirmed = parseLsn((await slotRow(services.databaseUrl, 'heartbeat_probe'))!.confirmed_flush_lsn);
      return confirmed > slotBefore && confirmed >= walNow || undefined;
    }, 30_000);
    assert.equal(await topicEnd(services.kafkaBrokers, topic), endBefore, 'heartbeats send nothing to the captured topic');
    assert.equal(endBefore, 0);
    assert.equal((await get(port, '/readyz')).status, 200);

    cdc.child.kill('SIGTERM');
    const exit = await cdc.exited;
    assert.equal(exit.code, 0, exit.stderr);
  });

  it('a --heartbeat-interval that is not seconds is a usage error', async () => {
    const result = await runCli('cdc', ['start', '--slot', 'heartbeat_bad', '--heartbeat-interval', '5m', '--topic-prefix', services.topicPrefix], cliEnv(services));
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /--heartbeat-interval \/ CDC_HEARTBEAT_INTERVAL must be seconds between 0\.1 and 86400 \(0 for none\), got '5m'/);
  });
});
