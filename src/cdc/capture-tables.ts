/**
 * Setting a captured table up, at the start (`prepare`) and for a table added
 * while running (`adopt`): its REPLICA IDENTITY as chosen, its topic, and the
 * publication with the incremental snapshot requests of tables that join an
 * existing slot.
 */
import type pg from 'pg';
import { topicName } from '../core/envelope.js';
import { ConfigError } from '../core/exit-codes.js';
import type { Kafka } from '../kafka/client.js';
import { partitionCount } from '../kafka/producer.js';
import { checkTopics } from '../kafka/topic-settings.js';
import { ensureTopic } from '../kafka/topics.js';
import type { Logger } from '../observability/logger.js';
import type { PreflightResult, ReplicaIdentityChoice } from './postgres/preflight.js';
import { ensurePublication } from './postgres/publication.js';
import { requestSnapshot } from './postgres/snapshot-requests.js';
import { describeTable, qualifiedName, type CapturedTable } from './postgres/table.js';
import { supportsWatermarks, WATERMARKS_MAJOR } from './postgres/watermarks.js';
import type { CaptureOptions, Run } from './run.js';

/**
 * `--replica-identity full`: sets FULL where it is not. Preflight refuses a
 * table the role does not own at the start; a table adopted while running is
 * warned about instead (stopping a running cdc for it would help nobody: an
 * update leaving a TOASTed value unchanged stops it later, with the fix).
 */
export async function applyReplicaIdentity(admin: pg.Client, table: CapturedTable, choice: ReplicaIdentityChoice, logger: Logger): Promise<void> {
  if (choice !== 'full' || table.replicaIdentity === 'f') return;
  const statement = `ALTER TABLE ${qualifiedName(admin, table)} REPLICA IDENTITY FULL`;
  if (!table.owned) {
    logger.warn({ table: table.qualified }, `not the owner: cannot set REPLICA IDENTITY FULL (as its owner: ${statement})`);
    return;
  }
  await admin.query(statement);
  logger.info({ table: table.qualified }, 'set REPLICA IDENTITY FULL, so updates carry unchanged TOAST values (in the old row); --replica-identity keep leaves it');
}

/**
 * Creates the topic when missing, with the chosen settings (logged), and
 * returns its partition count (a truncate goes to each).
 */
export async function openTopic(kafka: Kafka, topic: string, options: CaptureOptions, logger: Logger): Promise<number> {
  const created = await ensureTopic(kafka, topic, options.partitions, options.topicSettings);
  if (created) {
    logger.info({ topic, partitions: options.partitions, ...created },
      `created topic ${topic}: replication factor ${created.replicationFactor}, min.insync.replicas ${created.minInsyncReplicas}, ` +
      `retention.ms ${created.retentionMs}${created.retentionMs < 0 ? ' (keeps every message)' : ''}`);
  }
  return partitionCount(kafka, topic);
}

/** Logs what could lose or under-protect messages on these topics (topic-settings.ts), each with its fix. */
export async function warnAboutTopics(kafka: Kafka, topics: readonly string[], logger: Logger): Promise<void> {
  for (const [topic, warnings] of await checkTopics(kafka, topics)) {
    for (const warning of warnings) logger.warn({ topic }, warning);
  }
}

/**
 * The publication, and for each table it lacked on an existing slot (whose
 * initial snapshot is long done) an incremental snapshot request, in one
 * transaction: a table is never in the publication without its request.
 * A new slot's initial snapshot reads every table, so it needs none.
 */
export async function publishAndRequest(options: CaptureOptions, admin: pg.Client, checked: PreflightResult): Promise<{ created: boolean; added: CapturedTable[] }> {
  const requesting = checked.slot !== null && options.snapshot !== 'none';
  await admin.query('BEGIN');
  try {
    const publication = await ensurePublication(admin, options.publication, checked.tables, checked.server);
    if (requesting && publication.added.length > 0) {
      if (!supportsWatermarks(checked.server)) {
        throw new ConfigError(
          `${publication.added.map((t) => t.qualified).join(', ')} would join the existing slot ${options.slot}, and their rows need an incremental snapshot, ` +
            `which needs PostgreSQL ${WATERMARKS_MAJOR} or later (this server is ${checked.server.text}). ` +
            `Pass --snapshot none to capture only their changes from now on, or start a new slot for them`,
        );
      }
      for (const table of publication.added) await requestSnapshot(admin, options.slot, table, options.snapshot === 'all' ? 'all' : 'unsent');
    }
    await admin.query('COMMIT');
    return publication;
  } catch (error) {
    await admin.query('ROLLBACK').catch(() => {});
    throw error;
  }
}

/**
 * The captured table of that name; one of the selection that the run does
 * not capture yet (`cdc snapshot` added it to the publication while running)
 * is set up as `prepare` does, then decoded from its next change on.
 */
export async function adopt(run: Run, name: { schema: string; table: string }): Promise<CapturedTable> {
  const known = run.decoder.captured.find((t) => t.schema === name.schema && t.table === name.table);
  if (known) return known;
  const table = await describeTable(run.admin, name);
  await applyReplicaIdentity(run.admin, table, run.options.replicaIdentity, run.logger);
  const topic = topicName(run.options.topicPrefix, table.schema, table.table);
  run.partitions.set(table, await openTopic(run.kafka, topic, run.options, run.logger));
  await warnAboutTopics(run.kafka, [topic], run.logger);
  run.decoder.capture(table);
  run.logger.info({ table: table.qualified, topic }, 'capturing a table added while running');
  return table;
}
