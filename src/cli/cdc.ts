#!/usr/bin/env node
/**
 * `cdc`: the PostgreSQL → Kafka half of walbridge.
 *   cdc start --slot user_logins [--once]   stream changes (pgoutput) to Kafka
 *   cdc status [--slot X] [--json]          slots, lag, publication, topic offsets
 *   cdc snapshot --slot X --table T         incremental snapshot of a table, while cdc streams
 *   cdc drop --slot X --yes                 remove the slot, publication, origins
 */
import pg from 'pg';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { topicName } from '../core/envelope.js';
import { ConfigError, EXIT_RUNTIME } from '../core/exit-codes.js';
import { parseLsn } from '../core/lsn.js';
import { resolveConnections } from '../config/connections.js';
import { parseTableName } from '../config/table-name.js';
import { createKafka } from '../kafka/client.js';
import { topicOffsets } from '../kafka/topics.js';
import { createLogger } from '../observability/logger.js';
import { runCapture } from '../cdc/run.js';
import { requestIncrementalSnapshots } from '../cdc/request-snapshot.js';
import { dropRequests } from '../cdc/postgres/snapshot-requests.js';
import { installShutdown } from '../core/shutdown.js';
import { checkSlotName } from '../cdc/postgres/slot.js';
import { dropCapture, slotStatuses } from '../cdc/postgres/status.js';
import { summaryLine } from './cdc-summary.js';
import { runCommand, usageFailure } from './run-command.js';

const defaultPublication = (slot: string): string => `walbridge_${slot}`;

const cli = yargs(hideBin(process.argv))
  .scriptName('cdc')
  .option('database-url', { type: 'string', describe: 'PostgreSQL URL (env DATABASE_URL)' })
  .option('kafka-brokers', { type: 'string', describe: 'host:port[,host:port] (env KAFKA_BROKERS)' })
  .option('topic-prefix', { type: 'string', default: 'walbridge', describe: 'topics are <prefix>.<schema>.<table>' })
  .command('start', 'stream the table\'s changes to Kafka; marks sent_to_kafka; resumes from the slot', (y) =>
    y
      .option('slot', { type: 'string', demandOption: true, describe: 'replication slot (created when missing, with an initial snapshot)' })
      .option('publication', { type: 'string', describe: 'publication (default walbridge_<slot>; created when missing)' })
      .option('table', { type: 'string', default: 'public.user_logins', describe: 'captured table, schema.table' })
      .option('partitions', { type: 'number', default: 1, describe: 'partitions of a topic created by cdc' })
      .option('snapshot', { choices: ['unsent', 'all', 'none'] as const, describe: 'initial load when the slot is created (default unsent; give it to recreate a lost slot)' })
      .option('once', { type: 'boolean', default: false, describe: 'drain what was committed before the start, then exit' })
      .option('from-lsn', { type: 'string', describe: 'skip ahead: start at this LSN (not before the slot\'s confirmed LSN)' })
      .option('mark-sent', { type: 'boolean', default: true, describe: 'set sent_to_kafka = true after Kafka acknowledged (--no-mark-sent to skip)' }),
  )
  .command('status', 'slot state, lag, publication tables, topic end offsets', (y) =>
    y
      .option('slot', { type: 'string', describe: 'one slot (default: every pgoutput slot of the database)' })
      .option('publication', { type: 'string', describe: 'publication (default walbridge_<slot>)' })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
  )
  .command('snapshot', 'incremental snapshot of tables of an existing slot, read in chunks while the stream goes on (PostgreSQL 14+)', (y) =>
    y
      .option('slot', { type: 'string', demandOption: true })
      .option('publication', { type: 'string', describe: 'publication (default walbridge_<slot>); a table it lacks is added' })
      .option('table', { type: 'string', array: true, demandOption: true, describe: 'table to snapshot, schema.table (repeatable)' })
      .option('snapshot', { choices: ['all', 'unsent'] as const, default: 'all' as const, describe: 'all rows, or those with sent_to_kafka = false' }),
  )
  .command('drop', 'drop the slot, its publication and replication origins (not the topics)', (y) =>
    y
      .option('slot', { type: 'string', demandOption: true })
      .option('publication', { type: 'string', describe: 'publication (default walbridge_<slot>)' })
      .option('yes', { type: 'boolean', default: false, describe: 'really drop' }),
  )
  .demandCommand(1)
  .strict()
  .help()
  .fail(usageFailure('cdc'));

const argv = await cli.parseAsync();
const command = String(argv._[0]);

await runCommand(async () => {
  const connections = resolveConnections({ databaseUrl: argv.databaseUrl, kafkaBrokers: argv.kafkaBrokers });
  const logger = createLogger('cdc');
  if (command === 'start') {
    const a = argv as typeof argv & { slot: string; publication?: string; table: string; partitions: number; snapshot?: 'unsent' | 'all' | 'none'; once: boolean; fromLsn?: string; markSent: boolean };
    checkSlotName(a.slot);
    if (!Number.isInteger(a.partitions) || a.partitions < 1) throw new ConfigError(`--partitions must be a positive integer, got ${a.partitions}`);
    let fromLsn = null;
    if (a.fromLsn !== undefined) {
      try {
        fromLsn = parseLsn(a.fromLsn);
      } catch (error) {
        throw new ConfigError(`--from-lsn: ${(error as Error).message}`);
      }
    }
    const shutdown = installShutdown(logger);
    // A second signal exits at once: nothing undelivered was confirmed.
    shutdown.abortSignal.addEventListener('abort', () => process.exit(EXIT_RUNTIME));
    const summary = await runCapture({
      databaseUrl: connections.databaseUrl,
      kafkaBrokers: connections.kafkaBrokers,
      slot: a.slot,
      publication: a.publication ?? defaultPublication(a.slot),
      table: parseTableName(a.table),
      topicPrefix: a.topicPrefix,
      partitions: a.partitions,
      // No default in the parser, so a given --snapshot can be told from the default.
      snapshot: a.snapshot ?? 'unsent',
      snapshotExplicit: a.snapshot !== undefined,
      once: a.once,
      fromLsn,
      markSent: a.markSent,
      signal: shutdown.stopSignal,
      logger,
    });
    console.log(summaryLine(summary));
  } else if (command === 'status') {
    const a = argv as typeof argv & { slot?: string; publication?: string; json: boolean };
    const client = new pg.Client({ connectionString: connections.databaseUrl });
    await client.connect();
    try {
      const statuses = await slotStatuses(client, a.slot, (slot) => a.publication ?? defaultPublication(slot));
      const kafka = createKafka(connections.kafkaBrokers, 'walbridge-cdc-status', logger);
      const report = [];
      for (const status of statuses) {
        const topics = [];
        for (const table of status.publicationTables ?? []) {
          const [schema = '', name = ''] = table.split('.');
          const topic = topicName(a.topicPrefix, schema, name);
          const offsets = await topicOffsets(kafka, topic);
          topics.push({ topic, endOffsets: offsets.map((o) => ({ partition: o.partition, high: o.high.toString() })) });
        }
        report.push({ ...status, topics });
      }
      if (a.json) {
        console.log(JSON.stringify(report, null, 2));
      } else if (report.length === 0) {
        console.log('no pgoutput slots in this database');
      } else {
        for (const s of report) {
          console.log(`slot ${s.slot}: ${s.active ? `active (PID ${s.activePid})` : 'inactive'}; confirmed ${s.confirmedFlushLsn ?? '-'}, restart ${s.restartLsn ?? '-'}, lag ${s.lagBytes ?? '-'} bytes${s.snapshotPending ? `; initial snapshot unfinished (--snapshot ${s.snapshotPending}, resumed on the next start)` : ''}`);
          console.log(`  publication ${s.publication}: ${s.publicationTables === null ? 'missing' : s.publicationTables.join(', ') || 'no tables'}`);
          for (const t of s.topics) console.log(`  topic ${t.topic}: ${t.endOffsets.length ? t.endOffsets.map((o) => `p${o.partition}=${o.high}`).join(' ') : 'missing'}`);
        }
      }
    } finally {
      await client.end();
    }
  } else if (command === 'snapshot') {
    const a = argv as typeof argv & { slot: string; publication?: string; table: string[]; snapshot: 'all' | 'unsent' };
    checkSlotName(a.slot);
    const requested = await requestIncrementalSnapshots({
      databaseUrl: connections.databaseUrl,
      slot: a.slot,
      publication: a.publication ?? defaultPublication(a.slot),
      tables: a.table.map(parseTableName),
      mode: a.snapshot,
      logger,
    });
    for (const r of requested) {
      console.log(
        `requested an incremental snapshot (--snapshot ${a.snapshot}${r.readsEveryRow ? ': no sent_to_kafka column, every row' : ''}) of ${r.table} for slot ${a.slot}` +
          `${r.addedToPublication ? ', added to the publication' : ''}; the running cdc picks it up within seconds, or the next cdc start does`,
      );
    }
  } else if (command === 'drop') {
    const a = argv as typeof argv & { slot: string; publication?: string; yes: boolean };
    checkSlotName(a.slot);
    const publication = a.publication ?? defaultPublication(a.slot);
    if (!a.yes) {
      throw new ConfigError(`this drops slot ${a.slot} (its position: a later start re-snapshots), publication ${publication} and walbridge's replication origins; add --yes to do it`);
    }
    const client = new pg.Client({ connectionString: connections.databaseUrl });
    await client.connect();
    try {
      const dropped = await dropCapture(client, a.slot, publication);
      await dropRequests(client, a.slot);
      console.log(
        `dropped: slot ${a.slot} ${dropped.slot ? 'dropped' : 'did not exist'}; publication ${publication} ${dropped.publication ? 'dropped' : 'did not exist'}; ` +
          `origins ${dropped.origins.join(', ') || 'none'}`,
      );
    } finally {
      await client.end();
    }
  }
});
