/**
 * kafkajs, behind walbridge's admin calls, the sink's consumer and the
 * dead-letter producer. cdc's producer is @platformatic/kafka (producer.ts).
 * Only files in src/kafka/ import a Kafka client, so either can be swapped
 * (kafkajs is unmaintained since 2023: keep it swappable).
 * kafkajs' own log lines go through walbridge's logger, warnings and up.
 */
import kafkajs from 'kafkajs';
import type { KafkaConnection } from '../config/kafka.js';
import type { Logger } from '../observability/logger.js';

export type Kafka = kafkajs.Kafka;

const LEVEL_NAMES: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [kafkajs.logLevel.ERROR]: 'error',
  [kafkajs.logLevel.WARN]: 'warn',
  [kafkajs.logLevel.INFO]: 'info',
  [kafkajs.logLevel.DEBUG]: 'debug',
};

export function createKafka(connection: KafkaConnection, clientId: string, logger: Logger): Kafka {
  return new kafkajs.Kafka({
    clientId,
    brokers: connection.brokers,
    ...kafkajsSecurity(connection),
    connectionTimeout: 10_000,
    requestTimeout: 30_000,
    retry: { initialRetryTime: 300, retries: 8, maxRetryTime: 10_000 },
    logLevel: kafkajs.logLevel.WARN,
    logCreator: () => ({ namespace, level, log }) => {
      const { message, ...extra } = log;
      logger[quietened(namespace, message) ? 'debug' : (LEVEL_NAMES[level] ?? 'info')]({ kafka: namespace, ...extra }, message);
    },
  });
}

/**
 * A client for the start-up probe (reachability.ts): one attempt, every step
 * (connect, TLS, SASL, a request) bounded by timeoutMs, no logs (the probe
 * says what failed).
 */
export function probeKafka(connection: KafkaConnection, timeoutMs: number): Kafka {
  return new kafkajs.Kafka({
    clientId: 'walbridge-probe',
    brokers: connection.brokers,
    ...kafkajsSecurity(connection),
    connectionTimeout: timeoutMs,
    authenticationTimeout: timeoutMs,
    requestTimeout: timeoutMs,
    retry: { retries: 0 },
    logLevel: kafkajs.logLevel.NOTHING,
  });
}

/** KafkaConnection → kafkajs' ssl and sasl (its mechanism names are lower-case). */
function kafkajsSecurity(connection: KafkaConnection): Pick<kafkajs.KafkaConfig, 'ssl' | 'sasl'> {
  const { tls, sasl } = connection;
  return {
    ...(tls === null ? {} : { ssl: tls }),
    ...(sasl === null ? {} : { sasl: { ...sasl, mechanism: sasl.mechanism.toLowerCase() } as kafkajs.SASLOptions }),
  };
}

/**
 * kafkajs logs every retriable broker response at ERROR ("the coordinator is
 * loading" right after a broker starts) and warns that bounded retries "may
 * invalidate EoS guarantees". walbridge relies on neither: a send that fails
 * after its retries fails the process, and the slot replays from the last
 * confirmed LSN. Real failures surface as rejected calls, logged by walbridge.
 * kafkajs also logs each retry of a refused connection at ERROR: quietened too.
 */
function quietened(namespace: string, message: string): boolean {
  return namespace === 'Connection' || message.startsWith('Limiting retries for the idempotent producer') ||
    // Each retry of a refused connection; the call's own failure (and the wait for Kafka) is logged by walbridge.
    (namespace === 'BrokerPool' && message.startsWith('Failed to connect to seed broker'));
}
