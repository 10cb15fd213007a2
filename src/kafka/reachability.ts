/**
 * A quick look for the Kafka brokers before any Kafka client starts: a TCP
 * connection to each bootstrap address, in parallel, bounded. Why: both
 * clients retry a refused connection for ~40 s and end with a bare
 * `connect ECONNREFUSED` naming neither Kafka nor the flag to fix; this says
 * both within seconds. One broker answering is enough (the clients find the
 * rest from it).
 */
import net from 'node:net';
import { ConfigError } from '../core/exit-codes.js';

const PROBE_TIMEOUT_MS = 5_000;
const FIX = 'is Kafka running there, and is --kafka-brokers / KAFKA_BROKERS right? (local stack: npm run stack:up)';

type Probe = { broker: string; ok: true } | { broker: string; ok: false; code: string; reason: string };

function probe(broker: string, timeoutMs: number): Promise<Probe> {
  const at = broker.lastIndexOf(':');
  const host = broker.slice(0, at);
  const port = Number(broker.slice(at + 1));
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (result: Probe): void => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done({ broker, ok: false, code: 'ETIMEDOUT', reason: `no answer within ${timeoutMs / 1000}s` }));
    socket.once('connect', () => done({ broker, ok: true }));
    socket.once('error', (error: NodeJS.ErrnoException) => done({ broker, ok: false, code: error.code ?? 'ERROR', reason: reasonOf(error) }));
  });
}

function reasonOf(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ECONNREFUSED': return 'connection refused: nothing listens there';
    case 'ENOTFOUND': case 'EAI_AGAIN': return 'host name not found';
    default: return error.message;
  }
}

/**
 * Resolves when at least one broker accepts a connection. Otherwise throws a
 * ConfigError (exit 2) when every broker refused or has no such host, and an
 * Error (exit 1) when some only timed out (possibly passing).
 */
export async function checkKafkaReachable(brokers: string[], timeoutMs = PROBE_TIMEOUT_MS): Promise<void> {
  const results = await Promise.all(brokers.map((broker) => probe(broker, timeoutMs)));
  const failures = results.filter((r): r is Extract<Probe, { ok: false }> => !r.ok);
  if (failures.length < results.length) return;
  const text = `Kafka is not reachable at ${failures.map((f) => `${f.broker} (${f.reason})`).join(', ')}; ${FIX}`;
  if (failures.every((f) => f.code !== 'ETIMEDOUT')) throw new ConfigError(text);
  throw new Error(text);
}
