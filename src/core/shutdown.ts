/**
 * SIGINT/SIGTERM for the long-running workers. The first signal aborts
 * `stopSignal`: the worker stops reading, finishes what it holds, confirms or
 * commits it, and exits. A second signal aborts `abortSignal`: whatever still
 * waits (a ClickHouse that is down, a slow flush) gives up. Nothing is
 * confirmed that was not delivered, so giving up only means the unfinished
 * part is read again on the next start.
 */
import type { Logger } from '../observability/logger.js';

export interface Shutdown {
  stopSignal: AbortSignal;
  /** Resolves with the signal's name at the first signal. */
  requested: Promise<string>;
  abortSignal: AbortSignal;
  dispose(): void;
}

export function installShutdown(logger: Logger): Shutdown {
  const stop = new AbortController();
  const abort = new AbortController();
  let resolveRequested: (signal: string) => void = () => undefined;
  const requested = new Promise<string>((resolve) => (resolveRequested = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!stop.signal.aborted) {
      logger.info({ signal }, `${signal}: stopping: finishing what is in hand, then exiting (send it again to give up waiting)`);
      stop.abort();
      resolveRequested(signal);
    } else {
      logger.warn({ signal }, `${signal} again: giving up; anything not yet confirmed is read again on the next start`);
      abort.abort();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    stopSignal: stop.signal,
    requested,
    abortSignal: abort.signal,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
