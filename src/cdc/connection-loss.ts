/**
 * Which failures of a cdc run are an outage to ride through, and which are
 * real: cdc restarts its stages after a lost connection (run.ts), and exits
 * on anything else.
 *
 * An outage: a PostgreSQL connection that broke or could not be opened
 * (server restarting, shutting down, in recovery, a terminated backend, the
 * network), or Kafka unreachable or answering with an error its clients call
 * retriable (leader moving, coordinator loading). Everything else (a bug, a
 * decoding failure, a refused login, a missing grant, a ConfigError) is not:
 * waiting would not fix it.
 */
import { ConfigError } from '../core/exit-codes.js';
import { leafErrors } from '../core/error-text.js';

export type Dependency = 'postgres' | 'kafka';

/** The replication stream ended while cdc was still reading (the server closed it). */
export class StreamEnded extends Error {
  override readonly name = 'StreamEnded';
  constructor() {
    super('the replication stream ended unexpectedly');
  }
}

/** No Kafka broker accepted a connection (kafka/reachability.ts' probe, before the Kafka clients' own long retries). */
export class KafkaUnreachable extends Error {
  override readonly name = 'KafkaUnreachable';
}

/** Socket errors: whoever raised them could not reach, or lost, its server. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);

/**
 * SQLSTATEs of a server going away or not accepting connections yet:
 * 57P01 admin_shutdown (fast shutdown, pg_terminate_backend), 57P02
 * crash_shutdown (immediate shutdown, another backend crashed), 57P03
 * cannot_connect_now (starting up, shutting down, in recovery), 53300
 * too_many_connections; class 08 (connection exception) by prefix.
 */
const SERVER_GOING_CODES = new Set(['57P01', '57P02', '57P03', '53300']);

/** node-postgres' own errors for a connection that is gone (they carry no code). */
const PG_LOST = /Connection terminated|not queryable|Client was closed|timeout expired|the database system is (starting up|shutting down|in recovery|not yet accepting connections)/i;

/**
 * Errors Kafka's protocol calls final, but final only for the producer that
 * got them: seen while a broker restarts or partition leaders move (in the
 * chaos run, the idempotent producer's sequence state went stale after a
 * broker came back). Each attempt opens a new producer (a new producer ID,
 * sequences from 0) and re-reads from the slot's confirmed LSN, so starting
 * over heals them; nothing was confirmed that Kafka did not take.
 */
const HEALED_BY_A_NEW_ATTEMPT = new Set([
  'BROKER_NOT_AVAILABLE', 'NEW_LEADER_ELECTED', 'UNKNOWN_SERVER_ERROR',
  'OUT_OF_ORDER_SEQUENCE_NUMBER', 'DUPLICATE_SEQUENCE_NUMBER', 'INVALID_PRODUCER_EPOCH', 'UNKNOWN_PRODUCER_ID',
]);

interface ErrorFields {
  name?: string;
  /** @platformatic/kafka's protocol error id, e.g. NOT_LEADER_OR_FOLLOWER. */
  apiId?: string;
  code?: string;
  message?: string;
  cause?: unknown;
  errors?: unknown[];
  canRetry?: boolean;
  retriable?: boolean;
}

/** The dependency a failure says is away, or null for a failure that waiting does not fix. */
export function lostDependency(error: unknown): Dependency | null {
  if (error instanceof ConfigError) return null;
  if (error instanceof StreamEnded) return 'postgres';
  if (error instanceof KafkaUnreachable) return 'kafka';
  const err = (error ?? {}) as ErrorFields;
  if (typeof err.code === 'string' && err.code.startsWith('PLT_KFK_')) return platformaticRetriable(err) ? 'kafka' : null;
  if (typeof err.name === 'string' && err.name.startsWith('KafkaJS')) return kafkajsRetriable(err) ? 'kafka' : null;
  if (typeof err.code === 'string' && (SERVER_GOING_CODES.has(err.code) || err.code.startsWith('08') || NETWORK_CODES.has(err.code))) return 'postgres';
  if (err.code === undefined && PG_LOST.test(err.message ?? '')) return 'postgres';
  return null;
}

/**
 * What no new attempt fixes: the user's to change (a grant, a login, a size
 * or topic setting, a client feature the broker lacks).
 */
const PERMANENT_PROTOCOL_ERROR =
  /AUTHORIZATION_FAILED|SASL|^MESSAGE_TOO_LARGE$|^RECORD_LIST_TOO_LARGE$|^INVALID_(?!PRODUCER_EPOCH$)|^UNSUPPORTED_|^POLICY_VIOLATION$|^SECURITY_DISABLED$|^CORRUPT_MESSAGE$|^PRODUCER_FENCED$/;
const PERMANENT_CLIENT_ERROR = new Set(['PLT_KFK_AUTHENTICATION', 'PLT_KFK_USER', 'PLT_KFK_UNSUPPORTED', 'PLT_KFK_UNSUPPORTED_API', 'PLT_KFK_UNSUPPORTED_COMPRESSION',
  'PLT_KFK_UNSUPPORTED_FORMAT']);
/**
 * A response the producer could not read (@platformatic/dynamic-buffer's
 * "Out of bounds."): every send of one cdc process failed with it for
 * minutes after a broker's restart in the chaos runs, and a new process
 * (new producer, new connections) sent at once. A new attempt is that.
 */
const UNREADABLE_RESPONSE = new Set(['OUT_OF_BOUNDS', 'PLT_KFK_OUT_OF_BOUNDS']);


/**
 * @platformatic/kafka (cdc's producer): network errors and timeouts, and
 * protocol errors it marks `canRetry` or that a new producer heals. An
 * aggregate (MultipleErrors, a ResponseError, the retries of one send) is an
 * outage unless an error inside it is permanent: after a broker's restart a
 * send's tries end in a mix (leader moved, producer state stale, timeouts),
 * and a new attempt gets past all of them.
 */
function platformaticRetriable(err: ErrorFields): boolean {
  if (Array.isArray(err.errors) && err.errors.length > 0) {
    return leafErrors(err).every((inner) => {
      const fields = (inner ?? {}) as ErrorFields;
      if (fields.code !== undefined && UNREADABLE_RESPONSE.has(fields.code)) return true;
      if (typeof fields.code !== 'string' || !fields.code.startsWith('PLT_KFK_')) return lostDependency(inner) !== null;
      return !PERMANENT_CLIENT_ERROR.has(fields.code) && !PERMANENT_PROTOCOL_ERROR.test(fields.apiId ?? '');
    });
  }
  // A connection that broke mid-request (a broker killed) surfaces as either of the last two.
  if (err.code === 'PLT_KFK_NETWORK' || err.code === 'PLT_KFK_UNFINISHED_WRITE_BUFFER' || err.code === 'PLT_KFK_UNEXPECTED_CORRELATION_ID') return true;
  if (err.canRetry === true) return true;
  if (err.apiId !== undefined && HEALED_BY_A_NEW_ATTEMPT.has(err.apiId)) return true;
  return err.cause !== undefined && lostDependency(err.cause) !== null;
}

/** kafkajs (topics at start, adopting a table): what it calls retriable, or a wrapper (retries exceeded) around such a cause. */
function kafkajsRetriable(err: ErrorFields): boolean {
  if (err.retriable === true) return true;
  return err.cause !== undefined && lostDependency(err.cause) !== null;
}
