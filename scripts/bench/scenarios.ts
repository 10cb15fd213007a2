/**
 * The benchmark's scenarios. Each runs in its own PostgreSQL/ClickHouse
 * database and topic prefix (test/support/services.ts), against the real
 * services, and measures a limit of the same machine in the same run next to
 * walbridge's figure.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { cliEnv } from '../../test/support/cli.js';
import { isolatedServices, type IsolatedServices, type ServiceUrls } from '../../test/support/services.js';
import { openClickHouse } from '../../src/sink/clickhouse/client.js';
import { runToEnd, startCli, startProcess, type Finished } from './processes.js';

const exec = promisify(execFile);

export interface Workspace extends IsolatedServices {
  slot: string;
  env: NodeJS.ProcessEnv;
  sql<T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<T[]>;
  clickhouseScalar(query: string): Promise<number>;
}

export async function workspace(label: string, base: ServiceUrls): Promise<Workspace> {
  const services = await isolatedServices(`bench_${label}`, base);
  const env = cliEnv(services);
  await runToEnd(startCli('migrate', [], env), 'migrate');
  return {
    ...services,
    slot: services.name,
    env,
    sql: async (text, params = []) => {
      const client = new pg.Client({ connectionString: services.databaseUrl });
      await client.connect();
      try {
        return (await client.query(text, params)).rows;
      } finally {
        await client.end();
      }
    },
    clickhouseScalar: async (query) => {
      const { client } = openClickHouse(services.clickhouseUrl);
      try {
        const rows = await (await client.query({ query, format: 'JSONEachRow' })).json<{ v: string | number }>();
        return Number(rows[0]?.v ?? 0);
      } finally {
        await client.close();
      }
    },
  };
}

function cdcArgs(ws: Workspace, extra: string[]): string[] {
  return ['start', '--slot', ws.slot, '--topic-prefix', ws.topicPrefix, ...extra];
}

function sinkArgs(ws: Workspace, extra: string[]): string[] {
  return ['start', '--topic-prefix', ws.topicPrefix, '--group', `${ws.name}-sink`, ...extra];
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until ClickHouse holds `rows` rows; returns when that was first seen. */
async function waitForRows(ws: Workspace, rows: number, timeoutMs: number, intervalMs = 200): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if ((await ws.clickhouseScalar('SELECT count() AS v FROM user_logins')) >= rows) return performance.now();
    if (performance.now() > deadline) throw new Error(`ClickHouse did not reach ${rows} rows within ${timeoutMs / 1000}s`);
    await sleep(intervalMs);
  }
}

/**
 * N rows in transactions of `perTransaction` rows, written server-side, into
 * user_logins; or into `wide.table`, each row with a `payload` text of
 * `wide.payloadBytes` (md5 hex: incompressible).
 */
async function writeBacklog(ws: Workspace, rows: number, perTransaction: number, wide?: { table: string; payloadBytes: number }): Promise<void> {
  const client = new pg.Client({ connectionString: ws.databaseUrl });
  await client.connect();
  const row = `i * ${perTransaction} + g`;
  const [table, payloadColumn, payload] = wide
    ? [wide.table, ', payload', `, (SELECT string_agg(md5((${row})::text || ':' || k), '') FROM generate_series(1, ${wide.payloadBytes / 32}) AS k)`]
    : ['user_logins', '', ''];
  try {
    // Commit durability is not what is measured; the WAL written is the same.
    await client.query('SET synchronous_commit = off');
    await client.query(`DO $$
      BEGIN
        FOR i IN 1..${Math.ceil(rows / perTransaction)} LOOP
          INSERT INTO ${table} (username, event_type, event_time${payloadColumn})
          SELECT 'user_' || (${row}), 'login', clock_timestamp()${payload} FROM generate_series(1, ${perTransaction}) AS g;
          COMMIT;
        END LOOP;
      END $$`);
  } finally {
    await client.end();
  }
}

async function publicationOf(ws: Workspace): Promise<string> {
  const rows = await ws.sql<{ pubname: string }>(`SELECT pubname FROM pg_publication_tables WHERE schemaname = 'public' AND tablename = 'user_logins'`);
  const name = rows[0]?.pubname;
  if (!name) throw new Error('cdc created no publication for user_logins');
  return name;
}

export interface CatchUpResult {
  rows: number;
  seconds: number;
  rowsPerSecond: number;
  limitRowsPerSecond: number;
  cdcPeakRssMb: number;
  sinkPeakRssMb: number;
  /** User + system CPU of each whole process run (start-up included), and per row carried. */
  cdcCpuSeconds: number;
  sinkCpuSeconds: number;
  cdcCpuUsPerRow: number;
  sinkCpuUsPerRow: number;
}

/** The CPU and memory figures of a cdc and a sink run that carried `rows` rows. */
function processFigures(rows: number, cdc: Finished, sink: Finished): Pick<CatchUpResult,
  'cdcPeakRssMb' | 'sinkPeakRssMb' | 'cdcCpuSeconds' | 'sinkCpuSeconds' | 'cdcCpuUsPerRow' | 'sinkCpuUsPerRow'> {
  return {
    cdcPeakRssMb: cdc.peakRssMb,
    sinkPeakRssMb: sink.peakRssMb,
    cdcCpuSeconds: cdc.cpuSeconds,
    sinkCpuSeconds: sink.cpuSeconds,
    cdcCpuUsPerRow: (cdc.cpuSeconds * 1e6) / rows,
    sinkCpuUsPerRow: (sink.cpuSeconds * 1e6) / rows,
  };
}

/**
 * A backlog written while cdc and sink are stopped, then both started: rows/s
 * until ClickHouse has them all. Limit: pg_recvlogical decoding the same
 * backlog with pgoutput into /dev/null.
 */
export async function catchUp(base: ServiceUrls, rows: number, markSent: boolean): Promise<CatchUpResult> {
  const ws = await workspace(markSent ? 'catchup' : 'catchup_nomark', base);
  try {
    const markFlag = markSent ? [] : ['--no-mark-sent'];
    await runToEnd(startCli('cdc', cdcArgs(ws, ['--once', '--snapshot', 'none', ...markFlag]), ws.env), 'cdc (slot creation)');
    const limitSlot = `${ws.slot}_limit`;
    await ws.sql(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [limitSlot]);
    await writeBacklog(ws, rows, 10);
    const endLsn = (await ws.sql<{ lsn: string }>('SELECT pg_current_wal_lsn() AS lsn'))[0]?.lsn ?? '0/0';

    const limit = await runToEnd(startProcess('pg_recvlogical', [
      '-d', ws.databaseUrl, '--slot', limitSlot, '--start', '--endpos', endLsn, '--no-loop',
      '-o', 'proto_version=1', '-o', `publication_names=${await publicationOf(ws)}`, '-f', '/dev/null',
    ], {}), 'pg_recvlogical');
    await ws.sql('SELECT pg_drop_replication_slot($1)', [limitSlot]);

    const started = performance.now();
    const sink = startCli('sink', sinkArgs(ws, []), ws.env);
    const cdc = startCli('cdc', cdcArgs(ws, ['--once', ...markFlag]), ws.env);
    const done = await waitForRows(ws, rows, 30 * 60_000);
    const cdcResult = await runToEnd(cdc, 'cdc --once (catch-up)');
    const sinkResult = await sink.stop();
    const seconds = (done - started) / 1000;
    return { rows, seconds, rowsPerSecond: rows / seconds, limitRowsPerSecond: rows / limit.seconds, ...processFigures(rows, cdcResult, sinkResult) };
  } finally {
    await ws.cleanup();
  }
}

export interface ManyTablesResult extends CatchUpResult {
  tables: number;
}

/**
 * The catch-up scenario with the backlog spread over `tables` tables (copies
 * of user_logins, written round-robin, transactions of 10 rows each in one
 * table), one slot, one cdc and one sink for all of them (sink creating its
 * ClickHouse tables from the schema headers). Limit: pg_recvlogical decoding
 * the same backlog.
 */
export async function catchUpManyTables(base: ServiceUrls, rows: number, tables: number): Promise<ManyTablesResult> {
  const ws = await workspace('many_tables', base);
  try {
    const names = Array.from({ length: tables }, (_, i) => `bench_t${String(i + 1).padStart(2, '0')}`);
    for (const name of names) await ws.sql(`CREATE TABLE ${name} (LIKE user_logins INCLUDING ALL)`);
    const selection = ['--table', 'public.bench_t*'];
    await runToEnd(startCli('cdc', cdcArgs(ws, ['--once', '--snapshot', 'none', ...selection]), ws.env), 'cdc (slot creation)');
    const limitSlot = `${ws.slot}_limit`;
    await ws.sql(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [limitSlot]);
    const perTable = Math.ceil(rows / tables);
    const client = new pg.Client({ connectionString: ws.databaseUrl });
    await client.connect();
    try {
      await client.query('SET synchronous_commit = off');
      await client.query(`DO $$
        DECLARE t text;
        BEGIN
          FOR i IN 1..${Math.ceil(perTable / 10)} LOOP
            FOREACH t IN ARRAY ARRAY[${names.map((n) => `'${n}'`).join(',')}] LOOP
              EXECUTE format('INSERT INTO %I (username, event_type, event_time) SELECT ''u'' || g, ''login'', clock_timestamp() FROM generate_series(1, 10) AS g', t);
              COMMIT;
            END LOOP;
          END LOOP;
        END $$`);
    } finally {
      await client.end();
    }
    const total = Math.ceil(perTable / 10) * 10 * tables;
    const endLsn = (await ws.sql<{ lsn: string }>('SELECT pg_current_wal_lsn() AS lsn'))[0]?.lsn ?? '0/0';
    const publication = (await ws.sql<{ pubname: string }>(`SELECT pubname FROM pg_publication WHERE pubname LIKE 'walbridge_%'`))[0]?.pubname ?? '';
    const limit = await runToEnd(startProcess('pg_recvlogical', [
      '-d', ws.databaseUrl, '--slot', limitSlot, '--start', '--endpos', endLsn, '--no-loop',
      '-o', 'proto_version=1', '-o', `publication_names=${publication}`, '-f', '/dev/null',
    ], {}), 'pg_recvlogical');
    await ws.sql('SELECT pg_drop_replication_slot($1)', [limitSlot]);

    const started = performance.now();
    const sink = startCli('sink', sinkArgs(ws, selection), ws.env);
    const cdc = startCli('cdc', cdcArgs(ws, ['--once', ...selection]), ws.env);
    const deadline = performance.now() + 30 * 60_000;
    let done = 0;
    for (;;) {
      // Tables appear as the sink creates them; a poll that times out on a busy server is simply tried again.
      const count = await ws.clickhouseScalar(`SELECT count() AS v FROM merge(currentDatabase(), '^bench_t')`).catch(() => 0);
      if (count >= total) {
        done = performance.now();
        break;
      }
      if (performance.now() > deadline) throw new Error(`ClickHouse did not reach ${total} rows in ${tables} tables within 30 min`);
      await sleep(500);
    }
    const cdcResult = await runToEnd(cdc, 'cdc --once (catch-up, many tables)');
    const sinkResult = await sink.stop();
    const seconds = (done - started) / 1000;
    return {
      tables, rows: total, seconds, rowsPerSecond: total / seconds, limitRowsPerSecond: total / limit.seconds,
      ...processFigures(total, cdcResult, sinkResult),
    };
  } finally {
    await ws.cleanup();
  }
}

export interface LatencyResult {
  targetRowsPerSecond: number;
  achievedRowsPerSecond: number;
  seconds: number;
  samples: number;
  pollIntervalMs: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  /** Sorted commit-to-visible latencies in ms, one per write transaction. */
  latenciesMs: number[];
  cdcPeakRssMb: number;
  sinkPeakRssMb: number;
  /** CPU seconds of each whole process run (3 s idle start included). */
  cdcCpuSeconds: number;
  sinkCpuSeconds: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

/**
 * A fixed write rate (transactions of rate/100 rows every 10 ms) with
 * cdc and sink running; latency per transaction from its COMMIT returning to
 * its last id being visible in ClickHouse, polled every `pollIntervalMs`.
 */
export async function steadyLatency(base: ServiceUrls, rowsPerSecond: number, seconds: number): Promise<LatencyResult> {
  const ws = await workspace('steady', base);
  const pollIntervalMs = 20;
  try {
    await runToEnd(startCli('cdc', cdcArgs(ws, ['--once', '--snapshot', 'none']), ws.env), 'cdc (slot creation)');
    const cdc = startCli('cdc', cdcArgs(ws, []), ws.env);
    const sink = startCli('sink', sinkArgs(ws, []), ws.env);
    await sleep(3000); // both connected and idle

    const writer = new pg.Client({ connectionString: ws.databaseUrl });
    await writer.connect();
    const { client: clickhouse } = openClickHouse(ws.clickhouseUrl);
    const commits: Array<{ lastId: number; committedAt: number }> = [];
    let visibleUpTo = 0;
    const visibleAt: number[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const rows = await (await clickhouse.query({ query: 'SELECT max(id) AS v FROM user_logins', format: 'JSONEachRow' })).json<{ v: number }>();
        const now = performance.now();
        const max = Number(rows[0]?.v ?? 0);
        while (visibleAt.length < commits.length && (commits[visibleAt.length]?.lastId ?? Infinity) <= max) visibleAt.push(now);
        visibleUpTo = max;
        await sleep(pollIntervalMs);
      }
    })();

    const perTransaction = Math.max(1, Math.round(rowsPerSecond / 100));
    const started = performance.now();
    for (let tick = 0; performance.now() - started < seconds * 1000; tick += 1) {
      const result = await writer.query<{ id: number }>(
        `INSERT INTO user_logins (username, event_type, event_time)
         SELECT 'steady_' || g, 'login', clock_timestamp() FROM generate_series(1, $1) AS g RETURNING id`, [perTransaction]);
      commits.push({ lastId: Math.max(...result.rows.map((r) => r.id)), committedAt: performance.now() });
      const nextAt = started + (tick + 1) * 10;
      const wait = nextAt - performance.now();
      if (wait > 0) await sleep(wait);
    }
    const writeSeconds = (performance.now() - started) / 1000;
    const lastId = commits.at(-1)?.lastId ?? 0;
    const deadline = performance.now() + 60_000;
    while (visibleUpTo < lastId && performance.now() < deadline) await sleep(50);
    polling = false;
    await poller;
    await writer.end();
    await clickhouse.close();
    const cdcResult = await cdc.stop();
    const sinkResult = await sink.stop();
    if (visibleAt.length < commits.length) throw new Error(`only ${visibleAt.length} of ${commits.length} transactions became visible`);

    const latenciesMs = commits.map((c, i) => (visibleAt[i] ?? Number.NaN) - c.committedAt).sort((a, b) => a - b);
    return {
      targetRowsPerSecond: rowsPerSecond,
      achievedRowsPerSecond: (commits.length * perTransaction) / writeSeconds,
      seconds: writeSeconds,
      samples: latenciesMs.length,
      pollIntervalMs,
      p50: percentile(latenciesMs, 50),
      p95: percentile(latenciesMs, 95),
      p99: percentile(latenciesMs, 99),
      max: latenciesMs.at(-1) ?? Number.NaN,
      latenciesMs,
      cdcPeakRssMb: cdcResult.peakRssMb,
      sinkPeakRssMb: sinkResult.peakRssMb,
      cdcCpuSeconds: cdcResult.cpuSeconds,
      sinkCpuSeconds: sinkResult.cpuSeconds,
    };
  } finally {
    await ws.cleanup();
  }
}

export interface SnapshotResult {
  rows: number;
  kafkaRowsPerSecond: number;
  clickhouseRowsPerSecond: number;
  limitRowsPerSecond: number;
  cdcPeakRssMb: number;
  sinkPeakRssMb: number;
  cdcCpuSeconds: number;
  sinkCpuSeconds: number;
}

/**
 * N unsent rows when the slot is created: rows/s of the snapshot into Kafka
 * (cdc --once) and from Kafka into ClickHouse (sink --once). Limit: psql's
 * COPY of the same rows to /dev/null.
 */
export async function snapshot(base: ServiceUrls, rows: number): Promise<SnapshotResult> {
  const ws = await workspace('snapshot', base);
  try {
    await ws.sql(`INSERT INTO user_logins (username, event_type, event_time)
                  SELECT 'snap_' || g, 'login', clock_timestamp() FROM generate_series(1, ${rows}) AS g`);
    await ws.sql('VACUUM ANALYZE user_logins');
    const copyStarted = performance.now();
    await exec('psql', [ws.databaseUrl, '-Xqc', `\\copy (SELECT * FROM user_logins WHERE sent_to_kafka = false) TO '/dev/null'`]);
    const limitSeconds = (performance.now() - copyStarted) / 1000;

    const cdc = await runToEnd(startCli('cdc', cdcArgs(ws, ['--once', '--snapshot', 'unsent']), ws.env), 'cdc --once (snapshot)');
    const sink = await runToEnd(startCli('sink', sinkArgs(ws, ['--once']), ws.env), 'sink --once (snapshot)');
    const landed = await ws.clickhouseScalar('SELECT count() AS v FROM user_logins');
    if (landed < rows) throw new Error(`snapshot: ClickHouse has ${landed} of ${rows} rows`);
    return {
      rows,
      kafkaRowsPerSecond: rows / cdc.seconds,
      clickhouseRowsPerSecond: rows / sink.seconds,
      limitRowsPerSecond: rows / limitSeconds,
      cdcPeakRssMb: cdc.peakRssMb,
      sinkPeakRssMb: sink.peakRssMb,
      cdcCpuSeconds: cdc.cpuSeconds,
      sinkCpuSeconds: sink.cpuSeconds,
    };
  } finally {
    await ws.cleanup();
  }
}

/** The wide-rows scenario's text column: this many bytes per row, incompressible (hex of md5s). */
export const WIDE_PAYLOAD_BYTES = 2048;

export interface WideRowsResult extends CatchUpResult {
  payloadBytes: number;
  /** MB/s of the payload column end to end (PostgreSQL commit → ClickHouse). */
  megabytesPerSecond: number;
  /** The same payload through the clients alone, in the same run (raw-clients.ts). */
  rawKafkaMegabytesPerSecond: number;
  rawClickHouseMegabytesPerSecond: number;
}

/**
 * Catch-up of a backlog of wide rows (user_logins plus a 2 KB text column),
 * one table: payload MB/s end to end, next to the platformatic producer and a
 * ClickHouse insert carrying the same payload alone (`raw`, measured here so
 * the three share the machine's state).
 */
export async function wideRows(base: ServiceUrls, rows: number,
  raw: { kafka(rows: number, payloadBytes: number): Promise<number>; clickhouse(ws: Workspace, table: string, rows: number, payloadBytes: number): Promise<number> }): Promise<WideRowsResult> {
  const ws = await workspace('wide', base);
  try {
    await ws.sql('CREATE TABLE bench_wide (LIKE user_logins INCLUDING ALL)');
    await ws.sql('ALTER TABLE bench_wide ADD COLUMN payload text');
    const selection = ['--table', 'public.bench_wide'];
    await runToEnd(startCli('cdc', cdcArgs(ws, ['--once', '--snapshot', 'none', ...selection]), ws.env), 'cdc (slot creation)');
    await writeBacklog(ws, rows, 10, { table: 'bench_wide', payloadBytes: WIDE_PAYLOAD_BYTES });
    const total = Math.ceil(rows / 10) * 10;
    const started = performance.now();
    const sink = startCli('sink', sinkArgs(ws, selection), ws.env);
    const cdc = startCli('cdc', cdcArgs(ws, ['--once', ...selection]), ws.env);
    const deadline = performance.now() + 30 * 60_000;
    let done = 0;
    for (;;) {
      // The table appears when the sink creates it.
      if (await ws.clickhouseScalar('SELECT count() AS v FROM bench_wide').catch(() => 0) >= total) {
        done = performance.now();
        break;
      }
      if (performance.now() > deadline) throw new Error(`ClickHouse did not reach ${total} wide rows within 30 min`);
      await sleep(200);
    }
    const cdcResult = await runToEnd(cdc, 'cdc --once (catch-up, wide rows)');
    const sinkResult = await sink.stop();
    const seconds = (done - started) / 1000;
    const megabytes = (total * WIDE_PAYLOAD_BYTES) / 1e6;
    return {
      rows: total, seconds, rowsPerSecond: total / seconds, limitRowsPerSecond: Number.NaN, ...processFigures(total, cdcResult, sinkResult),
      payloadBytes: WIDE_PAYLOAD_BYTES,
      megabytesPerSecond: megabytes / seconds,
      rawKafkaMegabytesPerSecond: ((await raw.kafka(total, WIDE_PAYLOAD_BYTES)) * WIDE_PAYLOAD_BYTES) / 1e6,
      rawClickHouseMegabytesPerSecond: ((await raw.clickhouse(ws, 'bench_wide', total, WIDE_PAYLOAD_BYTES)) * WIDE_PAYLOAD_BYTES) / 1e6,
    };
  } finally {
    await ws.cleanup();
  }
}
