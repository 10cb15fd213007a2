/**
 * `npm run chaos [-- --minutes N]`: the delivery promise under random faults.
 * On the stack scripts/chaos.sh started (three Kafka brokers), it runs cdc
 * and several sink members under a supervisor, writes a mixed workload, and
 * every --fault-every seconds injects one fault (faults.ts), each kind in
 * turn in a shuffled order. After each fault it measures the recovery: the
 * time until a row written when the fault ended is in ClickHouse. At the end
 * the workload stops, everything drains, and `sink verify` must find
 * PostgreSQL and ClickHouse EQUAL. Exit 0 only if it does, no process
 * exited by itself, and no recovery took longer than --max-stall-seconds.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import path from 'node:path';
import pg from 'pg';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { openClickHouse } from '../../src/sink/clickhouse/client.js';
import { FAULT_KINDS, killKafkaLeader, pauseClickHouse, restartClickHouse, restartPostgres, type FaultKind, type StackControl } from './faults.js';
import { Supervised, type UnexpectedExit } from './supervisor.js';
import { CHAOS_TABLES_DDL, seededRandom, Workload } from './workload.js';

const CLI_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli');
const TOPIC_PREFIX = 'chaos';
const TABLES = 'public.chaos_*';

const argv = yargs(hideBin(process.argv))
  .scriptName('chaos')
  .option('minutes', { type: 'number', default: 30, describe: 'how long faults are injected' })
  .option('fault-every', { type: 'number', default: 20, describe: 'mean seconds between faults (each waits for the last to recover)' })
  .option('rate', { type: 'number', default: 20, describe: 'workload transactions per second' })
  .option('sinks', { type: 'number', default: 2, describe: 'sink members in the consumer group' })
  .option('pause-seconds', { type: 'number', default: 30, describe: 'how long ClickHouse stays frozen (SIGSTOP)' })
  .option('max-stall-seconds', { type: 'number', default: 180, describe: 'a recovery slower than this fails the run' })
  .option('seed', { type: 'number', default: Date.now() % 1_000_000, describe: 'seed of the workload and the fault order' })
  .strict()
  .help()
  .parseSync();

const env = {
  databaseUrl: need('DATABASE_URL'),
  kafkaBrokers: need('KAFKA_BROKERS'),
  clickhouseUrl: need('CLICKHOUSE_URL'),
  stackDir: need('STACK_DIR'),
};
const runDir = path.join(env.stackDir, 'chaos');
mkdirSync(runDir, { recursive: true });
const random = seededRandom(argv.seed);
const control: StackControl = { stackDir: env.stackDir, kafkaBrokers: env.kafkaBrokers, pauseMs: argv.pauseSeconds * 1000, brokerDownMs: 10_000 };

function need(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run through scripts/chaos.sh (npm run chaos)`);
  return value;
}

function log(message: string): void {
  process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Injected {
  kind: FaultKind;
  detail: string;
  at: string;
  /** The fault itself: the time the stack was broken (a pause, a broker down, a restart). */
  faultSeconds: number;
  /** After the fault ended: until a row written then was in ClickHouse. */
  recoverySeconds: number;
}

// ------------------------------------------------------------------- probe
const clickhouse = openClickHouse(env.clickhouseUrl).client;

/** Writes a probe row and waits until the sink wrote it to ClickHouse; seconds taken, or null past the limit. */
async function probe(limitSeconds: number): Promise<number | null> {
  const started = performance.now();
  const id = await retrying(async () => {
    const client = new pg.Client({ connectionString: env.databaseUrl, connectionTimeoutMillis: 5_000 });
    client.on('error', () => {});
    await client.connect();
    try {
      return (await client.query<{ id: string }>('INSERT INTO chaos_probe DEFAULT VALUES RETURNING id')).rows[0]!.id;
    } finally {
      await client.end().catch(() => {});
    }
  }, limitSeconds);
  if (id === null) return null;
  const found = await retrying(async () => {
    const result = await clickhouse.query({ query: `SELECT count() AS n FROM chaos_probe WHERE id = ${Number(id)}`, format: 'JSONEachRow' });
    const rows = await result.json<{ n: string }>();
    if (Number(rows[0]?.n) === 0) throw new Error('not yet');
    return true;
  }, limitSeconds - (performance.now() - started) / 1000);
  return found === null ? null : (performance.now() - started) / 1000;
}

/** Calls `attempt` every 250 ms until it succeeds; null after `seconds`. */
async function retrying<T>(attempt: () => Promise<T>, seconds: number): Promise<T | null> {
  const deadline = performance.now() + seconds * 1000;
  for (;;) {
    try {
      return await attempt();
    } catch {
      if (performance.now() > deadline) return null;
      await sleep(250);
    }
  }
}

// ------------------------------------------------------------------ faults
const unexpected: UnexpectedExit[] = [];
const processEnv = { DATABASE_URL: env.databaseUrl, KAFKA_BROKERS: env.kafkaBrokers, CLICKHOUSE_URL: env.clickhouseUrl };
const onExit = (exit: UnexpectedExit) => {
  unexpected.push(exit);
  log(`UNEXPECTED: ${exit.name} exited by itself (code ${exit.code}, signal ${exit.signal}); see ${runDir}/${exit.name}.log`);
};
const cdc = new Supervised('cdc', 'cdc', ['start', '--slot', 'chaos', '--table', TABLES, '--topic-prefix', TOPIC_PREFIX, '--partitions', '3'],
  processEnv, path.join(runDir, 'cdc.log'), onExit);
const sinks = Array.from({ length: argv.sinks }, (_, i) =>
  new Supervised(`sink-${i + 1}`, 'sink', ['start', '--group', 'chaos-sink', '--table', TABLES, '--topic-prefix', TOPIC_PREFIX],
    processEnv, path.join(runDir, `sink-${i + 1}.log`), onExit));

async function inject(kind: FaultKind): Promise<string> {
  switch (kind) {
    case 'cdc-kill':
      cdc.crash();
      return 'kill -9 cdc';
    case 'sink-kill': {
      const member = sinks[Math.floor(random() * sinks.length)]!;
      member.crash();
      return `kill -9 ${member.name}`;
    }
    case 'postgres-restart-fast':
      await restartPostgres('fast');
      return 'pg_ctl restart -m fast';
    case 'postgres-restart-immediate':
      await restartPostgres('immediate');
      return 'pg_ctl stop -m immediate, start';
    case 'kafka-leader-kill':
      return `kill -9 Kafka node ${await killKafkaLeader(control, `${TOPIC_PREFIX}.public.chaos_orders`)} (leader of chaos_orders/0), start it ${control.brokerDownMs / 1000} s later`;
    case 'clickhouse-pause':
      await pauseClickHouse(control);
      return `SIGSTOP ClickHouse for ${argv.pauseSeconds} s`;
    case 'clickhouse-restart':
      await restartClickHouse();
      return 'kill -9 ClickHouse, start';
  }
}

/** Every kind once per round, in a shuffled order. */
function* faultOrder(): Generator<FaultKind> {
  for (;;) {
    const round = [...FAULT_KINDS];
    for (let i = round.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [round[i], round[j]] = [round[j]!, round[i]!];
    }
    yield* round;
  }
}

async function verify(): Promise<{ equal: boolean; output: string }> {
  const run = promisify(execFile);
  try {
    const { stdout } = await run(process.execPath, [path.join(CLI_DIR, 'sink.js'), 'verify', '--table', TABLES], {
      env: { ...process.env, ...processEnv, LOG_LEVEL: 'warn' }, maxBuffer: 1 << 24,
    });
    return { equal: true, output: stdout };
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string };
    return { equal: false, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

// -------------------------------------------------------------------- run
async function main(): Promise<number> {
  log(`seed ${argv.seed}; ${argv.minutes} min of faults every ~${argv.faultEvery} s; ${argv.rate} txn/s; ${argv.sinks} sink members; logs in ${runDir}`);
  const setup = new pg.Client({ connectionString: env.databaseUrl });
  await setup.connect();
  await setup.query(CHAOS_TABLES_DDL);
  await setup.end();

  cdc.start();
  for (const sink of sinks) sink.start();
  const first = await probe(180);
  if (first === null) throw new Error(`the pipeline did not deliver a first row within 180 s; see ${runDir}`);
  log(`pipeline live (first row through in ${first.toFixed(1)} s)`);

  const workload = new Workload(env.databaseUrl, argv.rate, random);
  workload.start();
  const injected: Injected[] = [];
  const deadline = Date.now() + argv.minutes * 60_000;
  const order = faultOrder();
  let stalled = 0;
  while (Date.now() < deadline) {
    await sleep(argv.faultEvery * 1000 * (0.5 + random()));
    const kind = order.next().value as FaultKind;
    const at = new Date().toISOString();
    const started = performance.now();
    const detail = await inject(kind);
    const faultSeconds = (performance.now() - started) / 1000;
    const recovery = await probe(argv.maxStallSeconds);
    if (recovery === null) stalled++;
    injected.push({ kind, detail, at, faultSeconds, recoverySeconds: recovery ?? Number.POSITIVE_INFINITY });
    log(`${detail}: fault ${faultSeconds.toFixed(1)} s, then ${recovery === null ? `NO RECOVERY within ${argv.maxStallSeconds} s` : `a new row in ClickHouse ${recovery.toFixed(1)} s later`}`);
  }

  await workload.stop();
  log(`workload stopped: ${workload.totals.transactions} transactions committed, ${workload.totals.failed} failed during outages; draining`);
  const drained = await probe(600);
  let verified = { equal: false, output: 'not run: the pipeline did not drain' };
  if (drained !== null) {
    // Other topics' partitions may still be behind the probe's: verify until EQUAL, for a while.
    for (let attempt = 1; attempt <= 12; attempt++) {
      verified = await verify();
      if (verified.equal) break;
      await sleep(10_000);
    }
  }
  await Promise.all([cdc.stop(), ...sinks.map((s) => s.stop())]);
  await clickhouse.close();

  const report = summarize(injected, workload.totals, verified.equal, stalled);
  writeFileSync(path.join(runDir, 'result.json'), `${JSON.stringify({ seed: argv.seed, minutes: argv.minutes, injected, workload: workload.totals, unexpected, verify: verified, report }, null, 2)}\n`);
  process.stdout.write(`${verified.output.trim()}\n\n${report}\n`);
  for (const exit of unexpected) {
    process.stdout.write(`\n${exit.name} exited by itself at ${exit.at.toISOString()} (code ${exit.code}, signal ${exit.signal}); its last lines:\n` +
      `${exit.lastLines.map((line) => `  ${line.slice(0, 400)}`).join('\n')}\n`);
  }
  const survived = verified.equal && unexpected.length === 0 && stalled === 0;
  process.stdout.write(survived ? 'SURVIVED: nothing lost, nothing extra, every process rode through\n' : 'FAILED: see above and the logs\n');
  return survived ? 0 : 1;
}

function summarize(injected: Injected[], totals: Workload['totals'], equal: boolean, stalled: number): string {
  const lines = ['| fault | count | fault time max (s) | recovery after it, median / max (s) |', '| --- | ---: | ---: | ---: |'];
  for (const kind of FAULT_KINDS) {
    const of = injected.filter((i) => i.kind === kind);
    if (of.length === 0) continue;
    const recoveries = of.map((i) => i.recoverySeconds).sort((a, b) => a - b);
    const median = recoveries[Math.floor(recoveries.length / 2)]!;
    lines.push(`| ${kind} | ${of.length} | ${Math.max(...of.map((i) => i.faultSeconds)).toFixed(1)} | ${median.toFixed(1)} / ${recoveries.at(-1)!.toFixed(1)} |`);
  }
  const longest = Math.max(0, ...injected.map((i) => i.faultSeconds + i.recoverySeconds));
  return [
    ...lines,
    '',
    `faults injected: ${injected.length}; transactions committed: ${totals.transactions} (${Object.entries(totals.byKind).map(([k, n]) => `${k} ${n}`).join(', ')}); ` +
      `failed during outages: ${totals.failed}`,
    `longest stall (fault + recovery): ${longest.toFixed(1)} s; recoveries over the limit: ${stalled}; processes that exited by themselves: ${unexpected.length}`,
    `sink verify: ${equal ? 'EQUAL (lost 0, extra 0)' : 'DIFFERENT'}`,
  ].join('\n');
}

main().then((code) => process.exit(code), async (error: Error) => {
  log(`chaos run failed: ${error.stack ?? error.message}`);
  await Promise.all([cdc.stop(), ...sinks.map((s) => s.stop())]);
  process.exit(1);
});
