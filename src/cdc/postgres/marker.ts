/**
 * The `sent_to_kafka` follow-up (docs/design.md, "sent_to_kafka"): after Kafka acknowledged a
 * batch, one UPDATE flags its rows, in a session set up with walbridge's own
 * replication origin (`walbridge_<slot>`). pgoutput then sends an Origin
 * message in those transactions and the listener skips them, so the marking
 * never comes back as a change (no feedback loop).
 *
 * Row locks: the UPDATE waits at most LOCK_TIMEOUT_MS for a row another
 * session holds (SELECT … FOR UPDATE, an open transaction that changed it).
 * Then it logs who holds it (pg_blocking_pids, with each holder's
 * application_name, state, transaction start and query, seen from a second
 * session while the UPDATE waits again) and retries, for as long as it
 * takes: confirmation waits meanwhile, so nothing is confirmed unmarked, and
 * the wait is never silent.
 *
 * Visibility: the stream can hand over a committed transaction before other
 * sessions see it (visibility.ts), for long enough that Kafka acknowledged
 * its rows. An UPDATE in that moment finds nothing for an inserted row and
 * silently leaves it unmarked. So a marking first reads the current
 * snapshot, again until every transaction that wrote its rows (`writers`) is
 * visible in it (a moment, normally; with synchronous replication, as long
 * as a standby takes to answer); the UPDATEs after it see them too.
 *
 * Grants a non-superuser role needs (the local stack's bootstrap gives them):
 * EXECUTE on MARKER_FUNCTIONS below, and UPDATE on the table's sent_to_kafka
 * column. (The snapshot flag and `cdc drop` also need
 * pg_replication_origin_drop(text): snapshot-flag.ts.)
 */
import pg from 'pg';
import type { Logger } from '../../observability/logger.js';
import { qualifiedName, type CapturedTable } from './table.js';
import { awaitVisible } from './visibility.js';

/** Per table, the primary keys (each as its columns' texts, in key order) of rows to flag. */
export type MarkKeys = Map<CapturedTable, string[][]>;

/**
 * Contract: `mark` resolves once the UPDATEs for those primary keys have
 * committed, one per table (rows already flagged are left alone), each with
 * a snapshot that sees every transaction in `writers` (the streamed
 * transactions that wrote those rows, by xid). The caller serializes calls;
 * a rejection leaves the flags unknown and must stop confirmation.
 */
export interface Marker {
  mark(keys: MarkKeys, writers: ReadonlySet<number>): Promise<void>;
  close(): Promise<void>;
}

/** The replication-origin functions `openMarker` calls (preflight checks exactly these). */
export const MARKER_FUNCTIONS = ['pg_replication_origin_create(text)', 'pg_replication_origin_oid(text)', 'pg_replication_origin_session_setup(text)'];

export function originName(slot: string): string {
  return `walbridge_${slot}`;
}

/** SQLSTATE 55006: the origin is still held by a backend (e.g. of a process killed a moment ago). */
const OBJECT_IN_USE = '55006';
/** A user's transaction may lock the same rows in another order: the UPDATE is idempotent, so retry it. */
const RETRYABLE = new Set(['40P01', '40001']);
const MARK_ATTEMPTS = 5;
const SETUP_PATIENCE_MS = 15_000;
/** SQLSTATE 55P03: lock_timeout expired. */
const LOCK_NOT_AVAILABLE = '55P03';
export const LOCK_TIMEOUT_MS = 5_000;
/** How long into the UPDATE's next wait the blockers are looked up (it is waiting by then). */
const BLOCKERS_LOOKUP_DELAY_MS = 250;
const SNAPSHOT_QUERY = { name: 'walbridge_mark_snapshot', text: 'SELECT pg_current_snapshot()::text AS snapshot' };

/** A session holding a lock the marker waits for. */
interface Blocker {
  pid: number;
  application_name: string;
  state: string | null;
  xact_start: string | null;
  query: string;
}

/** `onLost`: the session broke while idle (a server restart); the caller restarts its run. */
export async function openMarker(databaseUrl: string, slot: string, logger: Logger, onLost: (error: Error) => void): Promise<Marker> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: `walbridge-marker-${slot}` });
  client.on('error', onLost);
  await client.connect();
  try {
    const origin = originName(slot);
    const exists = await client.query('SELECT pg_replication_origin_oid($1) AS oid', [origin]);
    if (exists.rows[0]?.oid === null) {
      await client.query('SELECT pg_replication_origin_create($1)', [origin]).catch((error: { code?: string }) => {
        if (error.code !== '23505' && error.code !== '42710') throw error; // created meanwhile by another process
      });
    }
    await setupSession(client, origin, logger);
    await client.query(`SET lock_timeout = ${LOCK_TIMEOUT_MS}`);
  } catch (error) {
    await client.end();
    throw error;
  }
  const blockers = blockerLookup(databaseUrl, slot, client);
  const statements = new Map<CapturedTable, { name: string; text: string }>();
  const statementOf = (table: CapturedTable): { name: string; text: string } => {
    let statement = statements.get(table);
    if (!statement) {
      statement = { name: `walbridge_mark_sent_${statements.size}`, text: markStatement(client, table) };
      statements.set(table, statement);
    }
    return statement;
  };
  const readSnapshot = async (): Promise<string> => (await client.query<{ snapshot: string }>(SNAPSHOT_QUERY)).rows[0]!.snapshot;
  const reportInvisible = (unseen: number[], waitedMs: number): void =>
    logger.warn({ xids: unseen.slice(0, 10), waitedMs },
      `marking sent_to_kafka waits for ${unseen.length} streamed transaction(s) to become visible to other sessions ` +
        '(committed, not yet out of the running set: a backend stuck in its commit, or a synchronous standby not answering); nothing after them is confirmed until then');
  /** One table's UPDATE, retried through lock waits and deadlocks. */
  const execute = async (table: CapturedTable, values: string[][]): Promise<void> => {
    const statement = statementOf(table);
    const update = (): Promise<unknown> => client.query({ ...statement, values });
    let pending = update();
    let lockWaitSince: number | null = null;
    for (let attempt = 1; ; attempt++) {
      try {
        await pending;
        if (lockWaitSince !== null) logger.info({ table: table.qualified, waitedMs: Date.now() - lockWaitSince }, 'marking sent_to_kafka: the row lock was released; marked');
        return;
      } catch (error) {
        const err = error as { code?: string; message: string };
        if (err.code === LOCK_NOT_AVAILABLE) {
          lockWaitSince ??= Date.now() - LOCK_TIMEOUT_MS;
          pending = update();
          pending.catch(() => {}); // awaited on the next turn
          const holders = await blockers.during(pending);
          logger.warn(
            { table: table.qualified, waitedMs: Date.now() - lockWaitSince, blockingPids: holders?.map((b) => b.pid) ?? null, blockers: holders },
            `marking sent_to_kafka on ${table.qualified} waits for a row lock (lock_timeout ${LOCK_TIMEOUT_MS / 1000}s) held by ${describeBlockers(holders)}; ` +
              'retrying; nothing after these rows is confirmed until they are marked',
          );
          attempt = 0;
          continue;
        }
        if (!RETRYABLE.has(err.code ?? '') || attempt >= MARK_ATTEMPTS) throw error;
        logger.warn({ attempt, table: table.qualified, reason: err.message }, 'marking sent_to_kafka: retrying');
        pending = update();
      }
    }
  };
  return {
    mark: async (keys, writers) => {
      if (writers.size > 0) await awaitVisible(readSnapshot, writers, reportInvisible);
      for (const [table, rows] of keys) {
        if (rows.length === 0) continue;
        // One array parameter per key column: column i of every key.
        await execute(table, table.primaryKey.map((_, i) => rows.map((row) => row[i]!)));
      }
    },
    close: async () => {
      await blockers.close();
      await client.end();
    },
  };
}

/**
 * Who blocks the marker's session, asked from a second session (opened on
 * the first lock wait) while the marker's UPDATE waits: the waiting session
 * itself is busy. null when the lookup failed or the UPDATE finished first.
 */
function blockerLookup(databaseUrl: string, slot: string, marker: pg.Client): { during(waiting: Promise<unknown>): Promise<Blocker[] | null>; close(): Promise<void> } {
  let observer: Promise<pg.Client> | null = null;
  const markerPid = (marker as unknown as { processID: number | null }).processID;
  const open = async (): Promise<pg.Client> => {
    const client = new pg.Client({ connectionString: databaseUrl, application_name: `walbridge-marker-watch-${slot}` });
    client.on('error', () => {
      observer = null; // the next lookup opens a new session; this one is ended
      client.end().catch(() => {});
    });
    await client.connect();
    return client;
  };
  return {
    during: async (waiting) => {
      const finished = await Promise.race([
        waiting.then(() => true, () => true),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), BLOCKERS_LOOKUP_DELAY_MS)),
      ]);
      if (finished || markerPid === null) return null;
      try {
        observer ??= open();
        const { rows } = await (await observer).query<Blocker>(
          `SELECT pid, application_name, state, xact_start::text AS xact_start, left(query, 200) AS query
             FROM pg_stat_activity WHERE pid = ANY (pg_blocking_pids($1)) ORDER BY pid`, [markerPid]);
        return rows;
      } catch {
        observer = null;
        return null;
      }
    },
    close: async () => {
      if (observer) await (await observer.catch(() => null))?.end().catch(() => {});
    },
  };
}

function describeBlockers(blockers: Blocker[] | null): string {
  if (blockers === null) return 'another session (the lock was released meanwhile, or the lookup failed)';
  if (blockers.length === 0) return 'another session (released meanwhile)';
  return blockers
    .map((b) => `PID ${b.pid} (application_name '${b.application_name}', ${b.state ?? 'state unknown'}, transaction started ${b.xact_start ?? '-'}; last query: ${b.query.replace(/\s+/g, ' ')})`)
    .join(', ');
}

/** `UPDATE … SET sent_to_kafka = true` for the rows whose keys come as one array per key column. */
function markStatement(client: pg.Client, table: CapturedTable): string {
  const flag = client.escapeIdentifier(table.sentFlag ?? 'sent_to_kafka');
  const columns = table.primaryKey.map((column) => client.escapeIdentifier(column));
  if (columns.length === 1) {
    return `UPDATE ${qualifiedName(client, table)} SET ${flag} = true WHERE ${columns[0]} = ANY($1::${table.primaryKeyTypes[0]}[]) AND ${flag} = false`;
  }
  const arrays = table.primaryKeyTypes.map((type, i) => `$${i + 1}::${type}[]`).join(', ');
  const join = columns.map((column) => `t.${column} = k.${column}`).join(' AND ');
  return `UPDATE ${qualifiedName(client, table)} AS t SET ${flag} = true FROM unnest(${arrays}) AS k(${columns.join(', ')}) ` +
    `WHERE ${join} AND t.${flag} = false`;
}

async function setupSession(client: pg.Client, origin: string, logger: Logger): Promise<void> {
  const deadline = Date.now() + SETUP_PATIENCE_MS;
  for (;;) {
    try {
      await client.query('SELECT pg_replication_origin_session_setup($1)', [origin]);
      return;
    } catch (error) {
      const err = error as { code?: string; message: string };
      if (err.code !== OBJECT_IN_USE || Date.now() > deadline) throw error;
      logger.info({ origin, reason: err.message }, 'replication origin still held by another session; waiting');
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}
