/**
 * Runs the built CLIs (dist/src/cli/*.js) as child processes, the way a user
 * runs them, with the environment a test chooses.
 */
import { spawn, type ChildProcess } from 'node:child_process';
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
  const exited = new Promise<CliResult>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, output: () => ({ stdout, stderr }), exited };
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
export function cliEnv(services: { databaseUrl: string; kafkaBrokers: string; clickhouseUrl: string }): NodeJS.ProcessEnv {
  return { DATABASE_URL: services.databaseUrl, KAFKA_BROKERS: services.kafkaBrokers, CLICKHOUSE_URL: services.clickhouseUrl };
}
