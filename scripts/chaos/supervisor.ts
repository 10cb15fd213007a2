/**
 * Runs the walbridge processes of a chaos run the way a supervisor
 * (systemd, Kubernetes) would: each is restarted a second after it ends. An
 * end the scheduler caused (it killed the process) is expected; any other is
 * recorded as a finding, since cdc and the sink must ride through outages
 * without exiting. Output goes to one log file per process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const CLI_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli');
const RESTART_DELAY_MS = 1_000;

export interface UnexpectedExit {
  name: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  at: Date;
  /** The process's last output lines, so a CI log that keeps only the end of the run still says why. */
  lastLines: string[];
}

const LAST_LINES_KEPT = 15;

export class Supervised {
  private child: ChildProcess | undefined;
  private killedOnPurpose = false;
  private stopping = false;
  restarts = 0;

  constructor(
    readonly name: string,
    private readonly cli: 'cdc' | 'sink',
    private readonly args: string[],
    private readonly env: NodeJS.ProcessEnv,
    private readonly logFile: string,
    private readonly onUnexpectedExit: (exit: UnexpectedExit) => void,
  ) {}

  start(): void {
    const log = createWriteStream(this.logFile, { flags: 'a' });
    log.write(`--- ${new Date().toISOString()} start ${this.cli} ${this.args.join(' ')}\n`);
    const child = spawn(process.execPath, [path.join(CLI_DIR, `${this.cli}.js`), ...this.args], {
      env: { ...process.env, LOG_LEVEL: 'info', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    const lastLines: string[] = [];
    const keep = (chunk: Buffer) => {
      lastLines.push(...chunk.toString('utf8').split('\n').filter((line) => line.trim() !== ''));
      lastLines.splice(0, Math.max(0, lastLines.length - LAST_LINES_KEPT));
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    this.child = child;
    child.on('close', (code, signal) => {
      log.end(`--- ${new Date().toISOString()} exited code=${code} signal=${signal}\n`);
      if (this.stopping) return;
      if (!this.killedOnPurpose) this.onUnexpectedExit({ name: this.name, code, signal, at: new Date(), lastLines });
      this.killedOnPurpose = false;
      this.restarts++;
      setTimeout(() => {
        if (!this.stopping) this.start();
      }, RESTART_DELAY_MS);
    });
  }

  /** kill -9, as a crash or an OOM kill would; the supervisor restarts it. */
  crash(): void {
    if (!this.child || this.child.exitCode !== null) return;
    this.killedOnPurpose = true;
    this.child.kill('SIGKILL');
  }

  /** SIGTERM, and waits for the orderly stop (SIGKILL after the timeout). */
  async stop(timeoutMs = 30_000): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await closed;
    clearTimeout(timer);
  }
}
