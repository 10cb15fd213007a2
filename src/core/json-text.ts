/**
 * JSON text → value without losing integers. JSON.parse turns an int8 above
 * 2^53 into the nearest float; the envelope carries int8 as a JSON number
 * (docs/design.md), so such a number must come back as a bigint.
 *
 * Fast path: JSON.parse, then a walk of the parsed value: an integer that
 * lost precision is a double outside the safe range (every integer literal
 * beyond 2^53 parses to one), and only then is the text parsed again by the
 * slow path, lossless-json (integers that do not fit a double exactly become
 * bigint, everything else a number). Values at the paths of `inexact` are
 * left out of the walk and may be inexact: a caller names the fields it never
 * reads that always hold big integers (an envelope's `ts_ns`, 19 digits, which
 * sent every message down the slow path when the text was scanned for long
 * digit runs: lossless-json was 29 % of the sink's CPU). Paths, not names: a
 * row's own column called `ts_ns` is walked like any other.
 */
import { isInteger, isSafeNumber, parse as parseLossless } from 'lossless-json';

/** Paths left out of the walk: `{ ts_ns: true, source: { ts_ns: true } }` skips `ts_ns` and `source.ts_ns`. */
export interface InexactPaths {
  readonly [key: string]: true | InexactPaths;
}

/** True when the parsed value holds a number that is an integer outside ±(2^53 − 1), outside the `inexact` paths. */
function holdsUnsafeInteger(value: unknown, inexact: InexactPaths | undefined): boolean {
  if (typeof value === 'number') return Number.isInteger(value) && !Number.isSafeInteger(value);
  if (typeof value !== 'object' || value === null) return false;
  if (Array.isArray(value)) {
    for (const item of value) if (holdsUnsafeInteger(item, undefined)) return true;
    return false;
  }
  for (const key in value) {
    const rule = inexact?.[key];
    if (rule !== true && holdsUnsafeInteger((value as Record<string, unknown>)[key], rule)) return true;
  }
  return false;
}

function parseNumberText(text: string): number | bigint {
  if (isInteger(text) && !isSafeNumber(text)) return BigInt(text);
  return Number(text);
}

export function parseJsonLossless(text: string, inexact?: InexactPaths): unknown {
  const fast: unknown = JSON.parse(text);
  if (!holdsUnsafeInteger(fast, inexact)) return fast;
  return parseLossless(text, null, parseNumberText);
}
