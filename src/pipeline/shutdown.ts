/**
 * SIGINT/SIGTERM handling for long-running workers. The first signal asks the
 * worker to stop: it stops reading, finishes the batch in hand, commits and
 * exits. A second signal aborts `abortSignal`: whatever still waits (a
 * ClickHouse that is down) gives up, and nothing more is committed, so the
 * unfinished messages are read again on the next start.
 */
import type { Logger } from '../observability/logger.js';

export interface Shutdown {
  /** Resolves with the signal's name at the first signal. */
  requested: Promise<string>;
  abortSignal: AbortSignal;
  dispose(): void;
}

export function installShutdown(logger: Logger): Shutdown {
  const abort = new AbortController();
  let count = 0;
  let resolveRequested: (signal: string) => void = () => undefined;
  const requested = new Promise<string>((resolve) => (resolveRequested = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    count += 1;
    if (count === 1) {
      logger.info({ signal }, `${signal}: finishing the batch in hand, committing, then exiting (send it again to give up waiting)`);
      resolveRequested(signal);
    } else {
      logger.warn({ signal }, `${signal} again: giving up; uncommitted messages will be read again on the next start`);
      abort.abort();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    requested,
    abortSignal: abort.signal,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
