/**
 * The event format on the Kafka topic: Debezium's PostgreSQL connector envelope
 * with schemas disabled (`value.converter.schemas.enable=false`), so existing
 * Debezium consumers read walbridge topics and `sink` reads Debezium topics.
 *
 * Topic `<prefix>.<schema>.<table>`; key `{"<pk>": value, ...}` (primary key
 * columns, so one key's events stay in one partition, in order).
 *
 * walbridge adds one field: `source.commit_lsn`, the text LSN of the commit of
 * the transaction that made the change (for snapshot rows: the slot's
 * consistent point). It is the row version in ClickHouse (design.md §2).
 * Debezium does not send it; `sink` then falls back to `source.lsn`.
 *
 * Column values follow Debezium's default type mapping, losslessly: int8 as a
 * JSON number written from PostgreSQL's own text (never through a JS float),
 * `timestamp` as epoch microseconds (MicroTimestamp), `timestamptz` as an
 * ISO-8601 UTC string, `date` as epoch days, `numeric` as a decimal string
 * (Debezium's decimal.handling.mode=string), `bytea` as base64.
 */
export type Operation = 'c' | 'u' | 'd' | 'r' | 't';

/** A row image: column name → value in the mapping above. */
export type RowImage = Record<string, unknown>;

export interface SourceInfo {
  version: string;
  connector: 'postgresql';
  /** The logical server name: the topic prefix. */
  name: string;
  ts_ms: number;
  /** 'true' for snapshot rows except the last ('last'), 'false' when streaming. */
  snapshot: 'true' | 'last' | 'false';
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

export const TOPIC_SEPARATOR = '.';

export function topicName(prefix: string, schema: string, table: string): string {
  return [prefix, schema, table].join(TOPIC_SEPARATOR);
}

export function deadLetterTopic(topic: string): string {
  return `${topic}.dlq`;
}
