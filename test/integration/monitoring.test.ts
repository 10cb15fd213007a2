/**
 * infra/prometheus and infra/grafana against the real thing: promtool checks
 * the files; Debian's Prometheus (scripts/install-stack.sh) scrapes a running
 * cdc (with heartbeats) and sink every second, loading alerts.yml; then every
 * rule's expression, every alert's signal and every dashboard query,
 * extracted from the files Prometheus loaded and from the dashboard JSON,
 * must return at least one series. An alert's signal is its expression
 * without the trailing `<comparison> <number>` (the convention alerts.yml
 * keeps), since a healthy pipeline leaves the alert itself empty.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import kafkajs from 'kafkajs';
import { createUserLogins, sql, waitFor } from '../support/cdc.js';
import { cliEnv, startCli, type RunningCli } from '../support/cli.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';
import { stackPortPrefix } from '../support/ports.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const ALERTS = path.join(ROOT, 'infra/prometheus/alerts.yml');
const DASHBOARD = path.join(ROOT, 'infra/grafana/walbridge.json');
const execFileAsync = promisify(execFile);

/** promtool, saying how to get it when it is missing. */
async function promtool(...args: string[]): Promise<string> {
  try {
    return (await execFileAsync('promtool', args)).stdout;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('promtool is not installed: scripts/install-stack.sh installs Debian\'s prometheus package');
    throw error;
  }
}

interface Rule { type: 'recording' | 'alerting'; name: string; query: string; state?: string }

/** `<signal> <comparison> <number>` → the signal; null when an alert does not keep the convention. */
function alertSignal(expr: string): string | null {
  return /^(.+?)\s*(?:==|!=|>=|<=|>|<)\s*-?[0-9.]+(?:e[+-]?\d+)?$/.exec(expr.trim())?.[1] ?? null;
}

describe('monitoring: Prometheus rules and the Grafana dashboard on live metrics', () => {
  let services: IsolatedServices;
  let cdc: RunningCli | undefined;
  let sink: RunningCli | undefined;
  let prometheus: ChildProcess | undefined;
  let work: string;
  let promPort: number;

  const query = async (expr: string): Promise<unknown[]> => {
    const response = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await response.json()) as { status: string; error?: string; data: { resultType: string; result: unknown[] } };
    assert.equal(body.status, 'success', `${expr}: ${body.error}`);
    // A scalar (time()) is one value, not a list of series.
    return body.data.resultType === 'scalar' ? [body.data.result] : body.data.result;
  };

  before(async () => {
    services = await isolatedServices('monitoring');
    await createUserLogins(services.databaseUrl);
    work = mkdtempSync(path.join(tmpdir(), 'wb-prometheus-'));
  });
  after(async () => {
    if (prometheus?.pid !== undefined && prometheus.exitCode === null) {
      const exited = new Promise((resolve) => prometheus!.once('exit', resolve));
      process.kill(prometheus.pid, 'SIGTERM');
      await exited;
    }
    cdc?.child.kill('SIGKILL');
    sink?.child.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
    await services.cleanup();
  });

  it('promtool accepts the rules and the scrape config', async () => {
    assert.match(await promtool('check', 'rules', ALERTS), /SUCCESS: \d+ rules found/);
    assert.match(await promtool('check', 'config', path.join(ROOT, 'infra/prometheus/prometheus.yml')), /is valid prometheus config file syntax/);
  });

  it('every rule, alert signal and dashboard query returns series from a running cdc and sink', async () => {
    const prefix = stackPortPrefix(services.databaseUrl);
    promPort = Number(`${prefix}9090`);
    const [cdcPort, sinkPort] = [Number(`${prefix}9464`), Number(`${prefix}9465`)];
    const env = cliEnv(services);
    await sql(services.databaseUrl, `INSERT INTO user_logins (id, username, event_type, event_time) SELECT g, 'u' || g, 'login', now() FROM generate_series(1, 20) g`);
    cdc = startCli('cdc', ['start', '--slot', 'monitoring_probe', '--topic-prefix', services.topicPrefix, '--metrics-port', String(cdcPort), '--heartbeat-interval', '0.5'], env);
    sink = startCli('sink', ['start', '--topic-prefix', services.topicPrefix, '--linger-ms', '10', '--metrics-port', String(sinkPort)], env);

    // The scrape config of infra/prometheus/prometheus.yml (same jobs, same rule file) on this test's ports, every second.
    // JSON is YAML, so no YAML library is needed.
    const config = {
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      rule_files: [ALERTS],
      scrape_configs: [
        { job_name: 'walbridge-cdc', static_configs: [{ targets: [`127.0.0.1:${cdcPort}`] }] },
        { job_name: 'walbridge-sink', static_configs: [{ targets: [`127.0.0.1:${sinkPort}`] }] },
      ],
    };
    writeFileSync(path.join(work, 'prometheus.yml'), JSON.stringify(config));
    const log = createWriteStream(path.join(work, 'prometheus.log'));
    prometheus = spawn('prometheus', [
      `--config.file=${path.join(work, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(work, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    prometheus.stdout!.pipe(log);
    prometheus.stderr!.pipe(log);
    let failedToStart: Error | null = null;
    prometheus.once('error', (error) => (failedToStart = error));
    await waitFor(`Prometheus ready (log: ${path.join(work, 'prometheus.log')})`, async () => {
      if (failedToStart) throw failedToStart;
      if (prometheus!.exitCode !== null) throw new Error(`prometheus exited with ${prometheus!.exitCode}: ${readFileSync(path.join(work, 'prometheus.log'), 'utf8').slice(-2000)}`);
      return (await fetch(`http://127.0.0.1:${promPort}/-/ready`).catch(() => undefined))?.ok || undefined;
    }, 60_000);

    // Traffic: inserts, an update, a delete, and one message the sink cannot read (so the DLQ moves).
    for (const statement of [
      `INSERT INTO user_logins (id, username, event_type, event_time) SELECT g, 'u' || g, 'login', now() FROM generate_series(21, 60) g`,
      `UPDATE user_logins SET event_type = 'logout' WHERE id <= 10`,
      `DELETE FROM user_logins WHERE id > 55`,
    ]) await sql(services.databaseUrl, statement);
    await waitFor('the sink scraped with every row written', async () =>
      (await query(`walbridge_sink_rows_written_total{job="walbridge-sink"} >= 55`)).length > 0 || undefined, 90_000);
    const kafka = new kafkajs.Kafka({ brokers: services.kafkaBrokers.split(','), logLevel: kafkajs.logLevel.NOTHING });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: `${services.topicPrefix}.public.user_logins`, messages: [{ key: '{"id":999}', value: 'not an envelope' }] });
    await producer.disconnect();

    // The slot and consumer-lag polls run every 10 s; the dead letter must be counted and alerted on.
    for (const expr of ['walbridge_cdc_slot_lag_bytes', 'walbridge_sink_consumer_lag_messages', 'walbridge_sink_dead_letters_total > 0', 'walbridge:sink_dead_letters:increase15m > 0']) {
      await waitFor(`${expr} in Prometheus`, async () => (await query(expr)).length > 0 || undefined, 60_000);
    }

    // Rules evaluated after every source series exists (each group runs every second).
    const sourcesPresent = Date.now();
    const groups = await waitFor('every rule group evaluated again', async () => {
      const loaded = ((await (await fetch(`http://127.0.0.1:${promPort}/api/v1/rules`)).json()) as { data: { groups: { lastEvaluation: string; rules: Rule[] }[] } }).data.groups;
      return loaded.length > 0 && loaded.every((g) => Date.parse(g.lastEvaluation) > sourcesPresent) ? loaded : undefined;
    }, 30_000);
    const rules = groups.flatMap((g) => g.rules);
    const alerts = rules.filter((r) => r.type === 'alerting');
    const recordings = rules.filter((r) => r.type === 'recording');
    assert.ok(alerts.length >= 10 && recordings.length >= 5, `rules loaded: ${alerts.length} alerts, ${recordings.length} recordings`);
    const empty: string[] = [];
    const check = async (what: string, expr: string): Promise<void> => {
      if ((await query(expr)).length === 0) empty.push(`${what}: ${expr}`);
    };
    for (const rule of recordings) {
      await check(`recording ${rule.name}`, rule.query);
      await check(`recorded ${rule.name}`, rule.name);
    }
    for (const rule of alerts) {
      const signal = alertSignal(rule.query);
      assert.ok(signal !== null, `alert ${rule.name} is not "<signal> <comparison> <number>": ${rule.query}`);
      await query(rule.query); // valid, whether it holds or not
      await check(`alert ${rule.name}`, signal);
    }
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: { type: string; title: string; targets?: { expr: string }[] }[] };
    const panels = dashboard.panels.filter((p) => p.type !== 'row');
    assert.ok(panels.length >= 15, `${panels.length} panels`);
    for (const panel of panels) {
      assert.ok((panel.targets ?? []).length > 0, `panel ${panel.title} has no query`);
      for (const target of panel.targets!) await check(`panel ${panel.title}`, target.expr);
    }
    assert.deepEqual(empty, [], 'expressions that returned no series');

    // The dead-letter alert (no `for`) fires; nothing critical does on a healthy pipeline.
    const firing = await waitFor('WalbridgeSinkDeadLetters firing', async () => {
      const active = ((await (await fetch(`http://127.0.0.1:${promPort}/api/v1/alerts`)).json()) as { data: { alerts: { labels: Record<string, string>; state: string }[] } }).data.alerts;
      return active.some((a) => a.labels.alertname === 'WalbridgeSinkDeadLetters' && a.state === 'firing') ? active : undefined;
    }, 30_000);
    assert.deepEqual(firing.filter((a) => a.labels.severity === 'critical').map((a) => a.labels.alertname), []);

    cdc.child.kill('SIGTERM');
    sink.child.kill('SIGTERM');
    const [cdcExit, sinkExit] = await Promise.all([cdc.exited, sink.exited]);
    assert.equal(cdcExit.code, 0, cdcExit.stderr);
    assert.equal(sinkExit.code, 0, sinkExit.stderr);
  });
});
