/**
 * Where the three services are. Precedence: flags > environment > defaults,
 * and the defaults are the local stack's (scripts/stack.sh, port prefix 1),
 * so no flag is needed after `npm run stack:up`.
 */
import { ConfigError } from '../core/exit-codes.js';

export const DEFAULT_DATABASE_URL = 'postgres://walbridge:walbridge@127.0.0.1:15432/walbridge';
export const DEFAULT_KAFKA_BROKERS = '127.0.0.1:19092';
export const DEFAULT_CLICKHOUSE_URL = 'http://default:@127.0.0.1:18123/default';

export interface Connections {
  databaseUrl: string;
  kafkaBrokers: string[];
  clickhouseUrl: string;
}

export interface ConnectionFlags {
  databaseUrl?: string | undefined;
  kafkaBrokers?: string | undefined;
  clickhouseUrl?: string | undefined;
}

export function resolveConnections(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env): Connections {
  const databaseUrl = flags.databaseUrl ?? env.DATABASE_URL ?? DEFAULT_DATABASE_URL;
  const clickhouseUrl = flags.clickhouseUrl ?? env.CLICKHOUSE_URL ?? DEFAULT_CLICKHOUSE_URL;
  const brokersText = flags.kafkaBrokers ?? env.KAFKA_BROKERS ?? DEFAULT_KAFKA_BROKERS;
  checkUrl('database URL (--database-url / DATABASE_URL)', databaseUrl, ['postgres:', 'postgresql:']);
  checkUrl('ClickHouse URL (--clickhouse-url / CLICKHOUSE_URL)', clickhouseUrl, ['http:', 'https:']);
  const kafkaBrokers = brokersText.split(',').map((b) => b.trim()).filter((b) => b.length > 0);
  if (kafkaBrokers.length === 0 || kafkaBrokers.some((b) => !/^[^:\s]+:\d+$/.test(b))) {
    throw new ConfigError(`Kafka brokers (--kafka-brokers / KAFKA_BROKERS) must be host:port[,host:port...], got '${brokersText}'`);
  }
  return { databaseUrl, kafkaBrokers, clickhouseUrl };
}

function checkUrl(what: string, text: string, protocols: string[]): void {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`${what} is not a URL: '${redactUrl(text)}'`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(`${what} must start with ${protocols.join(' or ')}//, got '${redactUrl(text)}'`);
  }
}

/** A URL fit for logs and error messages: the password replaced by `***`. */
export function redactUrl(text: string): string {
  try {
    const url = new URL(text);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return text.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1:***@');
  }
}

/** The same server URL with another database as its path (PostgreSQL and ClickHouse alike). */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}
