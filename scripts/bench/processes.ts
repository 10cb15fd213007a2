/**
 * Child processes for the benchmark: the walbridge CLIs with their peak RSS
 * sampled from /proc and their CPU time reported at exit (rusage-hook.ts),
 * and plain commands timed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import { RUSAGE_MARK } from './rusage-mark.js';

const CLI_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli');

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
  /** Peak resident set size in MB (VmHWM, read until the process ended; the exit's own figure when reported). */
  peakRssMb: number;
  /** User + system CPU seconds of the whole run, as the process reported at exit; NaN when it did not (not a CLI, or killed). */
  cpuSeconds: number;
}

/** The CPU seconds and peak RSS a CLI printed at exit (rusage-hook.ts). */
function reportedUsage(stderr: string): { cpuSeconds: number; peakRssMb: number } | undefined {
  const at = stderr.lastIndexOf(RUSAGE_MARK);
  if (at < 0) return undefined;
  const line = stderr.slice(at + RUSAGE_MARK.length).split('\n', 1)[0] ?? '';
  const usage = JSON.parse(line) as { userUs: number; systemUs: number; maxRssKb: number };
  return { cpuSeconds: (usage.userUs + usage.systemUs) / 1e6, peakRssMb: usage.maxRssKb / 1024 };
}

export interface Running {
  child: ChildProcess;
  /** Asks the process to stop (SIGTERM) and waits for it. */
  stop(): Promise<Finished>;
  finished: Promise<Finished>;
}

/** VmHWM of a live process in MB, or 0 once it is gone. */
function peakRss(pid: number): number {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

export function startProcess(command: string, args: string[], env: NodeJS.ProcessEnv): Running {
  const started = performance.now();
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let peakRssMb = 0;
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-20_000)));
  const sampler = setInterval(() => {
    if (child.pid) peakRssMb = Math.max(peakRssMb, peakRss(child.pid));
  }, 100);
  const finished = new Promise<Finished>((resolve) => {
    child.on('exit', () => {
      clearInterval(sampler);
    });
    child.on('close', (code) => {
      const usage = reportedUsage(stderr);
      resolve({
        code, stdout, stderr, seconds: (performance.now() - started) / 1000,
        peakRssMb: Math.max(peakRssMb, usage?.peakRssMb ?? 0), cpuSeconds: usage?.cpuSeconds ?? Number.NaN,
      });
    });
  });
  return {
    child,
    finished,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return finished;
    },
  };
}

/**
 * Extra node flags for the cdc and sink processes, e.g. to profile them:
 * BENCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' (NODE_OPTIONS refuses --cpu-prof).
 */
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
const RUSAGE_HOOK = pathToFileURL(path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'rusage-hook.js')).href;

export function startCli(name: 'cdc' | 'sink' | 'migrate', args: string[], env: NodeJS.ProcessEnv): Running {
  const nodeArgs = name === 'migrate' ? [] : ['--import', RUSAGE_HOOK, ...NODE_ARGS];
  return startProcess(process.execPath, [...nodeArgs, path.join(CLI_DIR, `${name}.js`), ...args], { LOG_LEVEL: 'warn', ...env });
}

/** Runs to the end; a non-zero exit is an error naming the command and its output. */
export async function runToEnd(running: Running, what: string): Promise<Finished> {
  const result = await running.finished;
  if (result.code !== 0) {
    throw new Error(`${what} exited ${result.code}\n${result.stdout}\n${result.stderr}`);
  }
  return result;
}
