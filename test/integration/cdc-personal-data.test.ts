/**
 * Personal data through the whole pipeline: user names hashed with a key
 * (--hash-column, CDC_HASH_KEY) in two tables and an e-mail column left out
 * (--exclude-column) reach neither Kafka (message values, keys, headers) nor
 * ClickHouse, through an initial snapshot, streamed inserts, updates and
 * deletes, and an incremental snapshot of a table added later; the hash is
 * HMAC-SHA-256 with that key, alike in both tables (they still join); `sink
 * verify` given the same rules finds the tables equal. Bad rules exit 2.
 */
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createUserLogins, readTopic, serverMajor, sql } from '../support/cdc.js';
import { cliEnv, runCli } from '../support/cli.js';
import { isolatedServices, serviceUrls, type IsolatedServices } from '../support/services.js';
import { openClickHouse } from '../../src/sink/clickhouse/client.js';

const KEY = 'test-hash-key-0123456789abcdef';
const hashed = (value: string): string => createHmac('sha256', KEY).update(value).digest('hex');
const PERSONAL = /alice|bob|carol|dave|example\.com/;
/** Incremental snapshots (the added table) need PostgreSQL 14+. */
const WITH_WATERMARKS = (await serverMajor(serviceUrls().databaseUrl)) >= 14;

describe('personal data: --hash-column and --exclude-column', { skip: !WITH_WATERMARKS && 'the added table is read by an incremental snapshot (PostgreSQL 14+)' }, () => {
  let services: IsolatedServices;
  let env: NodeJS.ProcessEnv;
  const userLogins = ['--table', 'public.user_logins', '--hash-column', 'public.user_logins.username'];
  const accounts = ['--table', 'public.accounts', '--hash-column', 'public.accounts.username', '--exclude-column', 'public.accounts.email'];
  const cdc = (...args: string[]) => runCli('cdc', ['start', '--slot', 'pii', '--topic-prefix', services.topicPrefix, '--once', ...args], env);
  const topic = (table: string): string => `${services.topicPrefix}.public.${table}`;
  const tables = ['--table', 'public.user_logins', '--table', 'public.accounts'];

  before(async () => {
    services = await isolatedServices('pii');
    env = { ...cliEnv(services), CDC_HASH_KEY: KEY };
    await createUserLogins(services.databaseUrl);
    await sql(services.databaseUrl, `INSERT INTO user_logins (username, event_type) VALUES ('alice', 'login'), ('bob', 'login')`);
    await sql(services.databaseUrl, `CREATE TABLE accounts (id int PRIMARY KEY, username text, email text)`);
    await sql(services.databaseUrl, `INSERT INTO accounts VALUES (1, 'alice', 'alice@example.com'), (2, 'dave', 'dave@example.com')`);
  });
  after(async () => {
    await services.cleanup();
  });

  it('refuses at start, exit 2: a key column excluded, a column that does not exist, a hash column without a key', async () => {
    const keyColumn = await cdc(...userLogins, '--exclude-column', 'public.user_logins.id');
    assert.equal(keyColumn.code, 2, keyColumn.stderr);
    assert.match(keyColumn.stderr, /--exclude-column public\.user_logins\.id: id is part of the primary key of public\.user_logins/);
    const missing = await cdc(...userLogins, '--exclude-column', 'public.user_logins.phone');
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /table public\.user_logins has no column phone/);
    const withoutKey = await runCli('cdc', ['start', '--slot', 'pii', '--once', ...userLogins], cliEnv(services));
    assert.equal(withoutKey.code, 2, withoutKey.stderr);
    assert.match(withoutKey.stderr, /--hash-column public\.user_logins\.username needs a key: set CDC_HASH_KEY/);
    assert.equal((await sql(services.databaseUrl, `SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = 'pii'`)).rows[0].n, 0, 'refused before the slot was made');
  });

  it('no user name or e-mail reaches Kafka; hashes are keyed, stable and alike across tables', async () => {
    const snapshot = await cdc(...userLogins);
    assert.equal(snapshot.code, 0, snapshot.stderr);
    assert.match(snapshot.stdout, /sent 2 events \(2 snapshot rows\)/);
    await sql(services.databaseUrl, `INSERT INTO user_logins (username, event_type) VALUES ('carol', 'login');
      UPDATE user_logins SET event_type = 'logout' WHERE username = 'alice'; DELETE FROM user_logins WHERE username = 'bob'`);
    // The stream of user_logins, and accounts added: its rows come by incremental snapshot.
    const added = await cdc(...userLogins, ...accounts);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /sent 5 events \(2 snapshot rows, 1 insert, 1 update, 1 delete\)/);
    await sql(services.databaseUrl, `UPDATE accounts SET email = 'new@example.com', username = 'alice' WHERE id = 2`);
    const streamed = await cdc(...userLogins, ...accounts);
    assert.equal(streamed.code, 0, streamed.stderr);

    const logins = await readTopic(services.kafkaBrokers, topic('user_logins'));
    const accountEvents = await readTopic(services.kafkaBrokers, topic('accounts'));
    assert.equal(logins.length, 5);
    assert.equal(accountEvents.length, 3);
    for (const message of [...logins, ...accountEvents]) {
      assert.doesNotMatch(`${message.key}\n${message.raw}\n${JSON.stringify(message.headers)}`, PERSONAL, message.raw);
    }
    const images = (messages: typeof logins) => messages.flatMap((m) => [m.value.before, m.value.after]).filter((image) => image !== null);
    assert.ok(images(accountEvents).every((image) => !('email' in image)), 'email is in no image');
    // Snapshot row, the update's before and after: one hash of 'alice', HMAC with the key.
    const aliceId = logins.find((m) => m.value.op === 'r' && m.value.after.username === hashed('alice'))?.value.after.id;
    assert.ok(aliceId !== undefined, 'the snapshot row of alice carries HMAC-SHA-256(key, "alice")');
    const update = logins.find((m) => m.value.op === 'u')!.value;
    assert.deepEqual([update.before.username, update.after.username], [hashed('alice'), hashed('alice')]);
    assert.equal(logins.find((m) => m.value.op === 'd')!.value.before.username, hashed('bob'));
    assert.equal(logins.find((m) => m.value.op === 'c')!.value.after.username, hashed('carol'));
    assert.ok(accountEvents.some((m) => m.value.source.snapshot === 'incremental' && m.value.after.username === hashed('alice')), 'the same hash in accounts: they join');
    const accountUpdate = accountEvents.find((m) => m.value.op === 'u')!.value;
    assert.deepEqual([accountUpdate.before.username, accountUpdate.after.username], [hashed('dave'), hashed('alice')]);

    const header = JSON.parse(accountEvents[0]!.headers['walbridge.schema']!);
    assert.deepEqual(header.columns.map((c: { name: string }) => c.name), ['id', 'username']);
    assert.deepEqual([header.columns[1].typeOid, header.columns[1].typmod], [25, -1], 'a hashed column is announced as text');
  });

  it('the sink writes no user name or e-mail to ClickHouse; verify with the same rules finds both tables equal', async () => {
    const sink = await runCli('sink', ['start', '--once', ...tables, '--topic-prefix', services.topicPrefix], env);
    assert.equal(sink.code, 0, sink.stderr);
    const { client } = openClickHouse(services.clickhouseUrl);
    try {
      const rows = async (table: string) => (await client.query({ query: `SELECT * FROM ${table} FINAL WHERE _is_deleted = 0 ORDER BY id`, format: 'JSONEachRow' })).json<Record<string, unknown>>();
      const logins = await rows('user_logins');
      const accountRows = await rows('accounts');
      assert.doesNotMatch(JSON.stringify([logins, accountRows]), PERSONAL);
      assert.deepEqual(logins.map((r) => r.username).sort(), [hashed('alice'), hashed('carol')].sort());
      assert.ok(!('email' in accountRows[0]!), 'ClickHouse\'s accounts has no email column');
      // They join on the hash: both accounts are now alice's.
      const joined = accountRows.filter((account) => logins.some((login) => login.username === account.username));
      assert.equal(joined.length, 2);
    } finally {
      await client.close();
    }

    const rules = ['--hash-column', 'public.user_logins.username', '--hash-column', 'public.accounts.username', '--exclude-column', 'public.accounts.email'];
    const verified = await runCli('sink', ['verify', ...tables, ...rules], env);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, /public\.accounts: EQUAL\npublic\.user_logins: EQUAL/);
    assert.match(verified.stdout, /note: not compared \(--exclude-column\): email/);
    // Without the rules verify compares the raw names with the hashes: a difference, named without the raw value's neighbours.
    const unaware = await runCli('sink', ['verify', '--table', 'public.user_logins'], cliEnv(services));
    assert.equal(unaware.code, 1, unaware.stdout + unaware.stderr);
    assert.match(unaware.stdout, /username: PostgreSQL "alice", ClickHouse "[0-9a-f]{64}"/);
  });
});
