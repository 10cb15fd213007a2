/**
 * --metrics-port on a running cdc and sink: /healthz, /readyz, and the
 * Prometheus families of /metrics, scraped over HTTP, moving as rows flow.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createUserLogins, sql, waitFor } from '../support/cdc.js';
import { cliEnv, runCli, startCli, type RunningCli } from '../support/cli.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';
import { freePort } from '../support/ports.js';
import { get, sample } from '../support/metrics.js';

const rows = (from: number, to: number): string =>
  `INSERT INTO user_logins (id, username, event_type, event_time) SELECT g, 'u' || g, 'login', now() FROM generate_series(${from}, ${to}) g`;

describe('metrics and health endpoints', () => {
  let services: IsolatedServices;
  let cdc: RunningCli | undefined;
  let sink: RunningCli | undefined;
  before(async () => {
    services = await isolatedServices('metrics');
    await createUserLogins(services.databaseUrl);
    await sql(services.databaseUrl, rows(1, 50));
  });
  after(async () => {
    cdc?.child.kill('SIGKILL');
    sink?.child.kill('SIGKILL');
    await services.cleanup();
  });

  it('cdc and sink serve /healthz, /readyz and /metrics whose values move', async () => {
    const [cdcPort, sinkPort] = [await freePort(), await freePort()];
    const env = cliEnv(services);
    cdc = startCli('cdc', ['start', '--slot', 'metrics_probe', '--topic-prefix', services.topicPrefix, '--metrics-port', String(cdcPort)], env);
    sink = startCli('sink', ['start', '--topic-prefix', services.topicPrefix, '--linger-ms', '10'], { ...env, METRICS_PORT: String(sinkPort) });

    for (const port of [cdcPort, sinkPort]) {
      await waitFor(`/healthz on ${port}`, async () => (await get(port, '/healthz').catch(() => undefined))?.status === 200 || undefined, 60_000);
    }
    await waitFor('cdc ready', async () => (await get(cdcPort, '/readyz')).status === 200 || undefined, 60_000);
    const table = 'table="public.user_logins"';
    const snapshot = await waitFor('snapshot rows counted', async () => {
      const text = (await get(cdcPort, '/metrics')).text;
      return sample(text, 'walbridge_cdc_events_total', `${table},op="r"`) === 50 ? text : undefined;
    }, 60_000);
    const confirmedBefore = sample(snapshot, 'walbridge_cdc_confirmed_lsn');
    const acksBefore = sample(snapshot, 'walbridge_cdc_commit_to_kafka_ack_seconds_count') ?? 0;
    assert.ok(sample(snapshot, 'walbridge_cdc_kafka_send_duration_seconds_count')! > 0);
    assert.ok(sample(snapshot, 'walbridge_cdc_kafka_send_batch_messages_sum')! >= 50);

    await sql(services.databaseUrl, rows(51, 80));
    // The 30 rows are one transaction: its commit-to-ack time is observed once it is confirmed.
    // Events count when read and an idle keepalive can move the confirmed LSN before they are
    // read, so only a new observation in the histogram says that this transaction was confirmed.
    const streamed = await waitFor('inserts counted and their transaction confirmed', async () => {
      const text = (await get(cdcPort, '/metrics')).text;
      const moved = sample(text, 'walbridge_cdc_events_total', `${table},op="c"`) === 30 &&
        sample(text, 'walbridge_cdc_confirmed_lsn')! > (confirmedBefore ?? 0) &&
        sample(text, 'walbridge_cdc_commit_to_kafka_ack_seconds_count')! > acksBefore;
      return moved ? text : undefined;
    }, 60_000);
    // The slot poll runs every 10 s.
    const polled = await waitFor('slot lag and wal_status', async () => {
      const text = (await get(cdcPort, '/metrics')).text;
      return sample(text, 'walbridge_cdc_slot_wal_status', 'status="reserved"') === 1 ? text : undefined;
    }, 30_000);
    assert.ok(sample(polled, 'walbridge_cdc_slot_lag_bytes')! >= 0);
    assert.match(streamed, /^# TYPE walbridge_cdc_events_total counter$/m);
    assert.equal(sample(streamed, 'walbridge_ready'), 1, '/readyz said 200 above');
    assert.match(streamed, /^walbridge_process_resident_memory_bytes \d+/m);
    assert.match(streamed, /^# TYPE walbridge_cdc_kafka_send_duration_seconds histogram$/m);

    const sunk = await waitFor('sink wrote 80 rows', async () => {
      const text = (await get(sinkPort, '/metrics')).text;
      return sample(text, 'walbridge_sink_rows_written_total', 'table="user_logins",kind="upsert"') === 80 ? text : undefined;
    }, 60_000);
    assert.ok(sample(sunk, 'walbridge_sink_clickhouse_insert_duration_seconds_count')! > 0);
    assert.ok(sample(sunk, 'walbridge_sink_batch_rows_sum')! >= 80);
    assert.ok(sample(sunk, 'walbridge_sink_commit_to_insert_seconds_count')! > 0);
    assert.equal(sample(sunk, 'walbridge_sink_dead_letters_total'), 0);
    // Declared at start, before any wait, so dashboards and alerts have the series.
    assert.equal(sample(sunk, 'walbridge_waiting', 'dependency="clickhouse"'), 0);
    assert.equal(sample(sunk, 'walbridge_retries_total', 'dependency="clickhouse"'), 0);
    const lagged = await waitFor('consumer lag polled and sink ready', async () => {
      const text = (await get(sinkPort, '/metrics')).text;
      const lag = sample(text, 'walbridge_sink_consumer_lag_messages', `topic="${services.topicPrefix}.public.user_logins",partition="0"`);
      return lag === 0 && (await get(sinkPort, '/readyz')).status === 200 ? text : undefined;
    }, 40_000);
    assert.match(lagged, /^# TYPE walbridge_sink_consumer_lag_messages gauge$/m);
    assert.equal((await get(sinkPort, '/nowhere')).status, 404);

    cdc.child.kill('SIGTERM');
    sink.child.kill('SIGTERM');
    const [cdcExit, sinkExit] = await Promise.all([cdc.exited, sink.exited]);
    assert.equal(cdcExit.code, 0, cdcExit.stderr);
    assert.equal(sinkExit.code, 0, sinkExit.stderr);
  });

  it('a --metrics-port that is not a port is a usage error', async () => {
    const result = await runCli('sink', ['start', '--once', '--metrics-port', 'abc', '--topic-prefix', services.topicPrefix], cliEnv(services));
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /--metrics-port \/ METRICS_PORT must be a port number, got 'abc'/);
  });
});
