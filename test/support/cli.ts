/**
 * Runs the built CLIs (dist/src/cli/*.js) as child processes, the way a user
 * runs them, with the environment a test chooses. Every run of every test is
 * checked for leaked secrets: no password given to a CLI (in a URL or
 * libpq-style setting among its arguments and environment, in a *_PASSWORD
 * variable such as KAFKA_SASL_PASSWORD, or in a *_PASSWORD_FILE), nor the
 * hash key of personal-data columns (CDC_HASH_KEY, CDC_HASH_KEY_FILE), may
 * appear in anything it printed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const DIST_SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

export type CliName = 'cdc' | 'sink' | 'migrate';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  child: ChildProcess;
  /** Everything printed so far. */
  output(): { stdout: string; stderr: string };
  /** Resolves when the process has exited. */
  exited: Promise<CliResult>;
}

export function startCli(cli: CliName, args: string[], env: NodeJS.ProcessEnv = {}): RunningCli {
  const child = spawn(process.execPath, [path.join(DIST_SRC, 'cli', `${cli}.js`), ...args], {
    env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const secrets = secretsGiven(args, { ...process.env, ...env });
  const exited = new Promise<CliResult>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  }).then((result) => {
    const leaked = secrets.filter((secret) => `${result.stdout}${result.stderr}`.includes(secret));
    if (leaked.length > 0) throw new Error(`${cli} ${args.join(' ')} printed a password it was given (${leaked.length} leaked)`);
    return result;
  });
  return { child, output: () => ({ stdout, stderr }), exited };
}

/**
 * The stack's own password (`walbridge`, also the user, database and product
 * name) cannot be told apart from those names in output, so it is not checked;
 * tests that matter give their own passwords.
 */
const UNCHECKABLE = new Set(['', 'walbridge']);

function secretsGiven(args: string[], env: NodeJS.ProcessEnv): string[] {
  const texts = [...args, ...Object.values(env).filter((v): v is string => v !== undefined)];
  const found = new Set<string>();
  for (const text of texts) {
    for (const match of text.matchAll(/\/\/[^\s:/?#@]*:([^\s]*)@/g)) {
      found.add(match[1]!);
      found.add(safeDecode(match[1]!));
    }
    for (const match of text.matchAll(/password\s*=\s*'?([^\s'&]+)/gi)) found.add(match[1]!);
  }
  if (env.CDC_HASH_KEY) found.add(env.CDC_HASH_KEY);
  for (const [name, value] of Object.entries(env)) {
    if (name.endsWith('_PASSWORD') && value) found.add(value); // KAFKA_SASL_PASSWORD
  }
  for (const [name, file] of Object.entries(env)) {
    if ((name.endsWith('_PASSWORD_FILE') || name === 'CDC_HASH_KEY_FILE') && file) {
      try {
        found.add(readFileSync(file, 'utf8').trim());
      } catch {
        // a test of a missing file
      }
    }
  }
  return [...found].filter((secret) => !UNCHECKABLE.has(secret));
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export async function runCli(cli: CliName, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<CliResult> {
  const running = startCli(cli, args, env);
  const timer = setTimeout(() => running.child.kill('SIGKILL'), timeoutMs);
  try {
    return await running.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** The environment that points the CLIs at a test's isolated services. */
export function cliEnv(services: { databaseUrl: string; kafkaBrokers: string; clickhouseUrl: string; clickhouseCaFile?: string | undefined; name?: string }): NodeJS.ProcessEnv {
  return {
    DATABASE_URL: services.databaseUrl, KAFKA_BROKERS: services.kafkaBrokers, CLICKHOUSE_URL: services.clickhouseUrl,
    ...(services.clickhouseCaFile === undefined ? {} : { CLICKHOUSE_CA_FILE: services.clickhouseCaFile }),
    // A consumer group of the scenario's own: test files run side by side, and members of one group
    // wait for each other at every rebalance (a killed one for its whole session).
    ...(services.name === undefined ? {} : { SINK_GROUP: `${services.name}_sink` }),
  };
}
