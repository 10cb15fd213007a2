/**
 * Topics are created with explicit settings, and topics that could lose
 * messages are warned about: by cdc at start, in `cdc status`, and by the
 * sink, which also says what retention already deleted unread.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import kafkajs from 'kafkajs';
import { describeTopics } from '../../src/kafka/topic-settings.js';
import { plaintextKafka } from '../../src/config/kafka.js';
import { createKafka } from '../../src/kafka/client.js';
import { createLogger } from '../../src/observability/logger.js';
import { cliEnv, runCli } from '../support/cli.js';
import { createUserLogins, sql } from '../support/cdc.js';
import { isolatedServices, type IsolatedServices } from '../support/services.js';

describe('topic settings and retention checks', () => {
  let services: IsolatedServices;
  let kafka: kafkajs.Kafka;
  const topic = () => `${services.topicPrefix}.public.user_logins`;
  const cdc = (...args: string[]) => runCli('cdc', ['start', '--slot', 'topics', '--topic-prefix', services.topicPrefix, '--once', ...args], cliEnv(services));
  const insert = (n: number) => sql(services.databaseUrl,
    `INSERT INTO user_logins (username, event_type, event_time) SELECT 'u' || g, 'login', now() FROM generate_series(1, ${n}) g`);

  before(async () => {
    services = await isolatedServices('topic_settings');
    await createUserLogins(services.databaseUrl);
    kafka = createKafka(plaintextKafka(services.kafkaBrokers.split(',')), 'topic-settings-test', createLogger('test'));
  });
  after(() => services.cleanup());

  it('refuses a replication factor the cluster cannot hold, with exit 2', async () => {
    const refused = await cdc('--replication-factor', '3');
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /--replication-factor 3 needs as many brokers, and the Kafka cluster has 1/);
  });

  it('creates the topic keeping every message, fitted to the cluster, and warns about nothing', async () => {
    await insert(3);
    const first = await cdc();
    assert.equal(first.code, 0, first.stderr);
    const { brokers, facts } = await describeTopics(kafka, [topic()]);
    assert.equal(brokers, 1);
    assert.deepEqual(facts, [{ topic: topic(), replicationFactor: 1, minInsyncReplicas: 1, retentionMs: -1, retentionBytes: -1 }]);
    assert.doesNotMatch(first.stderr, /retention/);
    const status = await runCli('cdc', ['status', '--slot', 'topics', '--topic-prefix', services.topicPrefix, '--json'], cliEnv(services));
    assert.equal(status.code, 0, status.stderr);
    assert.deepEqual(JSON.parse(status.stdout)[0].topics[0].warnings, []);
  });

  it('warns in cdc\'s log and in cdc status about a topic whose retention can drop messages', async () => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.alterConfigs({ validateOnly: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic(), configEntries: [{ name: 'retention.ms', value: '3600000' }] }] });
    } finally {
      await admin.disconnect();
    }
    const run = await cdc();
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /retention\.ms=3600000 \(1 hours\)/);
    const status = await runCli('cdc', ['status', '--slot', 'topics', '--topic-prefix', services.topicPrefix], cliEnv(services));
    assert.match(status.stdout, /warning: topic \S+ has retention\.ms=3600000.*--add-config retention\.ms=-1/);
  });

  it('the sink says how many changes retention deleted before its group read them, and writes the rest', async () => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      // What retention does to old segments, done at once: the first 2 of 3 messages are gone.
      await admin.fetchTopicMetadata({ topics: [topic()] }); // kafkajs finds the partition leader there
      await admin.deleteTopicRecords({ topic: topic(), partitions: [{ partition: 0, offset: '2' }] });
    } finally {
      await admin.disconnect();
    }
    const sink = await runCli('sink', ['start', '--once', '--topic-prefix', services.topicPrefix], cliEnv(services));
    assert.equal(sink.code, 0, sink.stderr);
    assert.match(sink.stderr, /retention deleted offsets 0–1 before group \S+ read them: 2 changes never reached ClickHouse/);
    assert.match(sink.stdout, /wrote 1 row/);
  });
});
