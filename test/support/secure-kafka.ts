/**
 * A second, throw-away Kafka broker whose only client listener is SASL_SSL
 * (mutual TLS, then PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 as user
 * `walbridge`), started by scripts/stack.sh (STACK_KAFKA_SECURITY=sasl_ssl)
 * with the test stack's Kafka jars. Its port is the test stack's Kafka port
 * + 100 (controller + 101), so it follows the stack's port prefix.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ownStack } from './own-stack.js';
import { serviceUrls } from './services.js';

export interface SecureKafka {
  /** host:port of the SASL_SSL listener, at 127.0.0.1 (the only name its certificate holds). */
  broker: string;
  port: number;
  /** The client settings `scripts/stack.sh env` gives: KAFKA_BROKERS, KAFKA_SSL_CA/_CERT/_KEY, KAFKA_SASL_* (SCRAM-SHA-512). */
  env: Record<string, string>;
  /** The SASL users' password (the same for every mechanism). */
  password: string;
  /** Where the CA, certificates and keys are. */
  tlsDir: string;
  stop(): void;
}

export function startSecureKafka(): SecureKafka {
  const stackPort = Number(serviceUrls().kafkaBrokers.split(',')[0]!.split(':')[1]);
  const port = stackPort + 100;
  const stackDir = mkdtempSync(path.join(tmpdir(), 'wb-secure-kafka-'));
  const stackEnv = {
    ...process.env, STACK_DIR: stackDir, STACK_SERVICES: 'kafka', STACK_KAFKA_PORT: String(port), STACK_KAFKA_SECURITY: 'sasl_ssl',
    // C1 only: it starts in two thirds of the time, and this broker never carries load.
    STACK_KAFKA_JAVA_OPTS: '-XX:TieredStopAtLevel=1',
  };
  const stack = ownStack(stackEnv);
  const stop = (): void => {
    stack('destroy');
    rmSync(stackDir, { recursive: true, force: true });
  };
  const up = stack('up');
  if (up.status !== 0) {
    stack('down'); // its directory stays, for the logs
    throw new Error(`the SASL_SSL broker did not start:\n${up.stdout}${up.stderr}logs in ${path.join(stackDir, 'kafka', 'log')} (rm -rf ${stackDir} when done)`);
  }
  const env: Record<string, string> = {};
  for (const match of readFileSync(path.join(stackDir, 'env'), 'utf8').matchAll(/^export (KAFKA_\w+)='([^']*)'$/gm)) env[match[1]!] = match[2]!;
  const tlsDir = path.join(stackDir, 'kafka', 'tls');
  return { broker: `127.0.0.1:${port}`, port, env, password: readFileSync(path.join(tlsDir, 'sasl-password'), 'utf8'), tlsDir, stop };
}
