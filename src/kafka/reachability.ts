/**
 * A quick look for the Kafka brokers before any Kafka client starts. Why:
 * both clients retry a refused connection, a failed TLS handshake or a
 * refused login for ~40 s and end with a bare `connect ECONNREFUSED` or
 * `Connection error` naming neither Kafka nor the setting to fix; this says
 * both within seconds.
 *
 * Two steps. First a connection to each bootstrap address, in parallel,
 * bounded, over TLS when it is configured (so a certificate problem is told
 * per broker, with Node's precise reason). Then, with the brokers that
 * answered, one Kafka exchange through kafkajs, tried once: the SASL login
 * and a metadata request, which is where a wrong password, a refused client
 * certificate or a listener expecting TLS or SASL shows. One broker answering
 * is enough (the clients find the rest from it). A failure the probe cannot
 * tell is left to the clients, which retry.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { KafkaConnection } from '../config/kafka.js';
import { ConfigError } from '../core/exit-codes.js';
import { probeKafka } from './client.js';

const PROBE_TIMEOUT_MS = 5_000;
const FIX = 'is Kafka running there, and is --kafka-brokers / KAFKA_BROKERS right? (local stack: npm run stack:up)';
const CA_FIX = 'give the CA that signed it with --kafka-ssl-ca / KAFKA_SSL_CA';

type Failure = { broker: string; ok: false; kind: 'network' | 'timeout' | 'tls'; reason: string };
type Probe = { broker: string; ok: true } | Failure;

function probe(broker: string, connection: KafkaConnection, timeoutMs: number): Promise<Probe> {
  const at = broker.lastIndexOf(':');
  const host = broker.slice(0, at);
  const port = Number(broker.slice(at + 1));
  return new Promise((resolve) => {
    // The name checked against the certificate (and sent as SNI) is the host connected to, as both clients do.
    const socket = connection.tls === null
      ? net.connect({ host, port })
      : tls.connect({ ...connection.tls, host, port, ...(net.isIP(host) === 0 ? { servername: host } : {}) });
    const done = (result: Probe): void => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done({ broker, ok: false, kind: 'timeout', reason: `no answer within ${timeoutMs / 1000}s` }));
    socket.once(connection.tls === null ? 'connect' : 'secureConnect', () => done({ broker, ok: true }));
    socket.once('error', (error: NodeJS.ErrnoException) => done({ broker, ok: false, ...classify(error, connection.tls !== null) }));
  });
}

function classify(error: NodeJS.ErrnoException, overTls: boolean): Pick<Failure, 'kind' | 'reason'> {
  switch (error.code) {
    case 'ECONNREFUSED': return { kind: 'network', reason: 'connection refused: nothing listens there' };
    case 'ENOTFOUND': case 'EAI_AGAIN': return { kind: 'network', reason: 'host name not found' };
    case 'ETIMEDOUT': return { kind: 'timeout', reason: error.message };
  }
  const tlsReason = overTls ? tlsFailure(error) : undefined;
  return tlsReason === undefined ? { kind: 'network', reason: error.message } : { kind: 'tls', reason: `TLS: ${tlsReason}` };
}

/** What a TLS error means for the user, or undefined when it is none. */
function tlsFailure(error: NodeJS.ErrnoException): string | undefined {
  const code = error.code ?? '';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return `the broker's certificate is not for this host (${error.message}); connect by a name or address the certificate holds, or give the broker a certificate for this one (--no-kafka-ssl-verify-hostname skips the name check)`;
  }
  if (['SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE'].includes(code)) {
    return `the broker's certificate is not trusted (${error.message}); ${CA_FIX}`;
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return `the broker's certificate is not valid now (${error.message})`;
  if (/ALERT/.test(code)) {
    return `the broker ended the handshake (${error.message}); does it require a client certificate it trusts (--kafka-ssl-cert and --kafka-ssl-key)?`;
  }
  if (code === 'ECONNRESET' || /before secure TLS connection/.test(error.message) || code.startsWith('ERR_SSL_')) {
    return `the handshake failed (${error.message}); does this listener speak TLS? (a plaintext listener needs no --kafka-ssl)`;
  }
  return undefined;
}

/**
 * Resolves when at least one broker accepts a connection (and, when that
 * works, the login). Otherwise throws a ConfigError (exit 2) when every broker
 * refused, has no such host, failed TLS or refused the login, and an Error
 * (exit 1) when some only timed out (possibly passing).
 */
export async function checkKafkaReachable(connection: KafkaConnection, timeoutMs = PROBE_TIMEOUT_MS): Promise<void> {
  const results = await Promise.all(connection.brokers.map((broker) => probe(broker, connection, timeoutMs)));
  const failures = results.filter((r): r is Failure => !r.ok);
  if (failures.length < results.length) {
    await checkKafkaLogin({ ...connection, brokers: results.filter((r) => r.ok).map((r) => r.broker) }, timeoutMs);
    return;
  }
  const fix = failures.some((f) => f.kind !== 'tls') ? `; ${FIX}` : '';
  const text = `Kafka is not reachable at ${failures.map((f) => `${f.broker} (${f.reason})`).join(', ')}${fix}`;
  if (failures.every((f) => f.kind !== 'timeout')) throw new ConfigError(text);
  throw new Error(text);
}

/**
 * The connection step alone, no login, for a caller waiting out an outage
 * (cdc between attempts): what failed when no broker accepts a connection,
 * null when one does, or when a TLS failure is among the reasons (that is
 * for the clients to report, not to be waited out).
 */
export async function brokersUnreachable(connection: KafkaConnection, timeoutMs = PROBE_TIMEOUT_MS): Promise<string | null> {
  const results = await Promise.all(connection.brokers.map((broker) => probe(broker, connection, timeoutMs)));
  const failures = results.filter((r): r is Failure => !r.ok);
  if (failures.length < results.length || failures.some((f) => f.kind === 'tls')) return null;
  return `Kafka is not reachable at ${failures.map((f) => `${f.broker} (${f.reason})`).join(', ')}`;
}

interface KafkaJsError extends Error {
  code?: string;
  cause?: unknown;
}

/** The Kafka exchange of the second step; throws a ConfigError for a failure it can name. */
async function checkKafkaLogin(connection: KafkaConnection, timeoutMs: number): Promise<void> {
  const at = connection.brokers.join(', ');
  const admin = probeKafka(connection, timeoutMs).admin();
  try {
    await admin.connect();
    await admin.describeCluster();
  } catch (error) {
    const err = error as KafkaJsError;
    err.message = err.message.replace(/\s+/g, ' ').trim(); // OpenSSL's texts end in a newline
    if (err.name === 'KafkaJSSASLAuthenticationError') {
      const { mechanism, username } = connection.sasl!;
      throw new ConfigError(
        `Kafka at ${at} refused the SASL ${mechanism} authentication of user ${username} (${err.message}); ` +
          'check --kafka-sasl-username / KAFKA_SASL_USERNAME, the password in KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, and that the broker enables that mechanism',
      );
    }
    const tlsReason = connection.tls === null ? undefined : tlsFailure({ ...err, code: err.code ?? codeOf(err.cause), message: err.message });
    if (tlsReason !== undefined && tlsReason.startsWith('the broker ended')) throw new ConfigError(`Kafka at ${at}: TLS: ${tlsReason}`);
    if (err.name === 'KafkaJSConnectionClosedError' || /Closed connection|ECONNRESET/.test(err.message)) {
      const expected = [connection.tls === null ? 'TLS (--kafka-ssl)' : '', connection.sasl === null ? 'SASL (--kafka-sasl-mechanism)' : ''].filter(Boolean).join(' or ');
      throw new ConfigError(`Kafka at ${at} closed the connection before answering (${err.message})${expected ? `; does its listener expect ${expected}?` : ''}`);
    }
    // Anything else (a broker still starting, a slow network): the clients retry it.
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

function codeOf(cause: unknown): string | undefined {
  return (cause as { code?: string } | undefined)?.code;
}
