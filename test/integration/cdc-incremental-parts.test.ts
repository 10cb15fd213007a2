/**
 * The incremental snapshot's pieces against a real PostgreSQL: watermarks
 * through a real pgoutput stream, keyset chunk reads over a composite key,
 * the durable requests, and the whole merge (window + driver + stream) under
 * concurrent writes, stopped and resumed halfway, folded per key as the sink
 * would (highest version wins) and compared with the table. No Kafka here:
 * delivery is immediate.
 */
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { ChunkWindows } from '../../src/cdc/chunk-window.js';
import { IncrementalSnapshot } from '../../src/cdc/incremental-snapshot.js';
import { Checkpointer } from '../../src/cdc/postgres/checkpointer.js';
import { chunkSource, highestKey, readChunk, waitForRunningTransactions } from '../../src/cdc/postgres/chunk-reader.js';
import { ChangeDecoder, type DecodedChange } from '../../src/cdc/postgres/decode.js';
import { Listener } from '../../src/cdc/postgres/listener.js';
import type { LogicalMessage } from '../../src/cdc/postgres/pgoutput-reader.js';
import { ensurePublication } from '../../src/cdc/postgres/publication.js';
import { readServerVersion } from '../../src/cdc/postgres/server-version.js';
import { createSlot, TEXT_OUTPUT_OPTIONS } from '../../src/cdc/postgres/slot.js';
import { listRequests, recordChunk, finishRequest, requestSnapshot, requestStore } from '../../src/cdc/postgres/snapshot-requests.js';
import { describeTable } from '../../src/cdc/postgres/table.js';
import { emitWatermark, readWatermark, type Watermark } from '../../src/cdc/postgres/watermarks.js';
import { parseLsn, type Lsn } from '../../src/core/lsn.js';
import { createLogger } from '../../src/observability/logger.js';
import { serverMajor, sql, waitFor } from '../support/cdc.js';
import { isolatedServices, serviceUrls, type IsolatedServices } from '../support/services.js';

/** Watermarks travel as pgoutput logical messages, which PostgreSQL 13 does not send (cdc refuses incremental snapshots there). */
const NO_WATERMARKS = (await serverMajor(serviceUrls().databaseUrl)) < 14 && 'pgoutput sends logical messages from PostgreSQL 14 on';

const logger = createLogger('test');
logger.level = 'silent';

async function connect(url: string, options?: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, options });
  await client.connect();
  return client;
}

/** A listener on a fresh slot of `table`, from its consistent point, every event and watermark handed to the callbacks. */
async function stream(url: string, slotLabel: string, tableName: string, onChange: (change: DecodedChange) => void, onMessage: (message: LogicalMessage, version: Lsn) => void) {
  // Slot names are cluster-wide: unique ones, so a run killed before its cleanup cannot block the next.
  const slot = `${slotLabel}_${randomBytes(3).toString('hex')}`;
  const admin = await connect(url);
  const table = await describeTable(admin, { schema: 'public', table: tableName });
  const server = await readServerVersion(admin);
  await ensurePublication(admin, `pub_${slot}`, [table], server);
  await admin.end();
  const created = await createSlot(url, slot, server, { failover: false });
  await created.release();
  const decoder = new ChangeDecoder([table], { topicPrefix: 'test', database: 'db', markSent: false, tombstones: false, missingValues: async () => new Map() });
  const checkpointer = new Checkpointer(created.consistentPoint);
  let pushed = 0;
  const listener = new Listener({
    databaseUrl: url, slot, publication: `pub_${slot}`, ownOrigin: `walbridge_${slot}`, decoder, checkpointer, partitionsOf: () => 1,
    push: (change) => {
      onChange(change);
      checkpointer.submit(1);
      checkpointer.deliveredThrough(++pushed);
    },
    onConfirmed: () => {},
    onFailure: (error) => {
      throw error;
    },
    statusIntervalMs: 500,
    pingOnInterval: true,
    onLogicalMessage: (message, txn) => onMessage(message, txn.finalLsn),
  });
  const running = listener.run(created.consistentPoint);
  await listener.started;
  /** Resolves once the stream has passed everything committed so far. */
  const caughtUp = async (): Promise<void> => {
    const target = parseLsn((await sql(url, 'SELECT pg_current_wal_lsn()::text AS l')).rows[0].l);
    await waitFor('the stream to catch up', async () => (checkpointer.confirmed >= target ? true : undefined), 30_000);
  };
  return { slot, table, decoder, listener, running, caughtUp };
}

describe('incremental snapshot parts (real PostgreSQL)', () => {
  let services: IsolatedServices;
  before(async () => {
    services = await isolatedServices('isnap_parts');
  });
  after(async () => {
    await services.cleanup();
  });

  it('watermarks arrive through pgoutput in commit order among the changes, inside their own transaction', { skip: NO_WATERMARKS }, async () => {
    const url = services.databaseUrl;
    await sql(url, 'CREATE TABLE wm (id int PRIMARY KEY)');
    const seen: string[] = [];
    const versions = new Map<string, Lsn>();
    const s = await stream(url, 'wm', 'wm', (change) => {
      const commit = parseLsn(JSON.parse(change.value!).source.commit_lsn);
      seen.push(`c${change.key}`);
      versions.set(`c${change.key}`, commit);
    }, (message, version) => {
      const watermark = readWatermark(message, 'wm');
      seen.push(watermark ? watermark.kind : `other:${message.prefix}`);
      if (watermark) versions.set(watermark.kind, version);
    });
    const writer = await connect(url);
    const mark = (kind: Watermark['kind']): Watermark => ({ slot: 'wm', run: 'r', table: 'public.wm', chunk: 1, kind });
    await writer.query('INSERT INTO wm VALUES (1)');
    const lowLsn = await emitWatermark(writer, mark('low'));
    await writer.query('INSERT INTO wm VALUES (2)');
    await emitWatermark(writer, { ...mark('high'), slot: 'another_slot' });
    await emitWatermark(writer, mark('high'));
    await writer.query(`SELECT pg_logical_emit_message(false, 'walbridge.snapshot', 'not transactional')`);
    await writer.query('INSERT INTO wm VALUES (3)');
    await writer.end();
    await s.caughtUp();
    await s.listener.stop();
    await s.running;
    assert.deepEqual(seen, ['c{"id":1}', 'low', 'c{"id":2}', 'other:walbridge.snapshot', 'high', 'c{"id":3}']);
    assert.ok(versions.get('low')! >= lowLsn, "the low watermark's version is its transaction's commit LSN, at or after the message");
    assert.ok(versions.get('c{"id":2}')! < versions.get('high')!, 'changes in the window commit before the high watermark');
    assert.ok(versions.get('high')! < versions.get('c{"id":3}')!, 'changes after it commit later');
  });

  it('keyset chunks over a composite key read every row once, in key order, within rows and bytes', async () => {
    const url = services.databaseUrl;
    await sql(url, `CREATE TABLE composite (a int, b text, payload text, sent_to_kafka boolean NOT NULL DEFAULT false, PRIMARY KEY (a, b))`);
    await sql(url, `INSERT INTO composite SELECT g % 7, (ARRAY['x', 'x y', 'it''s', 'ü', ''])[1 + g % 5] || (g / 35)::text, repeat('p', g % 50), g % 3 = 0
                      FROM generate_series(1, 700) g ON CONFLICT DO NOTHING`);
    const client = await connect(url, TEXT_OUTPUT_OPTIONS);
    const table = await describeTable(client, { schema: 'public', table: 'composite' });
    assert.deepEqual(table.primaryKey, ['a', 'b']);
    const readAll = async (maxRows: number, maxBytes: number, unsentOnly: boolean, upTo: string[] | null = null) => {
      const keys: string[] = [];
      let after: string[] | null = null;
      let chunks = 0;
      for (;;) {
        const chunk = await readChunk(client, { table, after, upTo, unsentOnly, maxRows, maxBytes });
        chunks++;
        assert.ok(chunk.rows.length <= maxRows);
        assert.match(chunk.snapshot, /^\d+:\d+:[\d,]*$/, 'the snapshot it read with');
        for (const row of chunk.rows) keys.push(`${row[0]}|${row[1]}`);
        if (chunk.rows.length) assert.deepEqual(chunk.lastKey, [chunk.rows.at(-1)![0], chunk.rows.at(-1)![1]]);
        if (chunk.last) break;
        after = chunk.lastKey ?? after;
        assert.ok(chunks < 10_000, 'chunks advance');
      }
      return { keys, chunks };
    };
    const expected = (await client.query(`SELECT a::text || '|' || b AS k FROM composite ORDER BY a, b`)).rows.map((r) => r.k as string);
    const byRows = await readAll(37, 1 << 20, false);
    assert.deepEqual(byRows.keys, expected);
    assert.equal(byRows.chunks, Math.ceil(expected.length / 37) + (expected.length % 37 === 0 ? 1 : 0));
    const byBytes = await readAll(1000, 200, false);
    assert.deepEqual(byBytes.keys, expected);
    assert.ok(byBytes.chunks > 20, `the bytes bound cuts chunks (${byBytes.chunks})`);
    const unsent = (await client.query(`SELECT a::text || '|' || b AS k FROM composite WHERE NOT sent_to_kafka ORDER BY a, b`)).rows.map((r) => r.k as string);
    assert.ok(unsent.length > 0 && unsent.length < expected.length);
    assert.deepEqual((await readAll(50, 1 << 20, true)).keys, unsent);
    const highest = await highestKey(client, table, false);
    assert.deepEqual(highest, expected.at(-1)!.split('|'));
    assert.deepEqual((await readAll(37, 1 << 20, false, highest)).keys, expected);
    const middle = expected[Math.floor(expected.length / 2)]!;
    assert.deepEqual((await readAll(37, 1 << 20, false, middle.split('|'))).keys, expected.slice(0, Math.floor(expected.length / 2) + 1), 'up to a key, included');
    assert.deepEqual(await highestKey(client, table, true), unsent.at(-1)!.split('|'));
    await client.end();
  });

  it('the first chunk waits for transactions that were running when the request was made', async () => {
    const url = services.databaseUrl;
    await sql(url, 'CREATE TABLE settle (id int PRIMARY KEY)');
    const older = await connect(url);
    await older.query('BEGIN');
    await older.query('INSERT INTO settle VALUES (1)'); // written before the table joins a publication, committed after
    const waiter = await connect(url);
    let settled = false;
    const waiting = waitForRunningTransactions(waiter, () => {}).then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(settled, false, 'still waiting while the older transaction runs');
    const newer = await connect(url);
    await newer.query('BEGIN');
    await newer.query('INSERT INTO settle VALUES (2)'); // started after: not waited for
    await older.query('COMMIT');
    await waiting;
    assert.equal(settled, true);
    await newer.query('ROLLBACK');
    for (const client of [older, waiter, newer]) await client.end();
  });

  it('requests are durable, resumable, and a new request replaces a running one', async () => {
    const client = await connect(services.databaseUrl);
    const table = { schema: 'public', table: 'composite' };
    assert.deepEqual(await listRequests(client, 'req'), []);
    await requestSnapshot(client, 'req', table, 'unsent');
    const [first] = await listRequests(client, 'req');
    assert.equal(first!.state, 'requested');
    assert.equal(first!.lastKey, null);
    assert.equal(await recordChunk(client, first!, ['3', "it's"], 10), true);
    const [resumed] = await listRequests(client, 'req');
    assert.deepEqual([resumed!.state, resumed!.lastKey, resumed!.chunks, resumed!.rows], ['running', ['3', "it's"], 1, 10]);
    await requestSnapshot(client, 'req', table, 'all');
    assert.equal(await recordChunk(client, first!, ['4', 'x'], 10), false, 'the replaced request may not record');
    const [replacement] = await listRequests(client, 'req');
    assert.deepEqual([replacement!.mode, replacement!.lastKey, replacement!.chunks], ['all', null, 0]);
    assert.equal(await finishRequest(client, replacement!), true);
    assert.deepEqual(await listRequests(client, 'req'), []);
    assert.equal((await listRequests(client, 'req', false))[0]!.state, 'done');
    await client.end();
  });

  it('under concurrent writes, stopped and resumed halfway, the snapshot merged with the stream equals the table', { skip: NO_WATERMARKS }, async () => {
    const url = services.databaseUrl;
    const rows = 3000;
    await sql(url, 'CREATE TABLE busy (id int PRIMARY KEY, v int NOT NULL, note text)');
    await sql(url, `INSERT INTO busy SELECT g, 0, md5(g::text) FROM generate_series(1, ${rows}) g`);
    // What the sink keeps per key: the highest version; of equal versions, the later event.
    const folded = new Map<string, { version: Lsn; after: Record<string, unknown> | null }>();
    const fold = (change: DecodedChange): void => {
      const value = JSON.parse(change.value!);
      const version = parseLsn(value.source.commit_lsn);
      const known = folded.get(change.key!);
      if (!known || version >= known.version) folded.set(change.key!, { version, after: value.after });
    };
    let windows: ChunkWindows;
    const snapshotRows: string[] = [];
    const s = await stream(url, 'busy', 'busy', (change) => {
      windows.observe('public.busy', change.key, change.xid);
      fold(change);
    }, (message, version) => {
      const watermark = readWatermark(message, 'busy');
      if (watermark) windows.watermark(watermark, version);
    });
    const reader = await connect(url, TEXT_OUTPUT_OPTIONS);
    const store = await connect(url);
    // Rows changed between the read and the high watermark are where a chunk row turns stale:
    // hold each read back a little so the concurrent writers hit that gap often.
    const source = chunkSource(reader);
    const slowSource = {
      ...source,
      read: async (query: Parameters<typeof source.read>[0]) => {
        const chunk = await source.read(query);
        await new Promise((resolve) => setTimeout(resolve, 30));
        return chunk;
      },
    };
    const driver = () => {
      const run = randomBytes(4).toString('hex');
      windows = new ChunkWindows({
        run,
        encode: (_table, columns, row, version) => s.decoder.snapshotRow(s.decoder.snapshotLayout(s.table, columns), row, { version, txId: null, tsMs: Date.now() }, 'incremental'),
        push: (change) => {
          snapshotRows.push(change.key!);
          fold(change);
        },
      });
      return new IncrementalSnapshot({
        slot: 'busy', run, source: slowSource, store: requestStore(store, 'busy'), windows, delivered: async () => {},
        describe: async () => s.table, chunkRows: 100, chunkBytes: 1 << 20, pollMs: 50, logger,
      });
    };
    await requestSnapshot(store, 'busy', { schema: 'public', table: 'busy' }, 'all');

    // Writers: updates, deletes and inserts all over the key range while the chunks are read.
    let writing = true;
    let writes = 0;
    const writer = async (seed: number): Promise<void> => {
      const client = await connect(url);
      let n = seed;
      while (writing) {
        n = (n * 1103515245 + 12345) % 2147483648;
        const id = 1 + (n % (rows + 200));
        const choice = n % 10;
        if (choice < 7) await client.query('UPDATE busy SET v = v + 1 WHERE id = $1', [id]);
        else if (choice < 9) await client.query('DELETE FROM busy WHERE id = $1', [id]);
        else await client.query('INSERT INTO busy VALUES ($1, 100, $2) ON CONFLICT (id) DO UPDATE SET v = busy.v + 100', [id, `new ${id}`]);
        writes++;
      }
      await client.end();
    };
    const writers = [writer(7), writer(11)];

    const first = driver();
    const firstRun = first.run();
    await waitFor('a few chunks to be recorded', async () => {
      const [request] = await listRequests(store, 'busy');
      return request && request.chunks >= 8 ? true : undefined;
    }, 60_000);
    first.stop();
    await firstRun;
    const [stopped] = await listRequests(store, 'busy');
    assert.ok(stopped && stopped.chunks >= 8 && stopped.state === 'running', 'stopped halfway');

    const second = driver();
    const secondRun = second.run();
    await waitFor('the snapshot to finish', async () => ((await listRequests(store, 'busy')).length === 0 ? true : undefined), 120_000);
    writing = false;
    await Promise.all(writers);
    second.stop();
    await secondRun;
    await s.caughtUp();
    await s.listener.stop();
    await s.running;
    await reader.end();
    await store.end();

    const table = await sql(url, 'SELECT id, v, note FROM busy ORDER BY id');
    const actual = new Map(table.rows.map((r) => [`{"id":${r.id}}`, r]));
    const live = [...folded].filter(([, state]) => state.after !== null);
    const problems: string[] = [];
    for (const [key, state] of live) {
      const row = actual.get(key);
      if (!row) problems.push(`${key} deleted in PostgreSQL but live downstream`);
      else if (row.v !== state.after!.v || row.note !== state.after!.note) problems.push(`${key} stale: ${JSON.stringify(state.after)} vs ${JSON.stringify(row)}`);
    }
    for (const key of actual.keys()) if (!folded.get(key)?.after) problems.push(`${key} missing downstream`);
    assert.deepEqual(problems.slice(0, 10), [], `${problems.length} differences after ${writes} concurrent writes`);
    assert.ok(writes > 200, `writes happened during the snapshot (${writes})`);
    assert.ok(snapshotRows.length >= rows / 2, `the snapshot pushed rows (${snapshotRows.length})`);
  });
});
