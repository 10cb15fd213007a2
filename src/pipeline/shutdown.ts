/**
 * SIGINT/SIGTERM → an AbortSignal the pipeline watches: stop reading, flush,
 * confirm, close. A second signal exits at once (nothing is confirmed that
 * was not delivered, so that is safe, only slower to resume).
 */
import { EXIT_RUNTIME } from '../core/exit-codes.js';
import type { Logger } from '../observability/logger.js';

export function onShutdownSignal(logger: Logger): AbortSignal {
  const controller = new AbortController();
  const handler = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      logger.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(EXIT_RUNTIME);
    }
    logger.info({ signal }, 'stopping: flushing what was read, confirming it, closing');
    controller.abort();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return controller.signal;
}
