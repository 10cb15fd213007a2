/**
 * `npm run bench [-- --quick]`: throughput, latency, snapshot speed and memory
 * of walbridge on the stack scripts/bench.sh started, each next to a limit of
 * this machine measured in the same run. Writes bench/results/<timestamp>.json
 * and .svg, prints a markdown table. Targets are reported, never asserted.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import pg from 'pg';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { resolveConnections } from '../../src/config/connections.js';
import { openClickHouse } from '../../src/sink/clickhouse/client.js';
import type { ServiceUrls } from '../../test/support/services.js';
import { describeMachine } from './machine.js';
import { markdownTable, svgChart, type Figure } from './report.js';
import { rawClickHouseInsert, rawClickHouseWideInsert, rawKafkaProducer } from './raw-clients.js';
import { catchUp, catchUpManyTables, snapshot, steadyLatency, wideRows, type CatchUpResult, type LatencyResult } from './scenarios.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

const argv = yargs(hideBin(process.argv))
  .scriptName('bench')
  .option('quick', { type: 'boolean', default: false, describe: 'CI-sized smoke run (50,000 rows, a short steady curve; about 90 s on a quiet machine)' })
  .option('rows', { type: 'number', describe: 'backlog and snapshot size (default 1,000,000; quick 50,000)' })
  .option('rates', { type: 'string', describe: 'steady write rates, rows/s, comma-separated (default 2000,5000,10000,20000; quick 2000,10000)' })
  .option('seconds', { type: 'number', describe: 'length of each steady run (default 20; quick 6)' })
  .option('repeats', { type: 'number', describe: 'steady runs per rate, interleaved (default 3; quick 1)' })
  .option('wide-rows', { type: 'number', describe: 'rows of the wide-rows scenario (default 100,000; quick 5,000)' })
  .strict()
  .help()
  .parseSync();

const rows = argv.rows ?? (argv.quick ? 50_000 : 1_000_000);
/** The many-tables scenario's table count (issue 13 measures users' shapes: 20 tables, one slot). */
const MANY_TABLES = 20;
const WIDE_LABEL = '2 KB text column';
const steadySeconds = argv.seconds ?? (argv.quick ? 6 : 20);
const steadyRates = (argv.rates ?? (argv.quick ? '2000,10000' : '2000,5000,10000,20000')).split(',').map(Number);
const steadyRepeats = argv.repeats ?? (argv.quick ? 1 : 3);
const wideRowCount = argv.wideRows ?? (argv.quick ? 5_000 : 100_000);
/** Steady-load targets (issue 13): the highest rate held with p99 ≤ this, and the latency the curve's crossing is reported for. */
const STEADY_P99_TARGET_MS = 250;
const CROSSING_MS = 1_000;
const connections = resolveConnections({});
const base: ServiceUrls = {
  databaseUrl: connections.databaseUrl,
  kafkaBrokers: connections.kafkaBrokers.join(','),
  clickhouseUrl: connections.clickhouseUrl,
};

function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

async function machineInfo(): ReturnType<typeof describeMachine> {
  const postgres = new pg.Client({ connectionString: base.databaseUrl });
  await postgres.connect();
  const { client } = openClickHouse(base.clickhouseUrl);
  try {
    return await describeMachine(postgres, client, ROOT);
  } finally {
    await postgres.end();
    await client.close();
  }
}

const started = new Date();
const machine = await machineInfo();
log(`machine: ${machine.cores} cores, ${machine.memoryGb} GB; ${machine.postgres}; Kafka ${machine.kafka}; ClickHouse ${machine.clickhouse}; Node ${machine.node}`);
log(`profile: ${argv.quick ? 'quick' : 'full'}, ${rows.toLocaleString('en-US')} rows, steady ${steadyRates.join('/')} rows/s × ${steadyRepeats} for ${steadySeconds}s each, ${wideRowCount.toLocaleString('en-US')} wide rows`);

log('raw Kafka producer rates (kafkajs, @platformatic/kafka)');
const kafkaRaw = { kafkajs: await rawKafkaProducer(base, rows, 'kafkajs'), platformatic: await rawKafkaProducer(base, rows, 'platformatic') };
log('raw ClickHouse insert rate');
const clickhouseRaw = await rawClickHouseInsert(base, rows);
log('catch-up, marking sent_to_kafka');
const catchUpMarked = await catchUp(base, rows, true);
log('catch-up, --no-mark-sent');
const catchUpUnmarked = await catchUp(base, rows, false);
log(`catch-up, ${MANY_TABLES} tables through one slot`);
const catchUpMany = await catchUpManyTables(base, rows, MANY_TABLES);
log(`wide rows (${WIDE_LABEL})`);
const wide = await wideRows(base, wideRowCount, {
  kafka: (count, payloadBytes) => rawKafkaProducer(base, count, 'platformatic', payloadBytes),
  clickhouse: rawClickHouseWideInsert,
});
// Interleaved (every rate once, then again) so a disturbance of the machine does not land on one rate only.
const steadyRuns: LatencyResult[] = [];
for (let repeat = 1; repeat <= steadyRepeats; repeat += 1) {
  for (const rate of steadyRates) {
    log(`steady latency at ${rate} rows/s (run ${repeat} of ${steadyRepeats})`);
    const run = await steadyLatency(base, rate, steadySeconds);
    log(`  p50 ${run.p50.toFixed(0)} ms, p99 ${run.p99.toFixed(0)} ms, max ${run.max.toFixed(0)} ms, achieved ${run.achievedRowsPerSecond.toFixed(0)} rows/s`);
    steadyRuns.push(run);
  }
}
log('snapshot');
const snap = await snapshot(base, rows);

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : ((sorted[Math.floor((sorted.length - 1) / 2)] ?? 0) + (sorted[Math.ceil((sorted.length - 1) / 2)] ?? 0)) / 2;
};
const spread = (values: number[]): string => values.map((v) => Math.round(v).toLocaleString('en-US')).join(' / ');
const curve = steadyRates.map((rate) => {
  const runs = steadyRuns.filter((run) => run.targetRowsPerSecond === rate);
  // Held: every run reached the rate (the writer kept up) with p99 within the target.
  const held = runs.every((run) => run.achievedRowsPerSecond >= 0.95 * rate && run.p99 <= STEADY_P99_TARGET_MS);
  return { rate, runs, p50: median(runs.map((r) => r.p50)), p99: median(runs.map((r) => r.p99)), held };
});
const heldRate = Math.max(0, ...curve.filter((point) => point.held).map((point) => point.rate));
/** Where the median p99 first reaches CROSSING_MS, linear between the measured rates; NaN when it never does. */
const crossing = ((): number => {
  for (let i = 0; i < curve.length; i += 1) {
    const point = curve[i]!;
    if (point.p99 < CROSSING_MS) continue;
    const below = curve[i - 1];
    if (!below) return point.rate;
    return below.rate + ((CROSSING_MS - below.p99) / (point.p99 - below.p99)) * (point.rate - below.rate);
  }
  return Number.NaN;
})();

const markingCost = 1 - catchUpMarked.rowsPerSecond / catchUpUnmarked.rowsPerSecond;
const peakCdc = Math.max(catchUpMarked.cdcPeakRssMb, catchUpMany.cdcPeakRssMb, wide.cdcPeakRssMb, snap.cdcPeakRssMb, ...steadyRuns.map((r) => r.cdcPeakRssMb));
const peakSink = Math.max(catchUpMarked.sinkPeakRssMb, catchUpMany.sinkPeakRssMb, wide.sinkPeakRssMb, snap.sinkPeakRssMb, ...steadyRuns.map((r) => r.sinkPeakRssMb));
const cpuFigures = (scenario: string, result: CatchUpResult): Figure[] => [
  { scenario, metric: 'cdc CPU per row (user+sys, whole run)', value: result.cdcCpuUsPerRow, unit: 'µs/row' },
  { scenario, metric: 'sink CPU per row (user+sys, whole run)', value: result.sinkCpuUsPerRow, unit: 'µs/row' },
];
const slowerRawMbps = Math.min(wide.rawKafkaMegabytesPerSecond, wide.rawClickHouseMegabytesPerSecond);
const figures: Figure[] = [
  { scenario: 'catch-up', metric: 'end to end, rows/s', value: catchUpMarked.rowsPerSecond, unit: 'rows/s',
    limit: { name: 'pg_recvlogical pgoutput decode', value: catchUpMarked.limitRowsPerSecond },
    target: { text: '≥ 0.5 × pg_recvlogical', met: catchUpMarked.rowsPerSecond >= 0.5 * catchUpMarked.limitRowsPerSecond } },
  ...cpuFigures('catch-up', catchUpMarked),
  { scenario: 'catch-up', metric: 'end to end, --no-mark-sent', value: catchUpUnmarked.rowsPerSecond, unit: 'rows/s',
    limit: { name: 'pg_recvlogical pgoutput decode', value: catchUpUnmarked.limitRowsPerSecond } },
  { scenario: 'catch-up', metric: 'cost of sent_to_kafka marking', value: markingCost * 100, unit: '%',
    target: { text: '≤ 25 %', met: markingCost <= 0.25 } },
  { scenario: 'many tables', metric: `catch-up end to end, ${MANY_TABLES} tables, rows/s`, value: catchUpMany.rowsPerSecond, unit: 'rows/s',
    limit: { name: 'pg_recvlogical pgoutput decode', value: catchUpMany.limitRowsPerSecond },
    target: { text: 'within 20 % of the one-table catch-up', met: catchUpMany.rowsPerSecond >= 0.8 * catchUpMarked.rowsPerSecond } },
  ...cpuFigures('many tables', catchUpMany),
  { scenario: 'wide rows', metric: `catch-up end to end, ${WIDE_LABEL}, payload MB/s`, value: wide.megabytesPerSecond, unit: 'MB/s',
    limit: { name: 'slower raw client (below)', value: slowerRawMbps },
    target: { text: '≥ 0.5 × the slower raw client', met: wide.megabytesPerSecond >= 0.5 * slowerRawMbps } },
  { scenario: 'wide rows', metric: 'raw @platformatic/kafka producer, same payload', value: wide.rawKafkaMegabytesPerSecond, unit: 'MB/s' },
  { scenario: 'wide rows', metric: 'raw ClickHouse JSONEachRow insert, same payload', value: wide.rawClickHouseMegabytesPerSecond, unit: 'MB/s' },
  ...cpuFigures('wide rows', wide),
  ...curve.flatMap((point): Figure[] => [
    { scenario: 'steady', metric: `p50 commit→visible at ${point.rate.toLocaleString('en-US')} rows/s (median of ${point.runs.length}: ${spread(point.runs.map((r) => r.p50))})`,
      value: point.p50, unit: 'ms' },
    { scenario: 'steady', metric: `p99 at ${point.rate.toLocaleString('en-US')} rows/s (${spread(point.runs.map((r) => r.p99))}; max ${spread(point.runs.map((r) => r.max))}; ` +
      `achieved ${spread(point.runs.map((r) => r.achievedRowsPerSecond))} rows/s)`, value: point.p99, unit: 'ms' },
  ]),
  { scenario: 'steady', metric: `highest rate held with every run's p99 ≤ ${STEADY_P99_TARGET_MS} ms`, value: heldRate, unit: 'rows/s',
    target: { text: '≥ 10,000 rows/s', met: heldRate >= 10_000 } },
  { scenario: 'steady', metric: `rate where the median p99 crosses ${CROSSING_MS / 1000} s${Number.isNaN(crossing) ? ` (not crossed up to ${Math.max(...steadyRates).toLocaleString('en-US')})` : ''}`,
    value: crossing, unit: 'rows/s' },
  { scenario: 'snapshot', metric: 'into Kafka (cdc --once)', value: snap.kafkaRowsPerSecond, unit: 'rows/s',
    limit: { name: 'COPY … TO /dev/null', value: snap.limitRowsPerSecond },
    target: { text: '≥ 100,000 rows/s', met: snap.kafkaRowsPerSecond >= 100_000 } },
  { scenario: 'snapshot', metric: 'into ClickHouse (sink --once)', value: snap.clickhouseRowsPerSecond, unit: 'rows/s',
    limit: { name: 'raw ClickHouse JSONEachRow insert', value: clickhouseRaw },
    target: { text: '≥ 100,000 rows/s', met: snap.clickhouseRowsPerSecond >= 100_000 } },
  { scenario: 'snapshot', metric: 'cdc / sink CPU per row (whole runs)', value: (snap.cdcCpuSeconds * 1e6) / rows, unit: `µs/row (sink ${((snap.sinkCpuSeconds * 1e6) / rows).toFixed(1)})` },
  { scenario: 'clients', metric: 'raw kafkajs producer (idempotent, acks=all)', value: kafkaRaw.kafkajs, unit: 'rows/s' },
  { scenario: 'clients', metric: 'raw @platformatic/kafka producer (idempotent, acks=all; cdc uses it)', value: kafkaRaw.platformatic, unit: 'rows/s' },
  { scenario: 'clients', metric: 'raw ClickHouse insert', value: clickhouseRaw, unit: 'rows/s' },
  { scenario: 'memory', metric: 'cdc peak RSS (every scenario)', value: peakCdc, unit: 'MB',
    target: { text: '≤ 160 MB', met: peakCdc <= 160 } },
  { scenario: 'memory', metric: 'sink peak RSS (every scenario)', value: peakSink, unit: 'MB',
    target: { text: '≤ 160 MB', met: peakSink <= 160 } },
];

const stamp = started.toISOString().replace(/[:.]/g, '-');
const resultsDir = path.join(ROOT, 'bench', 'results');
await mkdir(resultsDir, { recursive: true });
const title = `walbridge bench ${started.toISOString()} (${argv.quick ? 'quick' : 'full'}, ${rows.toLocaleString('en-US')} rows, ${machine.cores} cores)`;
const steadySummary = steadyRuns.map(({ latenciesMs, ...summary }) => summary);
// The chart's latency panel: the first run at 10,000 rows/s (the target rate), else the highest rate measured.
const charted = steadyRuns.find((run) => run.targetRowsPerSecond === 10_000) ?? steadyRuns.at(-1);
await writeFile(path.join(resultsDir, `${stamp}.json`), JSON.stringify({
  started: started.toISOString(),
  profile: argv.quick ? 'quick' : 'full',
  command: `npm run bench${argv.quick ? ' -- --quick' : ''}`,
  machine,
  parameters: { rows, steadyRates, steadyRepeats, steadySeconds, wideRows: wideRowCount },
  figures,
  scenarios: { catchUpMarked, catchUpUnmarked, catchUpMany, wide, steady: steadySummary, snapshot: snap, kafkaRaw, clickhouseRaw },
}, null, 2));
await writeFile(path.join(resultsDir, `${stamp}.svg`), svgChart(figures, charted?.latenciesMs ?? [], title));
console.log(`\n${title}\n\n${markdownTable(figures)}\n`);
console.log(`results: bench/results/${stamp}.json, bench/results/${stamp}.svg`);
