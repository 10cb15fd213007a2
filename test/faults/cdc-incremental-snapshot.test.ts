/**
 * Issue 9, on demand: `cdc snapshot --table user_logins` while cdc streams
 * under write load re-reads the table in chunks without a new slot and
 * without pausing the stream; kill -9 during it, restart: it resumes after
 * the last delivered chunk, and ClickHouse ends EQUAL to PostgreSQL.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { parseLsn } from '../../src/core/lsn.js';
import { cliEnv, runCli, startCli, type RunningCli } from '../support/cli.js';
import { readTopic, slotRow, sql, waitFor } from '../support/cdc.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

const ROWS = 100_000;
const SLOT = 'isnap';

/** Largest gap (ms) between consecutive timestamps within [from, to). */
function largestGap(timestamps: number[], from: number, to: number): number {
  const inside = timestamps.filter((t) => t >= from && t < to).sort((a, b) => a - b);
  let gap = 0;
  for (let i = 1; i < inside.length; i++) gap = Math.max(gap, inside[i]! - inside[i - 1]!);
  return gap;
}

describe('incremental snapshot under write load, with kill -9', () => {
  let services: IsolatedServices;
  let cdc: RunningCli | null = null;
  before(async () => {
    services = await isolatedServices('cdc_isnap');
    const migrated = await runCli('migrate', [], cliEnv(services));
    assert.equal(migrated.code, 0, migrated.stderr);
    // Already sent once (the flag says so): the initial snapshot sends none of them; only the incremental one can.
    await sql(services.databaseUrl, `INSERT INTO user_logins (username, event_type, event_time, sent_to_kafka)
      SELECT 'user' || g, 'login', timestamp '2024-01-01' + g * interval '1 second', true FROM generate_series(1, ${ROWS}) g`);
  });
  after(async () => {
    if (cdc && cdc.child.exitCode === null) cdc.child.kill('SIGKILL');
    await services.cleanup();
  });

  it('re-snapshots the table in chunks while streaming; resumes after kill -9; ends EQUAL', async (t) => {
    const env = { ...cliEnv(services), LOG_LEVEL: 'info' };
    const args = ['start', '--slot', SLOT, '--topic-prefix', services.topicPrefix];
    const topic = `${services.topicPrefix}.public.user_logins`;
    const slots = async () => (await sql(services.databaseUrl, 'SELECT slot_name FROM pg_replication_slots WHERE database = current_database()')).rows.map((r) => r.slot_name);
    cdc = startCli('cdc', args, env);
    await waitFor('the slot to be active', async () => ((await slotRow(services.databaseUrl, SLOT))?.active_pid ? true : undefined));
    const slotBefore = await slotRow(services.databaseUrl, SLOT);

    // The write load: a transaction every few ms, updates, inserts and deletes all over the key range.
    let writing = true;
    let writes = 0;
    const writer = (async () => {
      const client = new pg.Client({ connectionString: services.databaseUrl });
      await client.connect();
      let n = 42;
      while (writing) {
        n = (n * 1103515245 + 12345) % 2147483648;
        const id = 1 + (n % ROWS);
        const choice = n % 10;
        if (choice < 6) await client.query(`UPDATE user_logins SET event_type = 'w' || $2::text WHERE id = $1`, [id, writes]);
        else if (choice < 8) await client.query('DELETE FROM user_logins WHERE id = $1', [id]);
        else await client.query(`INSERT INTO user_logins (username, event_type, event_time) VALUES ('new' || $1::text, 'register', now())`, [writes]);
        writes++;
        await new Promise((resolve) => setTimeout(resolve, 3));
      }
      await client.end();
    })();

    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const requestedAt = Date.now();
    const requested = await runCli('cdc', ['snapshot', '--slot', SLOT, '--table', 'public.user_logins'], cliEnv(services));
    assert.equal(requested.code, 0, requested.stderr);
    assert.match(requested.stdout, /requested an incremental snapshot \(--snapshot all\) of public\.user_logins for slot isnap/);

    const progress = async () =>
      (await sql(services.databaseUrl, `SELECT state, chunks FROM walbridge_snapshot_requests WHERE slot = $1`, [SLOT])).rows[0] as { state: string; chunks: number } | undefined;
    const chunksAtKill = await waitFor('a few chunks to be delivered', async () => {
      const p = await progress();
      return p && p.chunks >= 5 ? p.chunks : undefined;
    }, 60_000);
    cdc.child.kill('SIGKILL');
    const killed = await cdc.exited;
    const killedAt = Date.now();
    assert.equal(killed.signal, 'SIGKILL');
    assert.notEqual((await progress())!.state, 'done', 'killed during the snapshot');

    cdc = startCli('cdc', args, env);
    const restartedAt = Date.now();
    await waitFor('the snapshot to finish', async () => ((await progress())?.state === 'done' ? true : undefined), 120_000);
    const doneAt = Date.now();
    writing = false;
    await writer;
    const written = parseLsn((await sql(services.databaseUrl, 'SELECT pg_current_wal_lsn()::text AS l')).rows[0].l);
    await waitFor('cdc to confirm everything', async () => (parseLsn((await slotRow(services.databaseUrl, SLOT))!.confirmed_flush_lsn) >= written ? true : undefined), 60_000);
    cdc.child.kill('SIGINT');
    const second = await cdc.exited;
    assert.equal(second.code, 0, second.stderr);

    // Resumed where it stopped, not from the first chunk.
    const resumed = /"resumedAfterChunk":(\d+)[^\n]*incremental snapshot: resuming/.exec(second.stderr);
    assert.ok(resumed, 'the restart resumed the snapshot');
    assert.ok(Number(resumed[1]) >= chunksAtKill, `resumed after chunk ${resumed[1]} (${chunksAtKill} recorded at the kill)`);
    // No new slot; the slot only moved forward.
    assert.deepEqual(await slots(), [SLOT]);
    assert.ok(parseLsn((await slotRow(services.databaseUrl, SLOT))!.confirmed_flush_lsn) > parseLsn(slotBefore!.confirmed_flush_lsn));

    // The stream never paused for the chunks: largest gap between streamed events while each cdc ran.
    const messages = await readTopic(services.kafkaBrokers, topic);
    const streamed = messages.filter((m) => m.value.op !== 'r').map((m) => m.timestamp);
    const gapBefore = largestGap(streamed, requestedAt, killedAt);
    const gapAfter = largestGap(streamed, restartedAt + 3_000, doneAt);
    const snapshotRows = messages.filter((m) => m.value.op === 'r').length;
    t.diagnostic(`${writes} writes; ${snapshotRows} snapshot events; largest gap between streamed events: ${gapBefore} ms before the kill, ${gapAfter} ms after the restart`);
    assert.ok(gapBefore < 3_000 && gapAfter < 3_000, `streamed events kept flowing (gaps ${gapBefore} / ${gapAfter} ms)`);
    assert.ok(snapshotRows >= ROWS * 0.7 && snapshotRows < ROWS * 1.5, `about one snapshot event per row, not two rounds (${snapshotRows})`);

    const sink = await runCli('sink', ['start', '--once', '--topic-prefix', services.topicPrefix, '--group', `${services.name}-sink`], cliEnv(services), 300_000);
    assert.equal(sink.code, 0, sink.stderr);
    const verify = await runCli('sink', ['verify'], cliEnv(services), 300_000);
    assert.equal(verify.code, 0, `PostgreSQL and ClickHouse differ:\n${verify.stdout}${verify.stderr}`);
    assert.match(verify.stdout, /EQUAL/);
  });
});
