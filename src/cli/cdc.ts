#!/usr/bin/env node
/**
 * `cdc`: the PostgreSQL → Kafka half of walbridge.
 *   cdc start --slot user_logins [--table …] [--once]   stream changes (pgoutput) to Kafka
 *   cdc status [--slot X] [--json]                      slots, lag, captured tables, topic offsets
 *   cdc snapshot --slot X --table T                     incremental snapshot of tables while cdc streams
 *   cdc drop --slot X --yes                             remove the slot, publication, origins
 */
import './heap-growth.js';
import pg from 'pg';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { topicName } from '../core/envelope.js';
import { ConfigError, EXIT_CONFIG, EXIT_RUNTIME } from '../core/exit-codes.js';
import { parseLsn, type Lsn } from '../core/lsn.js';
import { resolveConnections } from '../config/connections.js';
import { resolveColumnPolicy } from '../config/column-policy.js';
import { resolveKafka } from '../config/kafka.js';
import { parseTableName } from '../config/table-name.js';
import { parseTableSelection, tableList } from '../config/table-selection.js';
import { createKafka } from '../kafka/client.js';
import { checkTopics } from '../kafka/topic-settings.js';
import { topicOffsets } from '../kafka/topics.js';
import { createLogger } from '../observability/logger.js';
import { runCapture } from '../cdc/run.js';
import { requestIncrementalSnapshots } from '../cdc/request-snapshot.js';
import { dropRequests } from '../cdc/postgres/snapshot-requests.js';
import { installShutdown } from '../core/shutdown.js';
import { checkSlotName } from '../cdc/postgres/slot.js';
import { dropCapture, slotStatuses } from '../cdc/postgres/status.js';
import { summaryLine } from './cdc-summary.js';
import { checkKafkaReachable } from '../kafka/reachability.js';
import { metricsPort, serveHealth } from '../observability/health.js';
import { watchSlot } from '../cdc/postgres/slot-watch.js';
import { joinDashedValues, positiveInteger, runCommand, usageFailure } from './run-command.js';
import { kafkaOptions } from './kafka-options.js';

const defaultPublication = (slot: string): string => `walbridge_${slot}`;
const DEFAULT_TABLE = 'public.user_logins';
/** `--once` rides through an outage this long by default (a restart of PostgreSQL or of a Kafka broker takes seconds). */
const ONCE_RETRY_FOR_S = 60;

/** --retry-for in ms: bounded with --once by default, for ever otherwise. */
function retryForMs(text: string | undefined, once: boolean): number | undefined {
  if (text === undefined) return once ? ONCE_RETRY_FOR_S * 1000 : undefined;
  if (!/^\s*\d+\s*$/.test(text)) throw new ConfigError(`--retry-for must be a whole number of seconds (0: give up at the first failure), got '${text}'`);
  return Number(text) * 1000;
}

function connectionOptions<T>(y: Argv<T>) {
  return kafkaOptions(y)
    .option('database-url', { type: 'string', describe: 'PostgreSQL URL (env DATABASE_URL)' })
    .option('topic-prefix', { type: 'string', default: 'walbridge', describe: 'topics are <prefix>.<schema>.<table>' });
}

function parseFromLsn(text: string | undefined): Lsn | null {
  if (text === undefined) return null;
  try {
    return parseLsn(text);
  } catch (error) {
    throw new ConfigError(`--from-lsn: ${(error as Error).message}`);
  }
}

/** Seconds (fractions allowed) → ms; unset, empty or 0 means no heartbeat. */
function parseHeartbeatInterval(text: string | undefined): number | undefined {
  if (text === undefined || text === '' || text === '0') return undefined;
  const seconds = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || seconds < 0.1 || seconds > 86_400) {
    throw new ConfigError(`--heartbeat-interval / CDC_HEARTBEAT_INTERVAL must be seconds between 0.1 and 86400 (0 for none), got '${text}'`);
  }
  return Math.round(seconds * 1000);
}

await yargs(joinDashedValues(hideBin(process.argv), ['--from-lsn', '--retention-ms']))
  .scriptName('cdc')
  .usage('$0 <command>\n\nStreams the changes of PostgreSQL tables (one slot, pgoutput) to Kafka.')
  .command('start', 'stream the tables\' changes to Kafka; marks sent_to_kafka; resumes from the slot', (y) =>
    connectionOptions(y)
      .option('slot', { type: 'string', demandOption: true, describe: 'replication slot (created when missing, with an initial snapshot)' })
      .option('publication', { type: 'string', describe: 'publication (default walbridge_<slot>; created when missing, tables added to it)' })
      .option('table', { type: 'string', array: true, describe: `captured tables: schema.table or a pattern (public.*), repeatable (env CDC_TABLES, comma-separated; default ${DEFAULT_TABLE})` })
      .option('exclude-table', { type: 'string', array: true, describe: 'tables left out of the patterns, repeatable (env CDC_EXCLUDE_TABLES)' })
      .option('replica-identity', { choices: ['full', 'keep'] as const, default: 'full' as const, describe: 'full: set REPLICA IDENTITY FULL where it is not (unchanged TOAST values stay correct); keep: leave each table\'s own (docs/cdc.md)' })
      .option('partitions', { type: 'number', default: 1, describe: 'partitions of a topic created by cdc' })
      .option('replication-factor', { type: 'string', describe: 'replicas of a topic created by cdc (default: 3, or the broker count if fewer)' })
      .option('min-insync-replicas', { type: 'string', describe: 'min.insync.replicas of a topic created by cdc (default: 2 with 3+ replicas, else 1)' })
      .option('retention-ms', { type: 'string', default: '-1', describe: 'retention.ms of a topic created by cdc (-1: keep every message, so replay from 0/0 stays exact)' })
      .option('snapshot', { choices: ['unsent', 'all', 'none'] as const, describe: 'initial load when the slot is created (default unsent; give it to recreate a lost slot)' })
      .option('once', { type: 'boolean', default: false, describe: 'drain what was committed before the start, then exit' })
      .option('from-lsn', { type: 'string', describe: 'skip ahead: start at this LSN (not before the slot\'s confirmed LSN)' })
      .option('mark-sent', { type: 'boolean', default: true, describe: 'set sent_to_kafka = true after Kafka acknowledged (--no-mark-sent to skip)' })
      .option('tombstones', { type: 'boolean', default: false, describe: 'send a null-value message after each delete (for compacted topics)' })
      .option('failover', { type: 'boolean', default: false, describe: 'create the slot failover-enabled, kept in step on standbys (PostgreSQL 17+)' })
      .option('exclude-column', { type: 'string', array: true, describe: 'leave this column out of every event: schema.table.column, repeatable (env CDC_EXCLUDE_COLUMNS, comma-separated)' })
      .option('hash-column', { type: 'string', array: true, describe: 'send this column as HMAC-SHA-256 hex, keyed with CDC_HASH_KEY or CDC_HASH_KEY_FILE: schema.table.column, repeatable (env CDC_HASH_COLUMNS)' })
      .option('retry-for', { type: 'string', describe: `seconds to ride through an outage (PostgreSQL or Kafka away) before exiting 1 (default: ${ONCE_RETRY_FOR_S} with --once, for ever otherwise)` })
      .option('metrics-port', { type: 'string', describe: 'serve Prometheus /metrics, /healthz and /readyz on this port (env METRICS_PORT)' })
      .option('heartbeat-interval', { type: 'string', describe: 'write a heartbeat through the slot every SECONDS, so freshness and the confirmed LSN move on a quiet database (PostgreSQL 14+; env CDC_HEARTBEAT_INTERVAL; default off)' }),
  (argv) => runCommand(async () => {
    checkSlotName(argv.slot);
    const heartbeatIntervalMs = parseHeartbeatInterval(argv.heartbeatInterval ?? process.env.CDC_HEARTBEAT_INTERVAL);
    if (!Number.isInteger(argv.partitions) || argv.partitions < 1) throw new ConfigError(`--partitions must be a positive integer, got ${argv.partitions}`);
    const include = tableList(argv.table ?? process.env.CDC_TABLES ?? DEFAULT_TABLE);
    const exclude = tableList(argv.excludeTable ?? process.env.CDC_EXCLUDE_TABLES);
    const fromLsn = parseFromLsn(argv.fromLsn);
    const columns = resolveColumnPolicy({ excludeColumn: argv.excludeColumn, hashColumn: argv.hashColumn });
    const retryFor = retryForMs(argv.retryFor, argv.once);
    const connections = resolveConnections({ databaseUrl: argv.databaseUrl, kafkaBrokers: argv.kafkaBrokers });
    const kafka = resolveKafka(connections.kafkaBrokers, argv);
    const logger = createLogger('cdc');
    const shutdown = installShutdown(logger);
    // A second signal exits at once: nothing undelivered was confirmed.
    shutdown.abortSignal.addEventListener('abort', () => process.exit(EXIT_RUNTIME));
    await checkKafkaReachable(kafka);
    const health = await serveHealth(metricsPort(argv.metricsPort));
    const slotWatch = metricsPort(argv.metricsPort) === undefined ? undefined : watchSlot(connections.databaseUrl, argv.slot, health.progressed, logger);
    const summary = await runCapture({
      databaseUrl: connections.databaseUrl,
      kafka,
      slot: argv.slot,
      publication: argv.publication ?? defaultPublication(argv.slot),
      tables: parseTableSelection(include, exclude),
      replicaIdentity: argv.replicaIdentity,
      topicPrefix: argv.topicPrefix,
      partitions: argv.partitions,
      topicSettings: {
        replicationFactor: argv.replicationFactor === undefined ? null : positiveInteger('replication-factor', argv.replicationFactor),
        minInsyncReplicas: argv.minInsyncReplicas === undefined ? null : positiveInteger('min-insync-replicas', argv.minInsyncReplicas),
        retentionMs: argv.retentionMs.trim() === '-1' ? -1 : positiveInteger('retention-ms', argv.retentionMs),
      },
      // No default in the parser, so a given --snapshot can be told from the default.
      snapshot: argv.snapshot ?? 'unsent',
      snapshotExplicit: argv.snapshot !== undefined,
      once: argv.once,
      fromLsn,
      markSent: argv.markSent,
      tombstones: argv.tombstones,
      columns,
      failover: argv.failover,
      retryForMs: retryFor,
      ...(heartbeatIntervalMs === undefined ? {} : { heartbeatIntervalMs }),
      signal: shutdown.stopSignal,
      progressed: health.progressed,
      logger,
    }).finally(() => Promise.all([slotWatch?.stop(), health.close()]));
    console.log(summaryLine(summary));
  }))
  .command('status', 'slot state, lag, captured tables, topic end offsets', (y) =>
    connectionOptions(y)
      .option('slot', { type: 'string', describe: 'one slot (default: every pgoutput slot of the database)' })
      .option('publication', { type: 'string', describe: 'publication (default walbridge_<slot>)' })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
  (argv) => runCommand(async () => {
    if (argv.slot !== undefined) checkSlotName(argv.slot);
    const connections = resolveConnections({ databaseUrl: argv.databaseUrl, kafkaBrokers: argv.kafkaBrokers });
    const kafkaConnection = resolveKafka(connections.kafkaBrokers, argv);
    const logger = createLogger('cdc');
    const client = new pg.Client({ connectionString: connections.databaseUrl });
    await client.connect();
    try {
      const statuses = await slotStatuses(client, argv.slot, (slot) => argv.publication ?? defaultPublication(slot));
      // The slot's facts come from PostgreSQL: an unreachable Kafka only blanks the topics' offsets.
      const kafkaFailure = await checkKafkaReachable(kafkaConnection).then(() => null, (error: Error) => error);
      const kafkaError = kafkaFailure?.message ?? null;
      const kafka = createKafka(kafkaConnection, 'walbridge-cdc-status', logger);
      const topicOf = (table: string) => {
        const { schema, table: name } = parseTableName(table);
        return topicName(argv.topicPrefix, schema, name);
      };
      const warnings = kafkaError === null ? await checkTopics(kafka, statuses.flatMap((s) => (s.publicationTables ?? []).map(topicOf))) : null;
      const report = [];
      for (const status of statuses) {
        const topics = [];
        for (const table of status.publicationTables ?? []) {
          const topic = topicOf(table);
          const offsets = kafkaError === null ? await topicOffsets(kafka, topic) : null;
          topics.push({
            table, topic,
            endOffsets: offsets?.map((o) => ({ partition: o.partition, high: o.high.toString() })) ?? null,
            warnings: warnings?.get(topic) ?? null,
          });
        }
        report.push({ ...status, topics });
      }
      if (argv.json) {
        console.log(JSON.stringify(report, null, 2)); // endOffsets null: Kafka unreachable (said on stderr)
      } else if (report.length === 0) {
        console.log('no pgoutput slots in this database');
      } else {
        for (const s of report) {
          const holder = s.active ? `active (held by PostgreSQL walsender PID ${s.activePid}, a server process serving the client)` : 'inactive';
          console.log(`slot ${s.slot}: ${holder}; confirmed ${s.confirmedFlushLsn ?? '-'}, restart ${s.restartLsn ?? '-'}, lag ${s.lagBytes ?? '-'} bytes${s.failover === null ? '' : `; failover ${s.failover ? 'on' : 'off'}`}${s.snapshotPending ? `; initial snapshot unfinished (--snapshot ${s.snapshotPending}, resumed on the next start)` : ''}`);
          for (const i of s.incrementalSnapshots) console.log(`  incremental snapshot of ${i.table} (--snapshot ${i.mode}): ${i.state}, ${i.chunks} chunks, ${i.rows} rows sent`);
          console.log(`  publication ${s.publication}: ${s.publicationTables === null ? 'missing' : `${s.publicationTables.length} captured table${s.publicationTables.length === 1 ? '' : 's'}`}`);
          for (const t of s.topics) {
            console.log(`  table ${t.table} → topic ${t.topic}: ${t.endOffsets === null ? 'offsets unknown (Kafka unreachable)' : t.endOffsets.length ? t.endOffsets.map((o) => `p${o.partition}=${o.high}`).join(' ') : 'missing'}`);
            for (const warning of t.warnings ?? []) console.log(`    warning: ${warning}`);
          }
        }
      }
      if (kafkaFailure !== null) {
        process.stderr.write(`error: ${kafkaFailure.message}\n`);
        // A refused connection, login or certificate is the settings' to fix; a timeout may pass.
        return kafkaFailure instanceof ConfigError ? EXIT_CONFIG : EXIT_RUNTIME;
      }
    } finally {
      await client.end();
    }
  }))
  .command('snapshot', 'incremental snapshot of tables of an existing slot, read in chunks while the stream goes on (PostgreSQL 14+)', (y) =>
    connectionOptions(y)
      .option('slot', { type: 'string', demandOption: true })
      .option('publication', { type: 'string', describe: 'publication (default walbridge_<slot>); a table it lacks is added' })
      .option('table', { type: 'string', array: true, demandOption: true, describe: 'table to snapshot, schema.table (repeatable)' })
      .option('snapshot', { choices: ['all', 'unsent'] as const, default: 'all' as const, describe: 'all rows, or those with sent_to_kafka = false' }),
  (argv) => runCommand(async () => {
    checkSlotName(argv.slot);
    const connections = resolveConnections({ databaseUrl: argv.databaseUrl, kafkaBrokers: argv.kafkaBrokers });
    const requested = await requestIncrementalSnapshots({
      databaseUrl: connections.databaseUrl,
      slot: argv.slot,
      publication: argv.publication ?? defaultPublication(argv.slot),
      tables: tableList(argv.table).map(parseTableName),
      mode: argv.snapshot,
      logger: createLogger('cdc'),
    });
    for (const r of requested) {
      console.log(
        `requested an incremental snapshot (--snapshot ${argv.snapshot}${r.readsEveryRow ? ': no sent_to_kafka column, every row' : ''}) of ${r.table} for slot ${argv.slot}` +
          `${r.addedToPublication ? ', added to the publication' : ''}; a running cdc whose --table selection includes it picks it up within seconds, or the next cdc start does`,
      );
    }
  }))
  .command('drop', 'drop the slot, its publication and replication origins (not the topics)', (y) =>
    connectionOptions(y)
      .option('slot', { type: 'string', demandOption: true })
      .option('publication', { type: 'string', describe: 'publication (default walbridge_<slot>)' })
      .option('yes', { type: 'boolean', default: false, describe: 'really drop' }),
  (argv) => runCommand(async () => {
    checkSlotName(argv.slot);
    const publication = argv.publication ?? defaultPublication(argv.slot);
    if (!argv.yes) {
      throw new ConfigError(`this drops slot ${argv.slot} (its position: a later start re-snapshots), publication ${publication} and walbridge's replication origins; add --yes to do it`);
    }
    const connections = resolveConnections({ databaseUrl: argv.databaseUrl, kafkaBrokers: argv.kafkaBrokers });
    const client = new pg.Client({ connectionString: connections.databaseUrl });
    await client.connect();
    try {
      const dropped = await dropCapture(client, argv.slot, publication);
      await dropRequests(client, argv.slot);
      console.log(
        `dropped: slot ${argv.slot} ${dropped.slot ? 'dropped' : 'did not exist'}; publication ${publication} ${dropped.publication ? 'dropped' : 'did not exist'}; ` +
          `origins ${dropped.origins.join(', ') || 'none'}`,
      );
    } finally {
      await client.end();
    }
  }))
  .demandCommand(1, 'name a command: start, status, snapshot or drop')
  .strict()
  .help()
  .fail(usageFailure('cdc'))
  .parseAsync();
