/**
 * A Kafka message → what the sink must do with it. Reads walbridge topics and
 * Debezium PostgreSQL connector topics (schemas disabled) alike:
 *
 * - value `{op, before, after, source}`; `op` c|r|u → upsert of `after`,
 *   d → delete (key from the message key, other columns from `before`),
 *   t → truncate; a null value (Debezium's tombstone after a delete) → skip.
 * - version: `source.commit_lsn` (walbridge, text LSN of the commit), else
 *   `source.lsn` (Debezium: the change's own LSN, a number).
 *
 * Anything else is a PoisonMessage: the caller dead-letters it and carries on.
 */
import type { RowImage } from '../core/change-event.js';
import { parseJsonLossless } from '../core/json-text.js';
import { parseLsn, type Lsn } from '../core/lsn.js';

export type SinkEvent =
  | { kind: 'upsert'; version: Lsn; after: RowImage }
  | { kind: 'delete'; version: Lsn; before: RowImage | null; key: RowImage | null }
  | { kind: 'truncate'; version: Lsn }
  | { kind: 'tombstone' };

/** A message that can never be applied; its text goes into the DLQ header. */
export class PoisonMessage extends Error {
  override readonly name = 'PoisonMessage';
}

/** Consecutive events of one transaction share the commit LSN text: parse it once. */
let lastLsnText = '';
let lastLsn: Lsn = 0n;

function commitVersion(source: Record<string, unknown>): Lsn {
  const commitLsn = source.commit_lsn;
  if (typeof commitLsn === 'string') {
    if (commitLsn === lastLsnText) return lastLsn;
    try {
      lastLsn = parseLsn(commitLsn);
    } catch (error) {
      throw new PoisonMessage(`source.commit_lsn: ${(error as Error).message}`);
    }
    lastLsnText = commitLsn;
    return lastLsn;
  }
  const lsn = source.lsn;
  if (typeof lsn === 'bigint' && lsn >= 0n) return lsn;
  if (typeof lsn === 'number' && Number.isSafeInteger(lsn) && lsn >= 0) return BigInt(lsn);
  throw new PoisonMessage('the envelope has neither source.commit_lsn (walbridge) nor a numeric source.lsn (Debezium)');
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJsonMessage(bytes: Buffer, what: string): unknown {
  try {
    return parseJsonLossless(bytes.toString('utf8'));
  } catch (error) {
    throw new PoisonMessage(`${what} is not JSON: ${(error as Error).message}`);
  }
}

export function decodeEvent(key: Buffer | null, value: Buffer | null): SinkEvent {
  if (value === null || value.length === 0) return { kind: 'tombstone' };
  const envelope = parseJsonMessage(value, 'the message value');
  if (!isObject(envelope)) throw new PoisonMessage('the message value is not a change envelope (expected a JSON object)');
  // Debezium with schemas enabled wraps the envelope as {schema, payload}.
  const body = isObject(envelope.payload) && 'schema' in envelope ? envelope.payload : envelope;
  const { op, source } = body;
  if (typeof op !== 'string') throw new PoisonMessage('the message value is not a change envelope: no "op"');
  if (!isObject(source)) throw new PoisonMessage('the change envelope has no "source" object');
  switch (op) {
    case 'c':
    case 'r':
    case 'u': {
      if (!isObject(body.after)) throw new PoisonMessage(`an op '${op}' envelope needs an "after" object`);
      return { kind: 'upsert', version: commitVersion(source), after: body.after };
    }
    case 'd': {
      const before = isObject(body.before) ? body.before : null;
      const keyObject = key && key.length > 0 ? parseJsonMessage(key, 'the message key') : null;
      const keyImage = isObject(keyObject) ? (isObject(keyObject.payload) && 'schema' in keyObject ? keyObject.payload : keyObject) : null;
      if (!before && !keyImage) throw new PoisonMessage('a delete envelope needs a "before" image or a JSON object key');
      return { kind: 'delete', version: commitVersion(source), before, key: keyImage };
    }
    case 't':
      return { kind: 'truncate', version: commitVersion(source) };
    default:
      throw new PoisonMessage(`unknown op '${op}' (expected c, r, u, d or t)`);
  }
}
