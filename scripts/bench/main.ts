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
import { rawClickHouseInsert, rawKafkaProducer } from './raw-clients.js';
import { catchUp, catchUpManyTables, snapshot, steadyLatency } from './scenarios.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

const argv = yargs(hideBin(process.argv))
  .scriptName('bench')
  .option('quick', { type: 'boolean', default: false, describe: 'small profile that finishes within about two minutes' })
  .option('rows', { type: 'number', describe: 'backlog and snapshot size (default 1,000,000; quick 50,000)' })
  .option('rate', { type: 'number', default: 2000, describe: 'steady write rate, rows/s' })
  .option('seconds', { type: 'number', describe: 'steady phase length (default 60; quick 15)' })
  .strict()
  .help()
  .parseSync();

const rows = argv.rows ?? (argv.quick ? 50_000 : 1_000_000);
/** The many-tables scenario's table count (issue 13 measures users' shapes: 20 tables, one slot). */
const MANY_TABLES = 20;
const steadySeconds = argv.seconds ?? (argv.quick ? 15 : 60);
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
log(`profile: ${argv.quick ? 'quick' : 'full'}, ${rows.toLocaleString('en-US')} rows, steady ${argv.rate} rows/s for ${steadySeconds}s`);

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
log('steady latency');
const steady = await steadyLatency(base, argv.rate, steadySeconds);
log('snapshot');
const snap = await snapshot(base, rows);

const markingCost = 1 - catchUpMarked.rowsPerSecond / catchUpUnmarked.rowsPerSecond;
const peakCdc = Math.max(catchUpMarked.cdcPeakRssMb, catchUpMany.cdcPeakRssMb, steady.cdcPeakRssMb);
const peakSink = Math.max(catchUpMarked.sinkPeakRssMb, catchUpMany.sinkPeakRssMb, steady.sinkPeakRssMb);
const figures: Figure[] = [
  { scenario: 'catch-up', metric: 'end to end, rows/s', value: catchUpMarked.rowsPerSecond, unit: 'rows/s',
    limit: { name: 'pg_recvlogical pgoutput decode', value: catchUpMarked.limitRowsPerSecond },
    target: { text: '≥ 40,000 rows/s', met: catchUpMarked.rowsPerSecond >= 40_000 } },
  { scenario: 'catch-up', metric: 'end to end, --no-mark-sent', value: catchUpUnmarked.rowsPerSecond, unit: 'rows/s',
    limit: { name: 'pg_recvlogical pgoutput decode', value: catchUpUnmarked.limitRowsPerSecond } },
  { scenario: 'catch-up', metric: 'cost of sent_to_kafka marking', value: markingCost * 100, unit: '%',
    target: { text: '≤ 25 %', met: markingCost <= 0.25 } },
  { scenario: 'many tables', metric: `catch-up end to end, ${MANY_TABLES} tables, rows/s`, value: catchUpMany.rowsPerSecond, unit: 'rows/s',
    limit: { name: 'pg_recvlogical pgoutput decode', value: catchUpMany.limitRowsPerSecond },
    target: { text: 'within 20 % of the one-table catch-up', met: catchUpMany.rowsPerSecond >= 0.8 * catchUpMarked.rowsPerSecond } },
  { scenario: 'steady', metric: `p50 commit→visible at ${argv.rate} rows/s`, value: steady.p50, unit: 'ms' },
  { scenario: 'steady', metric: 'p95 commit→visible', value: steady.p95, unit: 'ms' },
  { scenario: 'steady', metric: 'p99 commit→visible', value: steady.p99, unit: 'ms',
    target: { text: '≤ 300 ms', met: steady.p99 <= 300 } },
  { scenario: 'steady', metric: 'max commit→visible', value: steady.max, unit: 'ms' },
  { scenario: 'steady', metric: 'write rate achieved', value: steady.achievedRowsPerSecond, unit: 'rows/s' },
  { scenario: 'snapshot', metric: 'into Kafka (cdc --once)', value: snap.kafkaRowsPerSecond, unit: 'rows/s',
    limit: { name: 'COPY … TO /dev/null', value: snap.limitRowsPerSecond },
    target: { text: '≥ 100,000 rows/s', met: snap.kafkaRowsPerSecond >= 100_000 } },
  { scenario: 'snapshot', metric: 'into ClickHouse (sink --once)', value: snap.clickhouseRowsPerSecond, unit: 'rows/s',
    limit: { name: 'raw ClickHouse JSONEachRow insert', value: clickhouseRaw } },
  { scenario: 'clients', metric: 'raw kafkajs producer (idempotent, acks=all)', value: kafkaRaw.kafkajs, unit: 'rows/s' },
  { scenario: 'clients', metric: 'raw @platformatic/kafka producer (idempotent, acks=all; cdc uses it)', value: kafkaRaw.platformatic, unit: 'rows/s' },
  { scenario: 'clients', metric: 'raw ClickHouse insert', value: clickhouseRaw, unit: 'rows/s' },
  { scenario: 'memory', metric: 'cdc peak RSS (catch-up, steady)', value: peakCdc, unit: 'MB',
    target: { text: '≤ 200 MB', met: peakCdc <= 200 } },
  { scenario: 'memory', metric: 'sink peak RSS (catch-up, steady)', value: peakSink, unit: 'MB',
    target: { text: '≤ 200 MB', met: peakSink <= 200 } },
];

const stamp = started.toISOString().replace(/[:.]/g, '-');
const resultsDir = path.join(ROOT, 'bench', 'results');
await mkdir(resultsDir, { recursive: true });
const title = `walbridge bench ${started.toISOString()} (${argv.quick ? 'quick' : 'full'}, ${rows.toLocaleString('en-US')} rows, ${machine.cores} cores)`;
const { latenciesMs, ...steadySummary } = steady;
await writeFile(path.join(resultsDir, `${stamp}.json`), JSON.stringify({
  started: started.toISOString(),
  profile: argv.quick ? 'quick' : 'full',
  command: `npm run bench${argv.quick ? ' -- --quick' : ''}`,
  machine,
  parameters: { rows, rate: argv.rate, steadySeconds },
  figures,
  scenarios: { catchUpMarked, catchUpUnmarked, catchUpMany, steady: steadySummary, snapshot: snap, kafkaRaw, clickhouseRaw },
}, null, 2));
await writeFile(path.join(resultsDir, `${stamp}.svg`), svgChart(figures, latenciesMs, title));
console.log(`\n${title}\n\n${markdownTable(figures)}\n`);
console.log(`results: bench/results/${stamp}.json, bench/results/${stamp}.svg`);
