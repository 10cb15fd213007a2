#!/usr/bin/env node
/**
 * `sink`: applies change topics to ClickHouse, effectively once.
 *   sink start [--once]          consume with the group, commit after each insert
 *   sink replay --from-lsn LSN   re-apply events with commit LSN >= LSN (live offsets untouched)
 *   sink dlq replay              re-apply the dead letters of <topic>.dlq (own group, idempotent)
 *   sink verify                  compare PostgreSQL with ClickHouse FINAL; exit 0 equal, 1 not
 * Tables: --table (repeatable, `*` patterns, env SINK_TABLES comma-separated),
 * --exclude-table (SINK_EXCLUDE_TABLES), or --topic-pattern (SINK_TOPIC_PATTERN).
 */
import './heap-growth.js';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { resolveConnections } from '../config/connections.js';
import { resolveColumnPolicy } from '../config/column-policy.js';
import { resolveKafka, type KafkaSecurityFlags } from '../config/kafka.js';
import { EXIT_OK, EXIT_RUNTIME, ConfigError } from '../core/exit-codes.js';
import { formatLsn, parseLsn } from '../core/lsn.js';
import { createLogger } from '../observability/logger.js';
import { DEFAULT_LIMITS } from '../sink/row-batch.js';
import { runSink, type SinkRunOptions, type SinkRunResult } from '../sink/run-sink.js';
import { DEFAULT_MAX_DEAD_LETTER_RATIO, MIN_FLOOD_LETTERS } from '../sink/batch-applier.js';
import { TableSelection, type SelectionRules } from '../sink/table-selection.js';
import { postgresTables, verifyTables, formatVerifyReport } from '../verify/verify.js';
import { clusterFrom } from '../sink/clickhouse/cluster.js';
import { topicName } from '../core/envelope.js';
import { checkKafkaReachable } from '../kafka/reachability.js';
import { DEFAULT_SESSION_TIMEOUT_MS } from '../kafka/consumer.js';
import { metricsPort, serveHealth } from '../observability/health.js';
import { joinDashedValues, positiveInteger, runCommand, usageFailure } from './run-command.js';
import { kafkaOptions } from './kafka-options.js';

interface TopicArgs {
  topicPrefix: string;
  table?: string[] | undefined;
  excludeTable?: string[] | undefined;
  topicPattern?: string | undefined;
  topic?: string | undefined;
  targetTable?: string | undefined;
}

const DEFAULT_TABLE = 'public.user_logins';

function topicOptions<T>(y: Argv<T>) {
  return y
    .option('table', { type: 'string', array: true, describe: `source table <schema>.<table> or pattern like 'public.*'; repeatable (env SINK_TABLES, comma-separated; default ${DEFAULT_TABLE})` })
    .option('exclude-table', { type: 'string', array: true, describe: 'leave out tables matching this name or pattern; repeatable (env SINK_EXCLUDE_TABLES)' })
    .option('topic-pattern', { type: 'string', describe: 'consume every topic matching this regex, each into the table named like its source table (env SINK_TOPIC_PATTERN)' })
    .option('topic-prefix', { type: 'string', default: 'walbridge', describe: 'topic prefix: the topic is <prefix>.<schema>.<table>' })
    .option('topic', { type: 'string', describe: 'one topic, overriding --topic-prefix/--table' })
    .option('target-table', { type: 'string', describe: 'ClickHouse table, for one source table (default: the source table\'s name)' });
}

function listFrom(flag: string[] | undefined, env: string | undefined): string[] {
  const values = flag && flag.length > 0 ? flag : (env ?? '').split(',');
  return values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
}

/** Flags > environment > the default table. */
function selectionRules(args: TopicArgs, env: NodeJS.ProcessEnv = process.env): SelectionRules {
  const topicPattern = args.topicPattern ?? (args.table?.length || args.topic ? undefined : env.SINK_TOPIC_PATTERN || undefined);
  let tables = listFrom(args.table, topicPattern === undefined && !args.topic ? env.SINK_TABLES : undefined);
  if (tables.length === 0 && topicPattern === undefined && args.topic === undefined) tables = [DEFAULT_TABLE];
  return {
    topicPrefix: args.topicPrefix, tables, excludeTables: listFrom(args.excludeTable, env.SINK_EXCLUDE_TABLES),
    topicPattern, topic: args.topic, targetTable: args.targetTable,
  };
}

function sinkOptions<T>(y: Argv<T>) {
  return kafkaOptions(topicOptions(y))
    .option('group', { type: 'string', describe: `Kafka consumer group (env SINK_GROUP; default ${DEFAULT_GROUP}); sinks reading different topics are best given different groups` })
    // Strings, parsed by positiveInteger() (run-command.ts): yargs turns `abc` into NaN, losing what the user typed.
    .option('batch-rows', { type: 'string', default: String(DEFAULT_LIMITS.maxRows), describe: 'flush a batch at this many rows' })
    .option('batch-bytes', { type: 'string', default: String(DEFAULT_LIMITS.maxBytes), describe: 'flush a batch at this many bytes of row text' })
    .option('linger-ms', { type: 'string', default: String(DEFAULT_LIMITS.lingerMs), describe: 'write at most one batch per this many ms, as soon as no insert is running (rows gather while one runs)' })
    .option('session-timeout-ms', { type: 'string', default: String(DEFAULT_SESSION_TIMEOUT_MS),
      describe: 'consumer group session timeout: how long a member that died keeps its partitions (the broker allows 6000 to 1800000 by default)' })
    .option('metrics-port', { type: 'string', describe: 'serve Prometheus /metrics, /healthz and /readyz on this port (env METRICS_PORT)' })
    .option('wait-timeout', { type: 'string', describe: `seconds to wait for an unreachable ClickHouse before failing (default: ${ONCE_WAIT_TIMEOUT_S} with --once and replay, for ever otherwise)` })
    .option('create-tables', { type: 'boolean', default: true, describe: 'create a missing ClickHouse table from the events\' schema (--no-create-tables: refuse)' })
    .option('max-dead-letter-ratio', { type: 'string', default: String(DEFAULT_MAX_DEAD_LETTER_RATIO),
      describe: `stop (exit 1) instead of dead-lettering when more than this share of one batch's messages (and at least ${MIN_FLOOD_LETTERS}) would go to the DLQ` })
    .option('clickhouse-url', { type: 'string', describe: 'ClickHouse URL with the database as its path (env CLICKHOUSE_URL)' })
    .option('clickhouse-ca', { type: 'string', describe: 'PEM file of the CA that signed ClickHouse\'s https certificate (env CLICKHOUSE_CA_FILE)' })
    .option('cluster', { type: 'string', describe: CLUSTER_HELP });
}

const DEFAULT_GROUP = 'walbridge-sink';

const CLUSTER_HELP = 'ClickHouse cluster (remote_servers) the tables live on: a table the sink creates is created ON CLUSTER, replicated (env CLICKHOUSE_CLUSTER)';

const ONCE_WAIT_TIMEOUT_S = 30;

function ratio(name: string, text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0 || value > 1) throw new ConfigError(`--${name} must be a number from 0 to 1, got '${text}'`);
  return value;
}

type SinkArgs = TopicArgs & {
  group?: string | undefined; batchRows: string; batchBytes: string; lingerMs: string; sessionTimeoutMs: string; metricsPort?: string | undefined; waitTimeout?: string | undefined;
  createTables: boolean; maxDeadLetterRatio: string; kafkaBrokers?: string | undefined; clickhouseUrl?: string | undefined; clickhouseCa?: string | undefined;
  cluster?: string | undefined;
} & KafkaSecurityFlags;

/** Runs the sink in `mode` with the flags every mode shares. */
async function runWithArgs(argv: SinkArgs, mode: SinkRunOptions['mode'], fromVersion: bigint): Promise<SinkRunResult> {
  const connections = resolveConnections({ kafkaBrokers: argv.kafkaBrokers, clickhouseUrl: argv.clickhouseUrl, clickhouseCa: argv.clickhouseCa });
  const kafka = resolveKafka(connections.kafkaBrokers, argv);
  await checkKafkaReachable(kafka);
  const health = await serveHealth(metricsPort(argv.metricsPort));
  return runSink({
    kafka, clickhouseUrl: connections.clickhouseUrl, clickhouseCaFile: connections.clickhouseCaFile, selection: new TableSelection(selectionRules(argv)), groupId: argv.group || process.env.SINK_GROUP || DEFAULT_GROUP,
    limits: { maxRows: positiveInteger('batch-rows', argv.batchRows), maxBytes: positiveInteger('batch-bytes', argv.batchBytes), lingerMs: nonNegative('linger-ms', argv.lingerMs) },
    mode, fromVersion, createTables: argv.createTables, cluster: clusterFrom(argv.cluster), waitTimeoutMs: waitTimeoutMs(argv.waitTimeout, mode !== 'follow'),
    maxDeadLetterRatio: ratio('max-dead-letter-ratio', argv.maxDeadLetterRatio),
    sessionTimeoutMs: sessionTimeout(argv.sessionTimeoutMs), logger: createLogger('sink'), progressed: health.progressed,
  }).finally(() => health.close());
}

/** The broker's default group.min.session.timeout.ms: a lower one is refused at the group join, after start-up. */
const MIN_SESSION_TIMEOUT_MS = 6_000;

function sessionTimeout(text: string): number {
  const ms = positiveInteger('session-timeout-ms', text);
  if (ms < MIN_SESSION_TIMEOUT_MS) throw new ConfigError(`--session-timeout-ms must be at least ${MIN_SESSION_TIMEOUT_MS} (Kafka brokers refuse less by default), got ${ms}`);
  return ms;
}

function nonNegative(name: string, text: string): number {
  return text.trim() === '0' ? 0 : positiveInteger(name, text);
}

/** --wait-timeout in ms: a bounded wait for --once and replay, none by default when following. */
function waitTimeoutMs(text: string | undefined, bounded: boolean): number | undefined {
  if (text === undefined) return bounded ? ONCE_WAIT_TIMEOUT_S * 1000 : undefined;
  return nonNegative('wait-timeout', text) * 1000;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

function summary(verb: string, result: SinkRunResult, suffix = ''): string {
  const t = result.totals;
  const lines = result.topics.map(({ topic, targetTable }) => {
    const written = t.perTable.get(targetTable) ?? { upserts: 0, deletes: 0 };
    return `${verb} ${plural(written.upserts + written.deletes, 'row')} to ${targetTable} (${plural(written.upserts, 'upsert')}, ${plural(written.deletes, 'delete')}) from ${topic}${suffix}`;
  });
  const extra: string[] = [];
  if (t.truncates) extra.push(`${t.truncates} truncate${t.truncates === 1 ? '' : 's'} applied`);
  if (t.deadLetters) extra.push(`${t.deadLetters} message${t.deadLetters === 1 ? '' : 's'} dead-lettered to ${result.topics.length === 1 ? `${result.topics[0]?.topic}.dlq` : '<topic>.dlq'}`);
  if (t.tombstones) extra.push(`${plural(t.tombstones, 'tombstone')} skipped`);
  if (t.beforeTruncate) extra.push(`${plural(t.beforeTruncate, 'event')} already covered by a truncate skipped`);
  if (t.belowFromLsn) extra.push(`${plural(t.belowFromLsn, 'event')} below --from-lsn skipped`);
  if (t.collapsed) extra.push(`${plural(t.collapsed, 'event')} collapsed into later ones of the same key`);
  if (extra.length) lines.push(`  ${plural(t.messages, 'message')}: ${extra.join(', ')}`);
  return lines.join('\n');
}

await yargs(joinDashedValues(hideBin(process.argv), ['--from-lsn']))
  .scriptName('sink')
  .usage('$0 <command>\n\nApplies the walbridge (or Debezium) change topic of a table to ClickHouse.')
  .command('start', 'consume the topic and apply it to ClickHouse, committing offsets after each insert', (y) =>
    sinkOptions(y).option('once', { type: 'boolean', default: false, describe: 'drain to the end offsets taken at start, then exit' }),
  (argv) => runCommand(async () => {
    const result = await runWithArgs(argv, argv.once ? 'drain' : 'follow', 0n);
    console.log(summary('wrote', result));
    return EXIT_OK;
  }))
  .command('replay', 're-apply every event with commit LSN >= --from-lsn, without moving the live group\'s offsets', (y) =>
    sinkOptions(y).option('from-lsn', { type: 'string', demandOption: true, describe: 'LSN like 0/16B3748 (0/0: everything)' }),
  (argv) => runCommand(async () => {
    let fromVersion: bigint;
    try {
      fromVersion = parseLsn(argv.fromLsn);
    } catch (error) {
      throw new ConfigError(`--from-lsn: ${(error as Error).message}`);
    }
    const result = await runWithArgs(argv, 'replay', fromVersion);
    console.log(summary('replayed', result, ` (events with commit LSN >= ${formatLsn(fromVersion)})`));
    return EXIT_OK;
  }))
  .command('dlq', 'dead-letter topics', (y) => y
    .command('replay', 're-apply the dead letters of the selected topics (<topic>.dlq), after the cause is fixed; idempotent', (z) => sinkOptions(z),
      (argv) => runCommand(async () => {
        const result = await runWithArgs(argv, 'dlq', 0n);
        if (result.topics.length === 0) console.log('no dead letters to replay');
        else console.log(summary('replayed', result, ' dead letters'));
        return EXIT_OK;
      }))
    .demandCommand(1, 'name a dlq command: replay'))
  .command('verify', 'compare the PostgreSQL table with ClickHouse FINAL WHERE _is_deleted = 0; exit 0 when equal, 1 when not', (y) =>
    topicOptions(y)
      // verify reads no topic: these only select PostgreSQL tables, named as their topics, as start would.
      .option('topic-pattern', { type: 'string', describe: 'verify the tables whose topic (<prefix>.<schema>.<table>) matches this regex, as start would consume them' })
      .option('topic-prefix', { type: 'string', default: 'walbridge', describe: 'the prefix --topic and --topic-pattern match table names with (no topic is read)' })
      .option('topic', { type: 'string', describe: 'verify the one table this topic name (<prefix>.<schema>.<table>) stands for' })
      .option('database-url', { type: 'string', describe: 'PostgreSQL URL (env DATABASE_URL)' })
      .option('clickhouse-url', { type: 'string', describe: 'ClickHouse URL with the database as its path (env CLICKHOUSE_URL)' })
      .option('clickhouse-ca', { type: 'string', describe: 'PEM file of the CA that signed ClickHouse\'s https certificate (env CLICKHOUSE_CA_FILE)' })
      .option('exclude-column', { type: 'string', array: true, describe: 'a column cdc leaves out (its --exclude-column): not compared; repeatable (env CDC_EXCLUDE_COLUMNS)' })
      .option('hash-column', { type: 'string', array: true, describe: 'a column cdc hashes (its --hash-column): hashed with CDC_HASH_KEY / CDC_HASH_KEY_FILE before comparing; repeatable (env CDC_HASH_COLUMNS)' })
      .option('range-size', { type: 'number', default: 10_000, describe: 'ids per compared range' })
      .option('show', { type: 'number', default: 20, describe: 'name at most this many differing ids' })
      .option('wait-mutations', { type: 'number', default: 60, describe: 'seconds to wait for pending ClickHouse mutations (truncates), and for a replica to catch up (SYSTEM SYNC REPLICA), first' }),
  (argv) => runCommand(async () => {
    const connections = resolveConnections({ databaseUrl: argv.databaseUrl, clickhouseUrl: argv.clickhouseUrl, clickhouseCa: argv.clickhouseCa });
    const columns = resolveColumnPolicy({ excludeColumn: argv.excludeColumn, hashColumn: argv.hashColumn });
    // The selection matched against PostgreSQL's tables, named as their topics would be.
    const rules = selectionRules(argv);
    const tables = await postgresTables(connections.databaseUrl);
    const selected = new TableSelection(rules).select(tables.map(({ schema, table }) => topicName(rules.topicPrefix, schema, table)));
    if (selected.length === 0) throw new ConfigError(`no PostgreSQL table matches ${new TableSelection(rules).describe()}`);
    let equal = true;
    const verdicts: string[] = [];
    for (const { schema, table, targetTable } of selected) {
      const report = await verifyTables({
        databaseUrl: connections.databaseUrl, clickhouseUrl: connections.clickhouseUrl, clickhouseCaFile: connections.clickhouseCaFile, columns, schema, table,
        targetTable, rangeSize: positiveInteger('range-size', argv.rangeSize), show: positiveInteger('show', argv.show),
        waitMutationsMs: Math.max(0, argv.waitMutations) * 1000,
      });
      console.log(formatVerifyReport(report));
      verdicts.push(`${schema}.${table}: ${report.equal ? 'EQUAL' : 'DIFFERENT'}`);
      equal &&= report.equal;
    }
    if (selected.length > 1) console.log(verdicts.join('\n'));
    return equal ? EXIT_OK : EXIT_RUNTIME;
  }))
  .demandCommand(1, 'name a command: start, replay, dlq replay or verify')
  .strict()
  .help()
  .fail(usageFailure('sink'))
  .parseAsync();
