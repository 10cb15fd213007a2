/**
 * Where the three services are. Precedence: flags > environment > defaults,
 * and the defaults are the local stack's (scripts/stack.sh, port prefix 1),
 * so no flag is needed after `npm run stack:up`.
 *
 * Passwords: in the URL, or from a file named by DATABASE_PASSWORD_FILE /
 * CLICKHOUSE_PASSWORD_FILE (a mounted secret; it replaces the URL's). A
 * password in a flag works but is visible to every local user in `ps`: a
 * warning says so.
 *
 * TLS to PostgreSQL and ClickHouse: the URLs' own settings and the ClickHouse
 * CA file, checked by config/tls.ts.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../core/exit-codes.js';
import { checkPostgresTls, resolveClickHouseCaFile } from './tls.js';

export const DEFAULT_DATABASE_URL = 'postgres://walbridge:walbridge@127.0.0.1:15432/walbridge';
export const DEFAULT_KAFKA_BROKERS = '127.0.0.1:19092';
export const DEFAULT_CLICKHOUSE_URL = 'http://default:@127.0.0.1:18123/default';

export interface Connections {
  databaseUrl: string;
  kafkaBrokers: string[];
  clickhouseUrl: string;
  /** PEM file of the CA that signed ClickHouse's certificate (https), when not a system CA (config/tls.ts). */
  clickhouseCaFile: string | undefined;
}

export interface ConnectionFlags {
  databaseUrl?: string | undefined;
  kafkaBrokers?: string | undefined;
  clickhouseUrl?: string | undefined;
  clickhouseCa?: string | undefined;
}

export function resolveConnections(
  flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env, warn: (text: string) => void = (text) => process.stderr.write(`warning: ${text}\n`),
): Connections {
  let databaseUrl = flags.databaseUrl ?? env.DATABASE_URL ?? DEFAULT_DATABASE_URL;
  let clickhouseUrl = flags.clickhouseUrl ?? env.CLICKHOUSE_URL ?? DEFAULT_CLICKHOUSE_URL;
  const brokersText = flags.kafkaBrokers ?? env.KAFKA_BROKERS ?? DEFAULT_KAFKA_BROKERS;
  checkUrl('database URL (--database-url / DATABASE_URL)', databaseUrl, ['postgres:', 'postgresql:']);
  checkUrl('ClickHouse URL (--clickhouse-url / CLICKHOUSE_URL)', clickhouseUrl, ['http:', 'https:']);
  checkPostgresTls(databaseUrl);
  const clickhouseCaFile = resolveClickHouseCaFile(flags.clickhouseCa, env, clickhouseUrl);
  for (const [flag, value, envName] of [['--database-url', flags.databaseUrl, 'DATABASE'], ['--clickhouse-url', flags.clickhouseUrl, 'CLICKHOUSE']] as const) {
    if (value !== undefined && new URL(value).password) {
      warn(`${flag} carries a password, which any local user can read in ps; give it in ${envName}_PASSWORD_FILE (or ${envName}_URL) instead`);
    }
  }
  databaseUrl = withPasswordFile(databaseUrl, 'DATABASE_PASSWORD_FILE', env);
  clickhouseUrl = withPasswordFile(clickhouseUrl, 'CLICKHOUSE_PASSWORD_FILE', env);
  const kafkaBrokers = brokersText.split(',').map((b) => b.trim()).filter((b) => b.length > 0);
  if (kafkaBrokers.length === 0 || kafkaBrokers.some((b) => !/^[^:\s]+:\d+$/.test(b))) {
    throw new ConfigError(`Kafka brokers (--kafka-brokers / KAFKA_BROKERS) must be host:port[,host:port...], got '${brokersText}'`);
  }
  return { databaseUrl, kafkaBrokers, clickhouseUrl, clickhouseCaFile };
}

/** The URL with the password read from the file named by env[variable], when set. */
function withPasswordFile(url: string, variable: string, env: NodeJS.ProcessEnv): string {
  const password = readPasswordFile(variable, env);
  if (password === undefined) return url;
  const parsed = new URL(url);
  parsed.password = encodeURIComponent(password);
  return parsed.toString();
}

/**
 * The password in the file named by env[variable] (a mounted secret; one
 * trailing newline is dropped), or undefined when the variable is not set.
 */
export function readPasswordFile(variable: string, env: NodeJS.ProcessEnv): string | undefined {
  const file = env[variable];
  if (!file) return undefined;
  let password: string;
  try {
    password = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    throw new ConfigError(`cannot read the password file ${variable}=${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (password === '') throw new ConfigError(`the password file ${variable}=${file} is empty`);
  return password;
}

function checkUrl(what: string, text: string, protocols: string[]): void {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    const keyValue = /^\s*\w+\s*=/.test(text) ? ` (a URL like ${protocols[0]}//user@host:port/database is needed, not key=value settings)` : ' (a password with / : @ or # must be percent-encoded, e.g. / as %2F)';
    throw new ConfigError(`${what} is not a URL: '${redactUrl(text)}'${keyValue}`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(`${what} must start with ${protocols.join(' or ')}//, got '${redactUrl(text)}'`);
  }
}

/**
 * Any text made fit for logs and error messages: every password replaced by
 * `***`, in URLs (`scheme://user:password@`, the password running to the
 * last `@` of the word, so an unencoded `/` or `@` in it is covered too),
 * in libpq-style `password=…` settings and in `?password=…` parameters.
 * Errs on the side of hiding too much.
 */
export function redactUrl(text: string): string {
  return text
    .replace(/((?:[a-z][a-z0-9+.-]*:)?\/\/[^\s:/?#@'"]*:)[^\s'"]*@/gi, '$1***@')
    .replace(/(password\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&'",;]+)/gi, '$1***');
}

/** The same server URL with another database as its path (PostgreSQL and ClickHouse alike). */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}
