/** The line `cdc start` prints on stdout when it stops (docs/cdc.md). */
import type { Operation } from '../core/envelope.js';
import { formatLsn } from '../core/lsn.js';
import type { CaptureSummary } from '../cdc/run.js';

export function summaryLine(summary: CaptureSummary): string {
  const names: [Operation, string][] = [['r', 'snapshot row'], ['c', 'insert'], ['u', 'update'], ['d', 'delete'], ['t', 'truncate']];
  const total = names.reduce((sum, [op]) => sum + summary.counts[op], 0);
  const parts = names.filter(([op]) => summary.counts[op] > 0).map(([op, name]) => `${summary.counts[op]} ${name}${summary.counts[op] === 1 ? '' : 's'}`);
  const events = `${total} event${total === 1 ? '' : 's'}${parts.length ? ` (${parts.join(', ')})` : ''}`;
  const topics = summary.topics.length === 1 ? summary.topics[0] : `${summary.topics.length} topics (${summary.topics.join(', ')})`;
  const where = `from slot ${summary.slot} to ${topics}; confirmed ${formatLsn(summary.confirmed)}`;
  if (summary.undelivered === 0) return `sent ${events} ${where}`;
  // The stop's flush ran out of time: say so rather than count those as sent.
  return `read ${events} ${where}; ${summary.undelivered} Kafka message${summary.undelivered === 1 ? ' was' : 's were'} not delivered before the stop (not confirmed: a restart sends them again)`;
}
