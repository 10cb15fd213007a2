/**
 * Prometheus metrics (prom-client), served by health.ts on --metrics-port.
 * Conventions: names start `walbridge_`, units in the name (`_seconds`,
 * `_bytes`), counters end `_total`; label values are bounded sets (captured
 * tables, operations, partitions of the captured topics, dependencies),
 * never keys or LSNs. Each process registers only its own families: cdc
 * calls cdcMetrics(), the sink sinkMetrics(), on first use.
 */
import client from 'prom-client';

export const registry = new client.Registry();

/** Node's process metrics (CPU, memory, event loop lag), only in a process that serves /metrics. */
export function collectProcessMetrics(): void {
  client.collectDefaultMetrics({ register: registry, prefix: 'walbridge_' });
}

const SECONDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const COUNTS = [1, 10, 100, 500, 1000, 5000, 10000, 50000];

function once<T>(make: () => T): () => T {
  let made: T | undefined;
  return () => (made ??= make());
}

export const cdcMetrics = once(() => ({
  // Snapshot progress is events_total{op="r"}.
  events: new client.Counter({ name: 'walbridge_cdc_events_total', help: 'Change events read, by captured table and Debezium op (c, u, d, r snapshot read, t truncate)', labelNames: ['table', 'op'], registers: [registry] }),
  sendSeconds: new client.Histogram({ name: 'walbridge_cdc_kafka_send_duration_seconds', help: 'Time from a Kafka send call to its acknowledgement (acks=all)', buckets: SECONDS, registers: [registry] }),
  sendMessages: new client.Histogram({ name: 'walbridge_cdc_kafka_send_batch_messages', help: 'Messages per Kafka send call', buckets: COUNTS, registers: [registry] }),
  commitToAckSeconds: new client.Histogram({ name: 'walbridge_cdc_commit_to_kafka_ack_seconds', help: 'Freshness: from a transaction\'s commit in PostgreSQL to Kafka having acknowledged all of it (observed when its LSN is confirmed, right after the ack and the sent_to_kafka mark)', buckets: SECONDS, registers: [registry] }),
  confirmedLsn: new client.Gauge({ name: 'walbridge_cdc_confirmed_lsn', help: 'The LSN cdc last confirmed to the slot, as a number (exact up to 2^53)', registers: [registry] }),
  slotLagBytes: new client.Gauge({ name: 'walbridge_cdc_slot_lag_bytes', help: 'WAL bytes between the server\'s current position and the slot\'s confirmed LSN (what the slot retains for cdc)', registers: [registry] }),
  slotWalStatus: new client.Gauge({ name: 'walbridge_cdc_slot_wal_status', help: 'pg_replication_slots.wal_status: 1 for the current one (reserved, extended, unreserved, lost)', labelNames: ['status'], registers: [registry] }),
}));

/** cdc's --heartbeat-interval (cdc/heartbeat.ts): registered only when heartbeats are on. */
export const heartbeatMetrics = once(() => ({
  written: new client.Counter({ name: 'walbridge_cdc_heartbeats_written_total', help: 'Heartbeat messages written to PostgreSQL (pg_logical_emit_message)', registers: [registry] }),
  confirmed: new client.Counter({ name: 'walbridge_cdc_heartbeats_total', help: 'Heartbeats read back through the slot and confirmed (their commit is at or below the confirmed LSN)', registers: [registry] }),
  lastConfirmed: new client.Gauge({ name: 'walbridge_cdc_heartbeat_timestamp_seconds', help: 'Commit time (Unix seconds) of the last heartbeat confirmed; the start time until the first one', registers: [registry] }),
}));

export const sinkMetrics = once(() => ({
  rows: new client.Counter({ name: 'walbridge_sink_rows_written_total', help: 'Rows written to ClickHouse, by table and kind (upsert, delete)', labelNames: ['table', 'kind'], registers: [registry] }),
  insertSeconds: new client.Histogram({ name: 'walbridge_sink_clickhouse_insert_duration_seconds', help: 'Time of one ClickHouse INSERT (retries not included)', buckets: SECONDS, registers: [registry] }),
  batchRows: new client.Histogram({ name: 'walbridge_sink_batch_rows', help: 'Rows per ClickHouse insert', buckets: COUNTS, registers: [registry] }),
  commitToInsertSeconds: new client.Histogram({ name: 'walbridge_sink_commit_to_insert_seconds', help: 'Freshness: from a change\'s commit in PostgreSQL to the ClickHouse insert holding it returning (newest change of each batch)', buckets: SECONDS, registers: [registry] }),
  deadLetters: new client.Counter({ name: 'walbridge_sink_dead_letters_total', help: 'Messages sent to <topic>.dlq', registers: [registry] }),
  consumerLag: new client.Gauge({ name: 'walbridge_sink_consumer_lag_messages', help: 'Messages between the group\'s committed offset and the partition\'s end', labelNames: ['topic', 'partition'], registers: [registry] }),
}));

/** Waits on a dependency (core/retry.ts), by what is waited for: `clickhouse`. */
export const retryMetrics = once(() => ({
  /** The dependencies waited for right now (for /readyz). */
  waitingNow: new Set<string>(),
  retries: new client.Counter({ name: 'walbridge_retries_total', help: 'Failed attempts retried, by the dependency waited for', labelNames: ['dependency'], registers: [registry] }),
  waiting: new client.Gauge({ name: 'walbridge_waiting', help: '1 while an operation waits for this dependency to come back', labelNames: ['dependency'], registers: [registry] }),
}));

/** A dependency's retry series start at 0, so dashboards and alerts see them before the first wait. */
export function declareDependency(dependency: string): void {
  retryMetrics().retries.inc({ dependency }, 0);
  retryMetrics().waiting.set({ dependency }, 0);
}

/**
 * cdc's freshness: the listener reports each commit (end LSN, commit time),
 * the checkpointer each confirmed LSN; every commit at or below it is then
 * acknowledged by Kafka. Commits wait in LSN order, so the queue holds only
 * transactions not yet delivered.
 */
export function commitFreshness(now = Date.now): { committed(endLsn: bigint, commitTimeUs: number): void; confirmed(lsn: bigint): void } {
  const pending: { endLsn: bigint; commitMs: number }[] = [];
  const histogram = cdcMetrics().commitToAckSeconds;
  return {
    committed: (endLsn, commitTimeUs) => {
      pending.push({ endLsn, commitMs: commitTimeUs / 1000 });
    },
    confirmed: (lsn) => {
      let done = 0;
      while (done < pending.length && pending[done]!.endLsn <= lsn) histogram.observe(Math.max(0, now() - pending[done++]!.commitMs) / 1000);
      if (done > 0) pending.splice(0, done);
    },
  };
}

interface WrittenRow {
  version: bigint;
  deleted: boolean;
  table: string;
  source: { value: Buffer | null };
}

/**
 * One written batch: rows by table and kind, the batch size, and freshness
 * from the commit time (`source.ts_ms`, walbridge's and Debezium's alike) of
 * its newest row, read from that one message's text only.
 */
export function recordSinkBatch(rows: Iterable<WrittenRow>, deadLetters: number, now = Date.now()): void {
  const m = sinkMetrics();
  let newest: WrittenRow | undefined;
  let count = 0;
  for (const row of rows) {
    count += 1;
    m.rows.inc({ table: row.table, kind: row.deleted ? 'delete' : 'upsert' });
    if (!newest || row.version > newest.version) newest = row;
  }
  if (count > 0) m.batchRows.observe(count);
  if (deadLetters > 0) m.deadLetters.inc(deadLetters);
  const commitMs = /"source":\{.*?"ts_ms":(\d+)/.exec(newest?.source.value?.toString('utf8') ?? '')?.[1];
  if (commitMs !== undefined) m.commitToInsertSeconds.observe(Math.max(0, now - Number(commitMs)) / 1000);
}

/** An LSN (bigint) as a gauge value: a double, exact up to 2^53 bytes of WAL (8 PiB). */
export function lsnValue(lsn: bigint): number {
  return Number(lsn);
}
