/**
 * Retry with capped exponential backoff for a dependency that may be away for
 * a while (ClickHouse restarting). Transient failures are retried without
 * limit (or until `giveUpAfterMs`), each with a log line saying what is
 * waited for and what is held meanwhile; any other failure is thrown at once.
 * Aborting the signal stops the waiting: the operation then throws
 * RetryAborted. Giving up throws RetryGaveUp, holding the last failure.
 * `retryWithBackoff` retries one operation; `Outage` is the same for a
 * caller that runs its own loop (cdc re-running its stages after a lost
 * connection).
 */
import type { Logger } from '../observability/logger.js';
import { retryMetrics } from '../observability/metrics.js';
import { withInnerErrors } from './error-text.js';

export interface RetryOptions extends OutageOptions, Waiting {
  isTransient: (error: unknown) => boolean;
}

export class RetryAborted extends Error {
  override readonly name = 'RetryAborted';
}

/** The wait bound ran out; `lastError` is the dependency's last failure. */
export class RetryGaveUp extends Error {
  override readonly name = 'RetryGaveUp';
  constructor(message: string, readonly lastError: unknown) {
    super(message);
  }
}

export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new RetryAborted('stopped'));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new RetryAborted('stopped'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface OutageOptions {
  logger: Logger;
  signal?: AbortSignal | undefined;
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Stop retrying once this long has passed since the outage's first failure; unset: never. */
  giveUpAfterMs?: number | undefined;
  /** The flag that sets `giveUpAfterMs`, named when giving up: `--wait-timeout`, `--retry-for`. */
  bound?: string;
}

/** What one failed attempt waited for. */
export interface Waiting {
  /** What the retries wait for, e.g. "ClickHouse at http://127.0.0.1:18123". */
  waitingFor: string;
  /** What is held back meanwhile, e.g. "the insert of 20000 rows (offsets not committed)". */
  holding: string;
  /** The metrics' label for what is waited for: a fixed name such as `clickhouse`, never an address. */
  dependency?: string | undefined;
}

/**
 * One outage of a dependency, for a caller that retries: the capped,
 * jittered backoff, a log line per failed attempt saying what it waits for,
 * the `walbridge_waiting` / `walbridge_retries_total` metrics, and the bound.
 * `failed` after each transient failure, `recovered` once an attempt got
 * through; the next failure after that starts a new outage (backoff and
 * bound from the start).
 */
export class Outage {
  private since: number | undefined;
  private attempts = 0;
  private waiting: Waiting | undefined;

  constructor(private readonly options: OutageOptions) {}

  get ongoing(): boolean {
    return this.since !== undefined;
  }

  /**
   * Counts and logs the failure, then sleeps the backoff. Throws RetryGaveUp
   * once the bound is spent, RetryAborted when the signal aborts (before or
   * during the sleep).
   */
  async failed(error: unknown, waiting: Waiting): Promise<void> {
    const { options } = this;
    const message = error instanceof Error ? withInnerErrors(error) : String(error);
    if (options.signal?.aborted) throw new RetryAborted(`stopped while waiting for ${waiting.waitingFor}`);
    this.since ??= Date.now();
    if (this.waiting?.dependency && this.waiting.dependency !== waiting.dependency) clearWaiting(this.waiting.dependency);
    this.waiting = waiting;
    if (waiting.dependency) {
      retryMetrics().retries.inc({ dependency: waiting.dependency });
      retryMetrics().waiting.set({ dependency: waiting.dependency }, 1);
      retryMetrics().waitingNow.add(waiting.dependency);
    }
    const waited = Date.now() - this.since;
    if (options.giveUpAfterMs !== undefined && waited >= options.giveUpAfterMs) {
      throw new RetryGaveUp(
        `gave up waiting for ${waiting.waitingFor} after ${Math.round(waited / 1000)}s (${options.bound ?? '--wait-timeout'}): ${message}; ${waiting.holding} was not done`, error);
    }
    const backoff = backoffDelay(this.attempts, options.initialDelayMs ?? 500, options.maxDelayMs ?? 10_000);
    const delay = options.giveUpAfterMs === undefined ? backoff : Math.max(0, Math.min(backoff, options.giveUpAfterMs - waited));
    this.attempts += 1;
    options.logger.warn(
      { attempt: this.attempts, retryInMs: delay, error: message, ...(waiting.dependency ? { dependency: waiting.dependency } : {}) },
      `waiting for ${waiting.waitingFor}: ${message}; retrying in ${(delay / 1000).toFixed(1)}s, holding ${waiting.holding}`,
    );
    try {
      await sleep(delay, options.signal);
    } catch {
      throw new RetryAborted(`stopped while waiting for ${waiting.waitingFor}; ${waiting.holding} was not done`);
    }
  }

  /**
   * The dependency answered again: says so (once per outage; `then`: what goes on now) and clears the waiting gauge.
   * `provisionally`: the bound keeps counting until settled() (a failure before that is the same outage, so a
   * crash loop gives up like one long outage); the backoff starts short again either way.
   */
  recovered(then?: string, provisionally = false): void {
    if (this.since === undefined || !this.waiting) return;
    if (this.waiting.dependency) clearWaiting(this.waiting.dependency);
    this.options.logger.info({ attempts: this.attempts + 1, waitedMs: Date.now() - this.since }, `${this.waiting.waitingFor} is back; ${then ?? `${this.waiting.holding} went through`}`);
    this.waiting = undefined;
    this.attempts = 0;
    if (!provisionally) this.settled();
  }

  /** The recovery held: the next failure starts a new outage. */
  settled(): void {
    this.since = undefined;
    this.attempts = 0;
  }
}

function clearWaiting(dependency: string): void {
  retryMetrics().waiting.set({ dependency }, 0);
  retryMetrics().waitingNow.delete(dependency);
}

export async function retryWithBackoff<T>(operation: () => Promise<T>, options: RetryOptions): Promise<T> {
  const outage = new Outage(options);
  const waiting: Waiting = { waitingFor: options.waitingFor, holding: options.holding, dependency: options.dependency };
  for (;;) {
    if (options.signal?.aborted) throw new RetryAborted(`stopped while waiting for ${options.waitingFor}`);
    try {
      const result = await operation();
      outage.recovered();
      return result;
    } catch (error) {
      if (!options.isTransient(error)) throw error;
      await outage.failed(error, waiting);
    }
  }
}
