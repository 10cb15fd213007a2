/**
 * The sink's pause for a table that cannot hold the schema version in hand
 * (an incompatible type change, a column dropped in ClickHouse by hand): it
 * says once a minute what is wrong and the DDL that fixes it, re-reads the
 * table every PAUSE_RECHECK_MS, and returns once the table fits. Nothing past
 * the message in hand is committed meanwhile; nothing is dead-lettered.
 */
import type { Logger } from '../observability/logger.js';
import { isSystemicClickHouseError } from './clickhouse/errors.js';
import type { TableTarget } from './table-target.js';

export const PAUSE_RECHECK_MS = 5_000;
const PAUSE_LOG_EVERY_MS = 60_000;

/**
 * `tick` runs at least every few seconds while waiting (the Kafka heartbeat);
 * it may throw (a rebalance), which ends the pause. Returns false when
 * `stopped()` turned true first.
 */
export async function pauseUntilFits(target: TableTarget, header: Buffer | undefined, logger: Logger, signal: AbortSignal | undefined,
  options: { blockers?: string[]; stopped?: () => boolean; tick?: () => Promise<void> } = {}): Promise<boolean> {
  let blockers = options.blockers ?? await recheck(target, header);
  if (blockers.length === 0) return true;
  const started = Date.now();
  let loggedAt = 0;
  while (blockers.length > 0) {
    if (Date.now() - loggedAt >= PAUSE_LOG_EVERY_MS) {
      loggedAt = Date.now();
      logger.error({ table: target.name, blockers }, `sink paused on ClickHouse table ${target.name} (offsets not committed, ` +
        `re-checking every ${PAUSE_RECHECK_MS / 1000}s): ${blockers.join('; ')}`);
    }
    const deadline = Date.now() + PAUSE_RECHECK_MS;
    while (Date.now() < deadline) {
      if (options.stopped?.() || signal?.aborted) return false;
      await new Promise((resolve) => setTimeout(resolve, 500));
      if (options.tick) await options.tick();
    }
    blockers = await recheck(target, header);
  }
  logger.info(`sink resumed on ClickHouse table ${target.name} after ${Math.round((Date.now() - started) / 1000)}s: the table now holds the events' schema`);
  return true;
}

/** The table's blockers; ClickHouse away (restarting, paused) is one more reason to wait, not an error. */
async function recheck(target: TableTarget, header: Buffer | undefined): Promise<string[]> {
  try {
    return await target.recheck(header);
  } catch (error) {
    if (!isSystemicClickHouseError(error)) throw error;
    return [`ClickHouse did not answer the re-check: ${(error as Error).message.split('\n')[0]}`];
  }
}
