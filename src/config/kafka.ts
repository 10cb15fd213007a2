/**
 * How walbridge talks to Kafka: the brokers, TLS and SASL, resolved once from
 * flags and environment (flags win) and handed to both Kafka clients
 * (client.ts builds kafkajs' options from it, producer.ts
 * @platformatic/kafka's), so the two can never disagree.
 *
 * TLS is on with --kafka-ssl, or as soon as a CA, certificate or key file is
 * given; it verifies the broker's certificate chain (against --kafka-ssl-ca,
 * else the system's CAs) and its host name, unless
 * --no-kafka-ssl-verify-hostname. SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512,
 * the password only from the environment (KAFKA_SASL_PASSWORD) or a file
 * (KAFKA_SASL_PASSWORD_FILE), never from a flag (visible in `ps`).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { ConfigError } from '../core/exit-codes.js';
import { readPasswordFile } from './connections.js';

export const SASL_MECHANISMS = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'] as const;
export type SaslMechanism = (typeof SASL_MECHANISMS)[number];

export interface KafkaSasl {
  mechanism: SaslMechanism;
  username: string;
  password: string;
}

export interface KafkaConnection {
  brokers: string[];
  /** node:tls options both clients connect with; null: plaintext. */
  tls: tls.ConnectionOptions | null;
  sasl: KafkaSasl | null;
}

export interface KafkaSecurityFlags {
  kafkaSsl?: boolean | undefined;
  kafkaSslCa?: string | undefined;
  kafkaSslCert?: string | undefined;
  kafkaSslKey?: string | undefined;
  kafkaSslVerifyHostname?: boolean | undefined;
  kafkaSaslMechanism?: string | undefined;
  kafkaSaslUsername?: string | undefined;
}

/** Plaintext, no authentication: the local stack's default. */
export function plaintextKafka(brokers: string[]): KafkaConnection {
  return { brokers, tls: null, sasl: null };
}

export function resolveKafka(
  brokers: string[], flags: KafkaSecurityFlags, env: NodeJS.ProcessEnv = process.env,
  warn: (text: string) => void = (text) => process.stderr.write(`warning: ${text}\n`),
): KafkaConnection {
  return { brokers, tls: resolveTls(flags, env, warn), sasl: resolveSasl(flags, env) };
}

function resolveTls(flags: KafkaSecurityFlags, env: NodeJS.ProcessEnv, warn: (text: string) => void): tls.ConnectionOptions | null {
  const caFile = flags.kafkaSslCa ?? (env.KAFKA_SSL_CA || undefined);
  const certFile = flags.kafkaSslCert ?? (env.KAFKA_SSL_CERT || undefined);
  const keyFile = flags.kafkaSslKey ?? (env.KAFKA_SSL_KEY || undefined);
  const anyFile = caFile !== undefined || certFile !== undefined || keyFile !== undefined;
  const enabled = flags.kafkaSsl ?? booleanEnv(env, 'KAFKA_SSL') ?? anyFile;
  if (!enabled) {
    if (anyFile) throw new ConfigError('--kafka-ssl-ca/-cert/-key (KAFKA_SSL_CA/_CERT/_KEY) are given but TLS is turned off (--no-kafka-ssl or KAFKA_SSL=false): turn it on or drop the files');
    return null;
  }
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError('a client certificate needs both --kafka-ssl-cert (KAFKA_SSL_CERT) and --kafka-ssl-key (KAFKA_SSL_KEY)');
  }
  const options: tls.ConnectionOptions = { rejectUnauthorized: true };
  if (caFile !== undefined) options.ca = readPem('--kafka-ssl-ca (KAFKA_SSL_CA)', caFile);
  if (certFile !== undefined) options.cert = readPem('--kafka-ssl-cert (KAFKA_SSL_CERT)', certFile);
  if (keyFile !== undefined) options.key = readPem('--kafka-ssl-key (KAFKA_SSL_KEY)', keyFile);
  for (const [what, file, pem] of [['--kafka-ssl-ca', caFile, options.ca], ['--kafka-ssl-cert', certFile, options.cert]] as const) {
    if (pem === undefined) continue;
    try {
      new X509Certificate(pem as Buffer);
    } catch (error) {
      throw new ConfigError(`${what} ${file} does not hold a PEM certificate: ${(error as Error).message}`);
    }
  }
  if (options.key !== undefined) {
    try {
      // Parses the key and matches it to the certificate now, rather than at the first connection.
      tls.createSecureContext({ cert: options.cert, key: options.key });
    } catch (error) {
      throw new ConfigError(`--kafka-ssl-key ${keyFile} is not the unencrypted PEM private key of --kafka-ssl-cert ${certFile}: ${(error as Error).message}`);
    }
  }
  if (!(flags.kafkaSslVerifyHostname ?? booleanEnv(env, 'KAFKA_SSL_VERIFY_HOSTNAME') ?? true)) {
    warn('Kafka host name verification is off (--no-kafka-ssl-verify-hostname): any certificate a trusted CA signed is accepted for any broker');
    // The chain is still verified; only the name check is skipped.
    options.checkServerIdentity = () => undefined;
  }
  return options;
}

function resolveSasl(flags: KafkaSecurityFlags, env: NodeJS.ProcessEnv): KafkaSasl | null {
  const mechanismText = flags.kafkaSaslMechanism ?? (env.KAFKA_SASL_MECHANISM || undefined);
  const username = flags.kafkaSaslUsername ?? (env.KAFKA_SASL_USERNAME || undefined);
  const password = readPasswordFile('KAFKA_SASL_PASSWORD_FILE', env) ?? (env.KAFKA_SASL_PASSWORD || undefined);
  if (mechanismText === undefined) {
    if (username !== undefined || password !== undefined) {
      throw new ConfigError(`a Kafka SASL ${username !== undefined ? 'user' : 'password'} is given but no mechanism: add --kafka-sasl-mechanism (KAFKA_SASL_MECHANISM) ${SASL_MECHANISMS.join(', ')}`);
    }
    return null;
  }
  const mechanism = SASL_MECHANISMS.find((m) => m === mechanismText.toUpperCase());
  if (mechanism === undefined) {
    throw new ConfigError(`--kafka-sasl-mechanism (KAFKA_SASL_MECHANISM) must be one of ${SASL_MECHANISMS.join(', ')}, got '${mechanismText}'`);
  }
  if (username === undefined) throw new ConfigError(`Kafka SASL ${mechanism} needs a user: --kafka-sasl-username (KAFKA_SASL_USERNAME)`);
  if (password === undefined) throw new ConfigError(`Kafka SASL ${mechanism} needs a password: KAFKA_SASL_PASSWORD, or a file named by KAFKA_SASL_PASSWORD_FILE`);
  return { mechanism, username, password };
}

function readPem(what: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new ConfigError(`cannot read ${what}=${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

function booleanEnv(env: NodeJS.ProcessEnv, name: string): boolean | undefined {
  const text = env[name]?.trim().toLowerCase();
  if (!text) return undefined;
  if (['true', '1', 'yes', 'on'].includes(text)) return true;
  if (['false', '0', 'no', 'off'].includes(text)) return false;
  throw new ConfigError(`${name} must be true or false, got '${env[name]}'`);
}

