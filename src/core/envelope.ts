/**
 * The event format on the Kafka topic, in one place: the types, the topic
 * and key rules, the parser the sink uses (below), and the envelope text
 * pieces cdc's encoder (cdc/postgres/decode.ts) writes.
 *
 * Debezium's PostgreSQL connector envelope
 * with schemas disabled (`value.converter.schemas.enable=false`), so existing
 * Debezium consumers read walbridge topics and `sink` reads Debezium topics.
 *
 * Topic `<prefix>.<schema>.<table>`; key `{"<pk>": value, ...}` (primary key
 * columns, so one key's events stay in one partition, in order).
 *
 * walbridge adds one field: `source.commit_lsn`, the text LSN of the commit of
 * the transaction that made the change (for snapshot rows: the slot's
 * consistent point). It is the row version in ClickHouse (docs/design.md, "Versions and order").
 * Debezium does not send it; `sink` then falls back to `source.lsn`.
 *
 * Fields as Debezium 3's PostgreSQL connector sends them, checked side by
 * side: `ts_ms`/`ts_us`/`ts_ns` at the top (when the event was built) and in
 * `source` (the commit time); `source.snapshot` `first`, `true`,
 * `first_in_data_collection`, `last_in_data_collection`, `last` (snapshot
 * rows), `false` (streamed); `source.sequence` `["<last commit LSN>","<LSN>"]`
 * (the first element null before the first commit a cdc process read, and on
 * snapshot rows); `txId` on snapshot rows is the reading snapshot's xmin. A
 * primary-key change is a delete (header `__debezium.newkey`) and a create
 * (header `__debezium.oldkey`); `--tombstones` adds a null-value message after
 * each delete, for compacted topics.
 *
 * Column values follow Debezium's default type mapping, losslessly: int8 as a
 * JSON number written from PostgreSQL's own text (never through a JS float),
 * `timestamp` as epoch microseconds (MicroTimestamp), `timestamptz` as an
 * ISO-8601 UTC string, `date` as epoch days, `numeric` as a decimal string
 * (Debezium's decimal.handling.mode=string), `bytea` as base64.
 */
/** `source.version` of walbridge's events. */
export const CONNECTOR_VERSION_TEXT = 'walbridge-0.2.0';

export type Operation = 'c' | 'u' | 'd' | 'r' | 't';

/** A row image: column name → value in the mapping above. */
export type RowImage = Record<string, unknown>;

export interface SourceInfo {
  version: string;
  connector: 'postgresql';
  /** The logical server name: the topic prefix. */
  name: string;
  ts_ms: number;
  ts_us: number;
  /** Nanoseconds: past 2^53, exact only as text or bigint. */
  ts_ns: number | bigint;
  snapshot: 'first' | 'true' | 'first_in_data_collection' | 'last_in_data_collection' | 'last' | 'incremental' | 'false';
  db: string;
  /** Debezium's `[lastCommitLsn, lsn]` as a JSON string. */
  sequence: string | null;
  schema: string;
  table: string;
  txId: number | null;
  /** LSN of the change itself, as a number (Debezium's type). */
  lsn: number | null;
  xmin: number | null;
  /** walbridge: text LSN of the transaction's commit; the row version. */
  commit_lsn?: string;
}

export interface TransactionBlock {
  id: string;
  total_order: number;
  data_collection_order: number;
}

export interface ChangeEnvelope {
  before: RowImage | null;
  after: RowImage | null;
  source: SourceInfo;
  op: Operation;
  ts_ms: number;
  transaction: TransactionBlock | null;
}

/*
 * Encoding (cdc): the envelope written as JSON text from fragments, so values
 * cdc wrote losslessly (column-values.ts) are never parsed again. The pieces
 * a transaction's events share are built once per transaction by the caller.
 */

/** `{"version":…,"connector":"postgresql","name":<prefix>` — the start of every `source`. */
export function sourceHeadText(topicPrefix: string): string {
  return `{"version":"${CONNECTOR_VERSION_TEXT}","connector":"postgresql","name":${JSON.stringify(topicPrefix)}`;
}

/** `"ts_ms":…,"ts_us":…,"ts_ns":…` of a time in microseconds (the nanoseconds as exact digits: past 2^53). */
export function timesText(micros: number): string {
  return `"ts_ms":${Math.floor(micros / 1000)},"ts_us":${micros},"ts_ns":${micros === 0 ? '0' : `${micros}000`}`;
}

/** The rest of `source` after `sequence`: the table, the transaction id, the change's LSN, and walbridge's commit_lsn. */
export function sourceTailText(tableFields: string, txId: number | null, lsn: bigint, commitLsn: bigint): string {
  return `,${tableFields},"txId":${txId ?? 'null'},"lsn":${lsn},"xmin":null,"commit_lsn":"${formatLsn(commitLsn)}"}`;
}

/** `"schema":…,"table":…` of `source`. */
export function tableFieldsText(schema: string, table: string): string {
  return `"schema":${JSON.stringify(schema)},"table":${JSON.stringify(table)}`;
}

/** The whole envelope; `before`, `after`, `source` and `transaction` are JSON text ('null' for none). Top-level times: now. */
export function envelopeText(before: string, after: string, source: string, op: Operation, transaction: string): string {
  return `{"before":${before},"after":${after},"source":${source},"op":"${op}",${timesText(Date.now() * 1000)},"transaction":${transaction}}`;
}

export const TOPIC_SEPARATOR = '.';

export function topicName(prefix: string, schema: string, table: string): string {
  return [prefix, schema, table].join(TOPIC_SEPARATOR);
}

const DEAD_LETTER_SUFFIX = '.dlq';

export function deadLetterTopic(topic: string): string {
  return `${topic}${DEAD_LETTER_SUFFIX}`;
}

/*
 * Parsing (sink): a Kafka message → what the sink must do with it. Reads walbridge topics and
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
import { parseJsonLossless, type InexactPaths } from './json-text.js';
import { formatLsn, parseLsn, type Lsn } from './lsn.js';

/**
 * `version` orders transactions (the commit LSN); `seq` orders the events of
 * one transaction: Debezium's `transaction.total_order` (1, 2, … in the
 * transaction; cdc has always sent it), 0 when the envelope has none
 * (snapshot rows, Debezium without transaction metadata). Together they are
 * the event's place in the stream (docs/design.md, "Versions and order").
 */
export type SinkEvent =
  | { kind: 'upsert'; version: Lsn; seq: bigint; after: RowImage }
  | { kind: 'delete'; version: Lsn; seq: bigint; before: RowImage | null; key: RowImage | null }
  | { kind: 'truncate'; version: Lsn; seq: bigint }
  | { kind: 'tombstone' };

/** An event's place in the stream: its transaction's commit LSN, then its position in the transaction. */
export interface EventPosition {
  version: Lsn;
  seq: bigint;
}

/** Negative when a is before b, 0 when equal, positive when after. */
export function comparePositions(a: EventPosition, b: EventPosition): number {
  if (a.version !== b.version) return a.version < b.version ? -1 : 1;
  return a.seq === b.seq ? 0 : a.seq < b.seq ? -1 : 1;
}

export const START_POSITION: EventPosition = { version: 0n, seq: 0n };

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

/** The event's position in its transaction (`transaction.total_order`), 0 without one. */
function transactionSeq(transaction: unknown): bigint {
  if (!isObject(transaction)) return 0n;
  const order = transaction.total_order;
  if (typeof order === 'bigint' && order >= 0n) return order;
  if (typeof order === 'number' && Number.isSafeInteger(order) && order >= 0) return BigInt(order);
  if (order === undefined || order === null) return 0n;
  throw new PoisonMessage(`transaction.total_order is not a non-negative integer: ${String(order)}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Envelope fields the sink never reads that hold integers past 2^53
 * (nanoseconds): left inexact, see json-text.ts. walbridge's and Debezium's
 * envelopes, and Debezium's inside its {schema, payload} wrapper; never a
 * field of `before`, `after` or the key (a row's own `ts_ns` stays exact).
 */
const ENVELOPE_TIMES: InexactPaths = { ts_ns: true, source: { ts_ns: true } };
const UNREAD_BIG_FIELDS: InexactPaths = { ...ENVELOPE_TIMES, payload: ENVELOPE_TIMES };

function parseJsonMessage(bytes: Buffer, what: string): unknown {
  try {
    return parseJsonLossless(bytes.toString('utf8'), UNREAD_BIG_FIELDS);
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
  const seq = transactionSeq(body.transaction);
  switch (op) {
    case 'c':
    case 'r':
    case 'u': {
      if (!isObject(body.after)) throw new PoisonMessage(`an op '${op}' envelope needs an "after" object`);
      return { kind: 'upsert', version: commitVersion(source), seq, after: body.after };
    }
    case 'd': {
      const before = isObject(body.before) ? body.before : null;
      const keyObject = key && key.length > 0 ? parseJsonMessage(key, 'the message key') : null;
      const keyImage = isObject(keyObject) ? (isObject(keyObject.payload) && 'schema' in keyObject ? keyObject.payload : keyObject) : null;
      if (!before && !keyImage) throw new PoisonMessage('a delete envelope needs a "before" image or a JSON object key');
      return { kind: 'delete', version: commitVersion(source), seq, before, key: keyImage };
    }
    case 't':
      return { kind: 'truncate', version: commitVersion(source), seq };
    default:
      throw new PoisonMessage(`unknown op '${op}' (expected c, r, u, d or t)`);
  }
}

/*
 * The table's shape, travelling with each event (cdc → sink): the Kafka
 * header `walbridge.schema` holds the JSON of a TableSchema, taken from the
 * pgoutput Relation message in force for that change (not from today's
 * catalog), so the sink creates and evolves the ClickHouse table from the
 * schema of the event it holds. Debezium topics have no such header: the sink
 * then writes into the table as it exists.
 */
export const SCHEMA_HEADER = 'walbridge.schema';

export interface ColumnSchema {
  name: string;
  /** PostgreSQL type OID, as pgoutput sent it (an array has its array type's OID, e.g. 1007 for int4[]). */
  typeOid: number;
  /** atttypmod, -1 when none: varchar(n) → n + 4, numeric(p, s) → ((p << 16) | s) + 4, timestamp(p) → p. */
  typmod: number;
  /** The type's name for OIDs outside PostgreSQL's built-in ones (enums, domains, …), when known; else absent. */
  typeName?: string;
  /** Part of the primary key: the Kafka key, and the ClickHouse sorting key. */
  key: boolean;
  /**
   * The value PostgreSQL reads for rows that existed before the column was
   * added with a DEFAULT (pg_attribute.attmissingval), in the event's value
   * mapping; absent when there is none.
   */
  missing?: unknown;
}

export interface TableSchema {
  schema: string;
  table: string;
  /** In the table's column order. */
  columns: ColumnSchema[];
}

/**
 * The header text. `missingJson` holds each column's `missing` already as a
 * JSON fragment in the event mapping (cdc writes values as text, losslessly).
 */
export function encodeTableSchema(schema: string, table: string, columns: (Omit<ColumnSchema, 'missing'> & { missingJson?: string })[]): string {
  const parts = columns.map((c) =>
    `{"name":${JSON.stringify(c.name)},"typeOid":${c.typeOid},"typmod":${c.typmod}` +
    `${c.typeName === undefined ? '' : `,"typeName":${JSON.stringify(c.typeName)}`},"key":${c.key}` +
    `${c.missingJson === undefined ? '' : `,"missing":${c.missingJson}`}}`);
  return `{"schema":${JSON.stringify(schema)},"table":${JSON.stringify(table)},"columns":[${parts.join(',')}]}`;
}

/**
 * The `sent_to_kafka` flag is PostgreSQL-side bookkeeping: cdc sets it in
 * transactions it never streams (its own replication origin), so a copy in
 * ClickHouse would keep the value from before the marking. Events carry it
 * (they are the row as PostgreSQL had it); tables the sink creates leave it
 * out, as `migrate` does.
 */
export const SENT_FLAG_COLUMN = 'sent_to_kafka';

/** The schema as ClickHouse replicates it: without the `sent_to_kafka` bookkeeping column. */
export function replicatedSchema(schema: TableSchema): TableSchema {
  return { ...schema, columns: schema.columns.filter((c) => c.name !== SENT_FLAG_COLUMN || c.key) };
}

/** Parses a `walbridge.schema` header (int8 values stay exact); a malformed one is a PoisonMessage. */
export function parseTableSchema(text: string): TableSchema {
  let parsed: unknown;
  try {
    parsed = parseJsonLossless(text);
  } catch (error) {
    throw new PoisonMessage(`header ${SCHEMA_HEADER} is not JSON: ${(error as Error).message}`);
  }
  if (!isObject(parsed) || typeof parsed.schema !== 'string' || typeof parsed.table !== 'string' || !Array.isArray(parsed.columns)) {
    throw new PoisonMessage(`header ${SCHEMA_HEADER} is not a table schema ({schema, table, columns})`);
  }
  const columns = parsed.columns.map((column: unknown): ColumnSchema => {
    if (!isObject(column) || typeof column.name !== 'string' || typeof column.key !== 'boolean') {
      throw new PoisonMessage(`header ${SCHEMA_HEADER}: a column needs a name and a key flag`);
    }
    const typeOid = Number(column.typeOid);
    const typmod = Number(column.typmod);
    if (!Number.isInteger(typeOid) || !Number.isInteger(typmod)) throw new PoisonMessage(`header ${SCHEMA_HEADER}: column ${column.name} has no integer typeOid/typmod`);
    const result: ColumnSchema = { name: column.name, typeOid, typmod, key: column.key };
    if (typeof column.typeName === 'string') result.typeName = column.typeName;
    if ('missing' in column) result.missing = column.missing;
    return result;
  });
  return { schema: parsed.schema, table: parsed.table, columns };
}
