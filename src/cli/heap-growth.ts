/**
 * Imported first by the cdc and sink CLIs: makes V8 grow its old generation
 * by at most HEAP_GROWING_PERCENT over the live heap after each full GC,
 * instead of V8's own factor of up to 4× for a high allocation rate.
 *
 * Both processes allocate fast but keep little (~30 MB live), so V8's
 * factor let garbage pile up to 150–250 MB of old space between full GCs:
 * most of their peak RSS (issue 13, docs/performance.md "Third round"). The flag
 * is read at each GC, so setting it at start-up takes effect (unlike the
 * young generation's size, fixed when the heap is created). A
 * `--heap-growing-percent` given to node itself wins.
 */
import { setFlagsFromString } from 'node:v8';

const HEAP_GROWING_PERCENT = 50;

if (!process.execArgv.some((arg) => /^--heap[-_]growing[-_]percent/.test(arg))) {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
