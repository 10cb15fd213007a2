/**
 * Retry with capped exponential backoff for a dependency that may be away for
 * a while (ClickHouse restarting). Transient failures are retried without
 * limit (or until `giveUpAfterMs`), each with a log line saying what is
 * waited for and what is held meanwhile; any other failure is thrown at once.
 * Aborting the signal stops the waiting: the operation then throws
 * RetryAborted. Giving up throws RetryGaveUp, holding the last failure.
 */
import type { Logger } from '../observability/logger.js';
import { retryMetrics } from '../observability/metrics.js';

export interface RetryOptions {
  /** What the retries wait for, e.g. "ClickHouse at http://127.0.0.1:18123". */
  waitingFor: string;
  /** What is held back meanwhile, e.g. "the insert of 20000 rows (offsets not committed)". */
  holding: string;
  isTransient: (error: unknown) => boolean;
  logger: Logger;
  signal?: AbortSignal | undefined;
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** The metrics' label for what is waited for: a fixed name such as `clickhouse`, never an address. */
  dependency?: string;
  /** Stop retrying once this long has passed since the first failure (`sink --wait-timeout`); unset: never. */
  giveUpAfterMs?: number | undefined;
}

class RetryAborted extends Error {
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

export async function retryWithBackoff<T>(operation: () => Promise<T>, options: RetryOptions): Promise<T> {
  const initial = options.initialDelayMs ?? 500;
  const max = options.maxDelayMs ?? 10_000;
  let firstFailure: number | undefined;
  for (let attempt = 0; ; attempt += 1) {
    if (options.signal?.aborted) throw new RetryAborted(`stopped while waiting for ${options.waitingFor}`);
    try {
      const result = await operation();
      if (firstFailure !== undefined) {
        if (options.dependency) {
          retryMetrics().waiting.set({ dependency: options.dependency }, 0);
          retryMetrics().waitingNow.delete(options.dependency);
        }
        options.logger.info({ attempts: attempt + 1, waitedMs: Date.now() - firstFailure }, `${options.waitingFor} is back; ${options.holding} went through`);
      }
      return result;
    } catch (error) {
      if (!options.isTransient(error)) throw error;
      firstFailure ??= Date.now();
      if (options.dependency) {
        retryMetrics().retries.inc({ dependency: options.dependency });
        retryMetrics().waiting.set({ dependency: options.dependency }, 1);
        retryMetrics().waitingNow.add(options.dependency);
      }
      const waited = Date.now() - firstFailure;
      if (options.giveUpAfterMs !== undefined && waited >= options.giveUpAfterMs) {
        throw new RetryGaveUp(
          `gave up waiting for ${options.waitingFor} after ${Math.round(waited / 1000)}s (--wait-timeout): ${(error as Error).message}; ${options.holding} was not done`, error);
      }
      const delay = options.giveUpAfterMs === undefined ? backoffDelay(attempt, initial, max)
        : Math.max(0, Math.min(backoffDelay(attempt, initial, max), options.giveUpAfterMs - waited));
      options.logger.warn(
        { attempt: attempt + 1, retryInMs: delay, error: (error as Error).message },
        `waiting for ${options.waitingFor}: ${(error as Error).message}; retrying in ${(delay / 1000).toFixed(1)}s, holding ${options.holding}`,
      );
      try {
        await sleep(delay, options.signal);
      } catch {
        throw new RetryAborted(`stopped while waiting for ${options.waitingFor}; ${options.holding} was not done`);
      }
    }
  }
}
