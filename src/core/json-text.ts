/**
 * JSON text → value without losing integers. JSON.parse turns an int8 above
 * 2^53 into the nearest float; the envelope carries int8 as a JSON number
 * (docs/design.md), so such a number must come back as a bigint.
 *
 * Fast path: JSON.parse, when the text cannot hold an unsafe integer. An
 * integer beyond Number.MAX_SAFE_INTEGER (9007199254740991, 16 digits) has at
 * least 17 digits or is 16 digits starting with 9, so the text is checked for
 * such a digit run (anywhere, strings included: a false alarm only costs the
 * slow path). Epoch microseconds (16 digits, starting with 1 until 2286) stay
 * on the fast path. Slow path: lossless-json, integers that do not fit a
 * double exactly become bigint, everything else a number.
 */
import { isInteger, isSafeNumber, parse as parseLossless } from 'lossless-json';

/**
 * True when the text has a run of 17+ digits or 16 digits starting with 9.
 * One pass over the characters: the equivalent regex (/\d{17}|9\d{15}/)
 * restarts at every digit of a run and was a tenth of the sink's CPU.
 */
function mayHoldUnsafeInteger(text: string): boolean {
  let run = 0;
  let firstIsNine = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 48 && code <= 57) {
      if (run === 0) firstIsNine = code === 57;
      run++;
      if (run >= 17 || (run === 16 && firstIsNine)) return true;
    } else {
      run = 0;
    }
  }
  return false;
}

function parseNumberText(text: string): number | bigint {
  if (isInteger(text) && !isSafeNumber(text)) return BigInt(text);
  return Number(text);
}

export function parseJsonLossless(text: string): unknown {
  if (!mayHoldUnsafeInteger(text)) return JSON.parse(text);
  return parseLossless(text, null, parseNumberText);
}
