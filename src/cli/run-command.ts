/**
 * How every command ends: 0 on success, 2 for what the user must fix
 * (ConfigError, or a connection refused for a reason the user controls: wrong
 * password, unknown database, nothing listening), 1 for anything else. The
 * message names the problem and the fix; it never carries a password.
 * (ClickHouse's own messages name the user, never the password.)
 */
import { ConfigError, EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME } from '../core/exit-codes.js';
import { redactUrl } from '../config/connections.js';
import { clickHouseUserError } from '../sink/clickhouse/errors.js';
import { tlsUserError } from '../config/tls.js';
import { withInnerErrors } from '../core/error-text.js';

export async function runCommand(body: () => Promise<number | void>): Promise<never> {
  let code: number;
  try {
    code = (await body()) ?? EXIT_OK;
  } catch (error) {
    const userError = asUserError(error);
    if (userError) {
      process.stderr.write(`error: ${redactUrl(userError)}\n`);
      code = EXIT_CONFIG;
    } else {
      const err = error as Error;
      process.stderr.write(`error: ${redactUrl(withInnerErrors(err))}\n`);
      if (process.env.LOG_LEVEL === 'debug' && err.stack) process.stderr.write(`${redactUrl(err.stack)}\n`);
      code = EXIT_RUNTIME;
    }
  }
  process.exit(code);
}

/**
 * yargs' `.fail()` handler for every command: a usage error (unknown flag,
 * missing argument, bad choice) exits 2 like any configuration error, where
 * yargs alone would exit 1.
 */
export function usageFailure(command: string): (message: string | undefined, error: Error | undefined) => void {
  return (message, error) => {
    if (error) throw error;
    process.stderr.write(`${message ?? 'invalid usage'}\nerror: see ${command} --help\n`);
    process.exit(EXIT_CONFIG);
  };
}

/**
 * `--from-lsn -1/0` joined into `--from-lsn=-1/0`: yargs would read a value
 * that starts with a dash as short flags (`Unknown argument: 1`), so the
 * value's own check never got to say what is wrong with it.
 */
export function joinDashedValues(args: string[], flags: string[]): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const next = args[i + 1];
    if (flags.includes(args[i]!) && next !== undefined && /^-[^-]/.test(next)) {
      joined.push(`${args[i]}=${next}`);
      i++;
    } else {
      joined.push(args[i]!);
    }
  }
  return joined;
}

interface ErrorWithCode {
  code?: string;
  address?: string;
  port?: number;
  message: string;
}

/** The user-facing text when the error is one the user must fix, else undefined. */
export function asUserError(error: unknown): string | undefined {
  if (error instanceof ConfigError) return error.message;
  const clickhouse = clickHouseUserError(error);
  if (clickhouse) return clickhouse;
  const tls = tlsUserError(error);
  if (tls) return tls;
  const err = error as ErrorWithCode;
  switch (err?.code) {
    case '28P01':
      return `PostgreSQL refused the password (${err.message}); check the password in --database-url / DATABASE_URL`;
    case '28000':
      return `PostgreSQL refused the login (${err.message}); check pg_hba.conf and the user in --database-url / DATABASE_URL`;
    case '3D000':
      return `${err.message}; create it or fix the database name in --database-url / DATABASE_URL`;
    case 'ECONNREFUSED':
      return `nothing is listening at ${err.address ?? '?'}:${err.port ?? '?'}; is the service running? (local stack: npm run stack:up)`;
    case 'ENOTFOUND':
      return `host not found: ${err.message}`;
    default:
      return undefined;
  }
}

/** A flag's value as a positive integer; anything else (`abc`, `1.5`, `0`) is refused naming the flag. */
export function positiveInteger(name: string, text: string | number): number {
  const value = Number(text);
  if (!/^\s*\d+\s*$/.test(String(text)) || value <= 0) throw new ConfigError(`--${name} must be a positive integer, got '${text}'`);
  return value;
}
