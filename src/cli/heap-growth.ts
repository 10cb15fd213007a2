/**
 * Imported first by the cdc and sink CLIs: makes V8 grow its old generation
 * by at most WALBRIDGE_HEAP_GROWING_PERCENT (default 100) over the live heap
 * after each full GC, instead of V8's own factor of up to 4× for a high
 * allocation rate.
 *
 * Both processes allocate fast but keep little (~30 MB live), so V8's factor
 * let garbage pile up to 150–250 MB of old space between full GCs: most of
 * their peak RSS. A smaller percentage means more full GCs: in quiet A/B runs
 * (docs/performance.md, "Fourth round") 100 kept catch-up within ~5 % of V8's
 * own sizing at 55–140 MB less cdc RSS, while 50 saved another 20–40 MB but
 * cost 20–30 % of catch-up throughput. The flag is read at each GC, so
 * setting it at start-up takes effect (unlike the young generation's size,
 * fixed when the heap is created). Node refuses the flag in NODE_OPTIONS,
 * hence the variable; 0 leaves V8's own sizing. A `--heap-growing-percent`
 * given to node itself wins.
 */
import { setFlagsFromString } from 'node:v8';

const DEFAULT_HEAP_GROWING_PERCENT = 100;

function heapGrowingPercent(text: string | undefined): number {
  if (text === undefined || text === '') return DEFAULT_HEAP_GROWING_PERCENT;
  if (/^\d{1,4}$/.test(text)) return Number(text);
  process.stderr.write(`warning: WALBRIDGE_HEAP_GROWING_PERCENT must be a whole number (0: V8's own heap sizing), got '${text}'; using ${DEFAULT_HEAP_GROWING_PERCENT}\n`);
  return DEFAULT_HEAP_GROWING_PERCENT;
}

const percent = heapGrowingPercent(process.env.WALBRIDGE_HEAP_GROWING_PERCENT);
if (percent > 0 && !process.execArgv.some((arg) => /^--heap[-_]growing[-_]percent/.test(arg))) {
  setFlagsFromString(`--heap-growing-percent=${percent}`);
}
