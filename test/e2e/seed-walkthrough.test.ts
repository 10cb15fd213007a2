/**
 * The user's own walkthrough (shared/seed/README.en.md), every step, with the
 * new commands, asserting after each step what the seed says should be true:
 * the flags in PostgreSQL, the messages in the Kafka topic, the rows in
 * ClickHouse (FINAL, not deleted).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { topicName } from '../../src/core/envelope.js';
import { createKafka } from '../../src/kafka/client.js';
import { plaintextKafka } from '../../src/config/kafka.js';
import { topicOffsets } from '../../src/kafka/topics.js';
import { openClickHouse } from '../../src/sink/clickhouse/client.js';
import { createLogger } from '../../src/observability/logger.js';
import { cliEnv, runCli, type CliResult } from '../support/cli.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

interface Walkthrough {
  services: IsolatedServices;
  slot: string;
  topic: string;
  sql<T extends pg.QueryResultRow>(text: string): Promise<T[]>;
  cdcOnce(): Promise<CliResult>;
  sinkOnce(): Promise<CliResult>;
  messagesInTopic(): Promise<number>;
  clickhouseNames(): Promise<string[]>;
  clickhouse(query: string): Promise<void>;
  flags(): Promise<boolean[]>;
}

async function walkthrough(label: string): Promise<Walkthrough> {
  const services = await isolatedServices(label);
  const env = cliEnv(services);
  const slot = services.name;
  const topic = topicName(services.topicPrefix, 'public', 'user_logins');
  const kafka = createKafka(plaintextKafka(services.kafkaBrokers.split(',')), 'e2e', createLogger('e2e'));
  const sql = async <T extends pg.QueryResultRow>(text: string): Promise<T[]> => {
    const client = new pg.Client({ connectionString: services.databaseUrl });
    await client.connect();
    try {
      return (await client.query<T>(text)).rows;
    } finally {
      await client.end();
    }
  };
  const withClickHouse = async <T>(body: (client: ReturnType<typeof openClickHouse>['client']) => Promise<T>): Promise<T> => {
    const { client } = openClickHouse(services.clickhouseUrl);
    try {
      return await body(client);
    } finally {
      await client.close();
    }
  };
  return {
    services,
    slot,
    topic,
    sql,
    cdcOnce: () => runCli('cdc', ['start', '--slot', slot, '--topic-prefix', services.topicPrefix, '--once'], env),
    sinkOnce: () => runCli('sink', ['start', '--topic-prefix', services.topicPrefix, '--group', `${services.name}-sink`, '--once'], env),
    messagesInTopic: async () => Number((await topicOffsets(kafka, topic)).reduce((sum, p) => sum + p.high - p.low, 0n)),
    clickhouseNames: () => withClickHouse(async (client) => {
      const result = await client.query({
        query: 'SELECT username FROM user_logins FINAL WHERE _is_deleted = 0 ORDER BY id',
        format: 'JSONEachRow',
      });
      return (await result.json<{ username: string }>()).map((row) => row.username);
    }),
    clickhouse: (query) => withClickHouse(async (client) => {
      await client.command({ query });
    }),
    flags: async () => (await sql<{ sent_to_kafka: boolean }>('SELECT sent_to_kafka FROM user_logins ORDER BY id')).map((r) => r.sent_to_kafka),
  };
}

function assertExit(result: CliResult, what: string): void {
  assert.equal(result.code, 0, `${what} exited ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
}

describe('the seed walkthrough, end to end', () => {
  let w: Walkthrough;
  before(async () => {
    w = await walkthrough('seed');
  });
  after(async () => {
    await w.services.cleanup();
  });

  it('step 1: migrate creates user_logins on both sides; alice and bob are inserted unsent', async () => {
    assertExit(await runCli('migrate', [], cliEnv(w.services)), 'migrate');
    await w.sql(`INSERT INTO user_logins (username, event_type, event_time, sent_to_kafka)
                 VALUES ('alice', 'login', now(), False), ('bob', 'register', now(), False)`);
    assert.deepEqual(await w.flags(), [false, false]);
    assert.deepEqual(await w.clickhouseNames(), []);
  });

  it('step 2: the producer sends both rows to Kafka and marks them sent', async () => {
    assertExit(await w.cdcOnce(), 'cdc --once');
    assert.equal(await w.messagesInTopic(), 2);
    assert.deepEqual(await w.flags(), [true, true]);
  });

  it('step 3: the producer run again sends nothing', async () => {
    assertExit(await w.cdcOnce(), 'second cdc --once');
    assert.equal(await w.messagesInTopic(), 2);
    assert.deepEqual(await w.flags(), [true, true]);
  });

  it('step 4: the consumer writes the rows into ClickHouse', async () => {
    assertExit(await w.sinkOnce(), 'sink --once');
    assert.deepEqual(await w.clickhouseNames(), ['alice', 'bob']);
  });

  it('clean slate: TRUNCATE in ClickHouse, reset flags, producer twice, consumer: the rows are back', async () => {
    await w.clickhouse('TRUNCATE TABLE user_logins');
    assert.deepEqual(await w.clickhouseNames(), []);
    await w.sql('UPDATE user_logins SET sent_to_kafka = FALSE');
    assert.deepEqual(await w.flags(), [false, false]);

    assertExit(await w.cdcOnce(), 'clean-slate cdc --once');
    assert.equal(await w.messagesInTopic(), 4, 'the reset rows go to Kafka again');
    assert.deepEqual(await w.flags(), [true, true]);

    assertExit(await w.cdcOnce(), 'clean-slate second cdc --once');
    assert.equal(await w.messagesInTopic(), 4, 'nothing is sent a second time, and marking does not loop');

    assertExit(await w.sinkOnce(), 'clean-slate sink --once');
    assert.deepEqual(await w.clickhouseNames(), ['alice', 'bob']);
  });

  it('verify finds PostgreSQL and ClickHouse equal', async () => {
    assertExit(await runCli('sink', ['verify'], cliEnv(w.services)), 'sink verify');
  });
});

describe('the seed walkthrough on a table created earlier without sent_to_kafka', () => {
  let w: Walkthrough;
  before(async () => {
    w = await walkthrough('seed_alter');
  });
  after(async () => {
    await w.services.cleanup();
  });

  it('migrate adds the flag column, existing rows count as unsent and reach ClickHouse', async () => {
    await w.sql(`CREATE TABLE user_logins (id SERIAL PRIMARY KEY, username TEXT, event_type TEXT, event_time TIMESTAMP)`);
    await w.sql(`INSERT INTO user_logins (username, event_type, event_time)
                 VALUES ('carol', 'login', now()), ('dave', 'logout', now()), ('erin', 'login', now())`);
    assertExit(await runCli('migrate', [], cliEnv(w.services)), 'migrate');
    await w.sql('UPDATE user_logins SET sent_to_kafka = FALSE');
    assert.deepEqual(await w.flags(), [false, false, false]);

    assertExit(await w.cdcOnce(), 'cdc --once');
    assert.equal(await w.messagesInTopic(), 3);
    assert.deepEqual(await w.flags(), [true, true, true]);

    assertExit(await w.cdcOnce(), 'second cdc --once');
    assert.equal(await w.messagesInTopic(), 3);

    assertExit(await w.sinkOnce(), 'sink --once');
    assert.deepEqual(await w.clickhouseNames(), ['carol', 'dave', 'erin']);
    assertExit(await runCli('sink', ['verify'], cliEnv(w.services)), 'sink verify');
  });
});

describe('updates, deletes and a PostgreSQL TRUNCATE through 3 partitions, cdc to sink', () => {
  let w: Walkthrough;
  const topicArgs = (): string[] => ['--topic-prefix', w.services.topicPrefix];
  const cdcOnce = (): Promise<CliResult> =>
    runCli('cdc', ['start', '--slot', w.slot, ...topicArgs(), '--partitions', '3', '--once'], cliEnv(w.services));
  const round = async (what: string): Promise<void> => {
    assertExit(await cdcOnce(), `cdc --once (${what})`);
    assertExit(await w.sinkOnce(), `sink --once (${what})`);
    const verify = await runCli('sink', ['verify'], cliEnv(w.services));
    assert.equal(verify.code, 0, `after ${what}, PostgreSQL and ClickHouse differ:\n${verify.stdout}${verify.stderr}`);
  };
  before(async () => {
    w = await walkthrough('e2e_ops');
    assertExit(await runCli('migrate', [], cliEnv(w.services)), 'migrate');
  });
  after(async () => {
    await w.services.cleanup();
  });

  it('ends equal after inserts, updates, key changes, deletes, a truncate and rows written after it', async () => {
    await w.sql(`INSERT INTO user_logins (username, event_type, event_time)
                 SELECT 'user_' || g, 'login', now() - g * interval '1 minute' FROM generate_series(1, 300) g`);
    await round('the snapshot');

    await w.sql(`UPDATE user_logins SET event_type = 'logout' WHERE id % 6 = 0`);
    await w.sql(`DELETE FROM user_logins WHERE id % 10 = 0`);
    await w.sql(`UPDATE user_logins SET id = id + 100000 WHERE id IN (3, 7)`); // a key change: delete + insert downstream
    await w.sql(`INSERT INTO user_logins (username, event_type, event_time) VALUES ('late', 'login', now())`);
    await round('updates and deletes');
    assert.equal(await w.messagesInTopic() > 300, true);

    await w.sql('TRUNCATE user_logins');
    await w.sql(`INSERT INTO user_logins (username, event_type, event_time)
                 SELECT 'after_' || g, 'register', now() FROM generate_series(1, 50) g`);
    await w.sql(`UPDATE user_logins SET username = 'after_renamed' WHERE username = 'after_7'`);
    await round('a truncate and new rows');
    const names = await w.clickhouseNames();
    assert.equal(names.length, 50);
    assert.ok(names.every((name) => name.startsWith('after_')), 'no row from before the truncate survives');
  });
});
