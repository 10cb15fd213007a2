/**
 * The HTTP endpoint of --metrics-port (env METRICS_PORT):
 *   /metrics  Prometheus text (metrics.ts)
 *   /healthz  200 while the process runs (liveness)
 *   /readyz   200 once connected and while making progress, else 503 with
 *             the reason (readiness)
 * "Making progress" is a heartbeat the process gives whenever it moved or had
 * nothing to move: cdc when its confirmed LSN moves, or its slot poll finds
 * the slot held and its lag not growing; the sink when a batch is written, or
 * its lag poll finds the lag not growing. Not ready before the first
 * heartbeat, nor after STALE_MS without one (stuck, or a dependency away).
 * /metrics says the same as `walbridge_ready` (1 or 0), for alerting.
 */
import http from 'node:http';
import { ConfigError } from '../core/exit-codes.js';
import client from 'prom-client';
import { collectProcessMetrics, registry } from './metrics.js';

const STALE_MS = 60_000;

export interface Health {
  progressed(): void;
  close(): Promise<void>;
}

const NONE: Health = { progressed: () => {}, close: async () => {} };

/** --metrics-port, else env METRICS_PORT, else undefined (no endpoint). */
export function metricsPort(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): number | undefined {
  const text = flag ?? env.METRICS_PORT;
  if (text === undefined || text === '') return undefined;
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) throw new ConfigError(`--metrics-port / METRICS_PORT must be a port number, got '${text}'`);
  return port;
}

/** Serves the endpoints on `port` (all interfaces), or does nothing when port is undefined. */
export async function serveHealth(port: number | undefined, now: () => number = Date.now): Promise<Health> {
  if (port === undefined) return NONE;
  collectProcessMetrics();
  let lastProgress: number | null = null;
  const readiness = (): { ok: boolean; reason: string } => {
    const idleMs = lastProgress === null ? null : now() - lastProgress;
    const ok = idleMs !== null && idleMs <= STALE_MS;
    return { ok, reason: idleMs === null ? 'starting: not connected and moving yet' : ok ? 'ready' : `no progress for ${Math.round(idleMs / 1000)}s` };
  };
  new client.Gauge({
    name: 'walbridge_ready', help: '1 while /readyz answers 200 (connected and making progress), else 0', registers: [registry],
    collect() {
      this.set(readiness().ok ? 1 : 0);
    },
  });
  const server = http.createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      registry.metrics().then((text) => {
        response.writeHead(200, { 'content-type': registry.contentType }).end(text);
      }, (error: Error) => response.writeHead(500).end(error.message));
    } else if (path === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const { ok, reason } = readiness();
      response.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(`${reason}\n`);
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('try /metrics, /healthz or /readyz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? new ConfigError(`--metrics-port ${port} is in use by another process; choose another`) : error));
    server.listen(port, () => resolve());
  });
  server.unref();
  return {
    progressed: () => {
      lastProgress = now();
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
