/**
 * How `cdc start` rides through an outage (run.ts runs the stages of one
 * attempt): a failure that connection-loss.ts calls a lost PostgreSQL
 * connection or an unreachable Kafka ends the attempt (its sessions closed,
 * what it read and did not confirm dropped: the slot sends it again); after
 * a capped, jittered backoff (core/retry.ts' Outage: the log line, the
 * metrics, the `--retry-for` bound) the stages run again from the start.
 * Any other failure is thrown at once. What outlives an attempt is in Carried.
 */
import { redactUrl } from '../config/connections.js';
import type { Operation } from '../core/envelope.js';
import { formatLsn, type Lsn } from '../core/lsn.js';
import { Outage, RetryAborted, type Waiting } from '../core/retry.js';
import { lostDependency, type Dependency } from './connection-loss.js';
import type { CaptureOptions, CaptureSummary } from './run.js';

const RETRY = { initialDelayMs: 500, maxDelayMs: 30_000 };
/**
 * A stream that starts again ends the outage only once it has lasted this
 * long: one that keeps failing right after it starts (a crash loop) meets
 * `--retry-for` like one long outage.
 */
export const STREAM_HELD_MS = 30_000;

/** What an attempt hands on to the next one after an outage. */
export interface Carried {
  counts: Record<Operation, number>;
  /** `--once`: the WAL position when the command started (kept across attempts). */
  target: Lsn | null | undefined;
  /** The last LSN known confirmed, for the log lines. */
  confirmed: Lsn | null;
  /**
   * Preflight has checked --from-lsn (once, on the attempt that got that
   * far): later attempts skip the check, as the slot may have confirmed
   * past it since. Not "attempt > 1": an attempt that failed before its
   * preflight checked nothing.
   */
  fromLsnChecked: boolean;
  /** The attempt is streaming again from `from`: the outage is over. */
  recovered(from: Lsn): void;
}

/**
 * Runs `attempt` (the stages); after an outage, runs it again. Ends
 * with the summary, or throws: a real failure at once, an outage once
 * `retryForMs` ran out (RetryGaveUp), or a stop signal while waiting.
 */
export async function rideThrough(options: CaptureOptions, attempt: (options: CaptureOptions, carried: Carried) => Promise<CaptureSummary>,
  streamHeldMs = STREAM_HELD_MS): Promise<CaptureSummary> {
  const outage = new Outage({ logger: options.logger, signal: options.signal, giveUpAfterMs: options.retryForMs, bound: '--retry-for', ...RETRY });
  let held: NodeJS.Timeout | undefined;
  const carried: Carried = {
    counts: { c: 0, u: 0, d: 0, r: 0, t: 0 }, target: undefined, confirmed: null, fromLsnChecked: false,
    recovered: (from) => {
      outage.recovered(`streaming again from ${formatLsn(from)}`, true);
      clearTimeout(held);
      held = setTimeout(() => outage.settled(), streamHeldMs).unref();
    },
  };
  for (;;) {
    try {
      return await attempt(options, carried);
    } catch (error) {
      clearTimeout(held);
      const dependency = lostDependency(error);
      if (dependency === null) throw error;
      try {
        await outage.failed(error, waiting(options, dependency, carried.confirmed));
      } catch (stopped) {
        if (!(stopped instanceof RetryAborted)) throw stopped;
        throw new Error(`${stopped.message}; nothing unconfirmed is lost: the next start reads it again from the slot`);
      }
    }
  }
}

function waiting(options: CaptureOptions, dependency: Dependency, confirmed: Lsn | null): Waiting {
  const at = confirmed === null ? '' : ` (last confirmed ${formatLsn(confirmed)})`;
  return {
    waitingFor: dependency === 'postgres' ? `PostgreSQL at ${postgresAddress(options.databaseUrl)}` : `Kafka at ${options.kafka.brokers.join(',')}`,
    holding: `nothing: what was not confirmed is read again from the slot${at}`,
    dependency,
  };
}

/** host:port/database of a PostgreSQL URL, without credentials. */
function postgresAddress(databaseUrl: string): string {
  try {
    const url = new URL(databaseUrl);
    return `${url.host}${url.pathname}`;
  } catch {
    return redactUrl(databaseUrl);
  }
}
