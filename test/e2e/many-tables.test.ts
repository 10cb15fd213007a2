/**
 * Issue 9's end-to-end cases, cdc to sink through real services:
 * - four tables at once (user_logins, a composite key, every mapped type, a
 *   range-partitioned table) under concurrent inserts, updates, deletes and a
 *   truncate: `sink verify` EQUAL for each;
 * - ADD COLUMN … DEFAULT, DROP COLUMN and ALTER COLUMN TYPE bigint while
 *   writes go on: rows from before and after each change end right.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cliEnv, runCli, startCli, type CliResult } from '../support/cli.js';
import pg from 'pg';
import { createUserLogins, sql } from '../support/cdc.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

const TABLES = ['public.user_logins', 'public.order_lines', 'public.all_types', 'public.measurements'];

function assertExit(result: CliResult, what: string): void {
  assert.equal(result.code, 0, `${what} exited ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
}

/** A writer on its own connection that keeps changing a table for `forMs`; resolves to the number of rounds it ran. */
async function writeLoad(url: string, statements: (i: number) => string, forMs: number): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const deadline = Date.now() + forMs;
    let i = 0;
    while (Date.now() < deadline) await client.query(statements(i++));
    return i;
  } finally {
    await client.end();
  }
}

describe('many tables, cdc to sink', () => {
  let services: IsolatedServices;
  const selection = TABLES.flatMap((t) => ['--table', t]);
  const cdcOnce = (slot: string, tables = selection) =>
    runCli('cdc', ['start', '--slot', slot, '--topic-prefix', services.topicPrefix, '--partitions', '2', '--once', ...tables], cliEnv(services));
  const sinkOnce = (tables = selection, group = `${services.name}-sink`) =>
    runCli('sink', ['start', '--topic-prefix', services.topicPrefix, '--group', group, '--once', ...tables], cliEnv(services));
  const verify = (tables = selection) => runCli('sink', ['verify', ...tables], cliEnv(services));

  before(async () => {
    services = await isolatedServices('e2e_many');
    await createUserLogins(services.databaseUrl);
    await sql(services.databaseUrl, `
      CREATE TYPE mood AS ENUM ('happy', 'sad');
      CREATE TABLE order_lines (order_id int, line int, product text, qty int, PRIMARY KEY (order_id, line));
      CREATE TABLE all_types (
        id bigint PRIMARY KEY, small smallint, big bigint, price numeric(30, 10), plain_numeric numeric(12, 4), real_value real, double_value double precision,
        flag boolean, name text, code varchar(12), letter char(3), uid uuid, day date, at_time time, stamp timestamp, stamp_tz timestamptz,
        raw bytea, doc json, docb jsonb, feeling mood, tags text[], counts int[]);
      CREATE TABLE measurements (id bigint, taken date NOT NULL, value numeric(10, 2), PRIMARY KEY (id, taken)) PARTITION BY RANGE (taken);
      CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
      CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
      INSERT INTO user_logins (username, event_type, event_time) SELECT 'u' || g, 'login', '2024-05-01 10:00:00'::timestamp + g * interval '1 second' FROM generate_series(1, 50) g;
      INSERT INTO order_lines SELECT o, l, 'p' || o || '-' || l, l FROM generate_series(1, 20) o, generate_series(1, 3) l;
      INSERT INTO all_types VALUES
        (1, -32768, 9007199254740993, 12345678901234567890.1234567891, 1.5, 1.25, 2.5e300, true, 'ünïcødé ✓', 'short', 'abc',
         'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29', '23:59:59.999999', '2024-05-01 10:00:00.123456', '2024-05-01 10:00:00.654321+02',
         '\\x00ff10', '{"a": [1, 2]}', '{"b": {"c": null}}', 'happy', ARRAY['x', 'y z', NULL], ARRAY[1, 2, 3]),
        (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
      INSERT INTO measurements SELECT g, '2024-01-01'::date + g, g / 3.0 FROM generate_series(1, 40) g;`);
  });
  after(async () => {
    await services.cleanup();
  });

  it('four tables under concurrent changes and a truncate end EQUAL, table by table', async () => {
    assertExit(await cdcOnce('many_e2e'), 'cdc --once (snapshot)');
    assertExit(await sinkOnce(), 'sink --once (snapshot)');
    assertExit(await verify(), 'verify after the snapshot');

    // Concurrent writers on every table while cdc and sink run.
    const cdc = startCli('cdc', ['start', '--slot', 'many_e2e', '--topic-prefix', services.topicPrefix, ...selection], cliEnv(services));
    const sink = startCli('sink', ['start', '--topic-prefix', services.topicPrefix, '--group', `${services.name}-sink`, ...selection], cliEnv(services));
    const url = services.databaseUrl;
    try {
      const writers = await Promise.all([
        writeLoad(url, (i) => `INSERT INTO user_logins (username, event_type, event_time) VALUES ('w${i}', 'login', now());
          UPDATE user_logins SET event_type = 'logout' WHERE id = ${(i % 50) + 1}; DELETE FROM user_logins WHERE id = ${(i * 7) % 60}`, 6_000),
        writeLoad(url, (i) => `INSERT INTO order_lines VALUES (${100 + i}, 1, 'new', 1), (${100 + i}, 2, 'new', 2);
          UPDATE order_lines SET qty = qty + 1 WHERE order_id = ${(i % 20) + 1}; DELETE FROM order_lines WHERE order_id = ${100 + i} AND line = 2`, 6_000),
        writeLoad(url, (i) => `INSERT INTO all_types (id, name, big, price, tags, stamp_tz) VALUES (${1000 + i}, 'n${i}', ${9007199254740993n + BigInt(i)}, ${i}.5, ARRAY['t${i}'], now());
          UPDATE all_types SET small = ${i % 100}, docb = '{"i": ${i}}' WHERE id = 1`, 6_000),
        writeLoad(url, (i) => `INSERT INTO measurements VALUES (${1000 + i}, '2025-01-01'::date + ${i % 300}, ${i}.25);
          UPDATE measurements SET value = value + 1 WHERE id = ${(i % 40) + 1}; DELETE FROM measurements WHERE id = ${(i % 40) + 1} AND ${i % 5} = 0`, 6_000),
      ]);
      assert.ok(writers.every((n) => n > 3), `every writer ran (${writers.join(', ')})`);
      await sql(url, `BEGIN; TRUNCATE order_lines; INSERT INTO order_lines VALUES (1, 1, 'after truncate', 1); COMMIT;`);
      await sql(url, `INSERT INTO order_lines VALUES (2, 1, 'later', 1)`);
      // Let both catch up, then stop them and drain what is left.
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      for (const [running, what] of [[cdc, 'cdc'], [sink, 'sink']] as const) {
        running.child.kill('SIGTERM');
        assertExit(await running.exited, `${what} (running) stopped by SIGTERM`);
      }
    } finally {
      for (const running of [cdc, sink]) if (running.child.exitCode === null) running.child.kill('SIGKILL');
    }
    assertExit(await cdcOnce('many_e2e'), 'cdc --once (drain)');
    assertExit(await sinkOnce(), 'sink --once (drain)');
    const result = await verify();
    assertExit(result, 'verify after the concurrent changes');
    for (const table of ['user_logins', 'order_lines', 'all_types', 'measurements']) assert.match(result.stdout, new RegExp(`verify public\\.${table} `), `${table} was compared`);
    assert.equal(result.stdout.match(/^EQUAL$/gm)?.length, 4, 'each table EQUAL');
  });

  it('ADD COLUMN … DEFAULT, DROP COLUMN and ALTER COLUMN TYPE bigint while writes go on', async () => {
    const tables = ['--table', 'public.evolving'];
    await sql(services.databaseUrl, `CREATE TABLE evolving (id int PRIMARY KEY, note text, amount int);
      INSERT INTO evolving SELECT g, 'n' || g, g FROM generate_series(1, 20) g`);
    const round = async (what: string): Promise<void> => {
      assertExit(await cdcOnce('evolving', tables), `cdc --once (${what})`);
      assertExit(await sinkOnce(tables, `${services.name}-evolving`), `sink --once (${what})`);
      const result = await verify(tables);
      assert.equal(result.code, 0, `after ${what}, PostgreSQL and ClickHouse differ:\n${result.stdout}${result.stderr}`);
    };
    await round('the snapshot');
    // Rows before the ADD keep PostgreSQL's stored default; rows after carry their own values.
    await sql(services.databaseUrl, `INSERT INTO evolving VALUES (21, 'before add', 21);
      ALTER TABLE evolving ADD COLUMN status text DEFAULT 'x';
      INSERT INTO evolving (id, note, amount) VALUES (22, 'after add', 22);
      INSERT INTO evolving VALUES (23, 'explicit', 23, 'y');
      INSERT INTO evolving VALUES (26, 'explicit null', 26, NULL);
      UPDATE evolving SET note = 'touched' WHERE id = 5`);
    await round('ADD COLUMN status DEFAULT x');
    await sql(services.databaseUrl, `ALTER TABLE evolving DROP COLUMN note;
      INSERT INTO evolving (id, amount) VALUES (24, 24);
      UPDATE evolving SET amount = -1 WHERE id = 6`);
    await round('DROP COLUMN note');
    await sql(services.databaseUrl, `ALTER TABLE evolving ALTER COLUMN amount TYPE bigint;
      INSERT INTO evolving (id, amount, status) VALUES (25, 9007199254740993, 'big');
      UPDATE evolving SET amount = 5000000000 WHERE id = 7`);
    await round('ALTER COLUMN amount TYPE bigint');
  });
});
