/** Topic settings: what cdc creates topics with, and what the start-time check warns about. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/core/exit-codes.js';
import { DEFAULT_TOPIC_SETTINGS, resolveTopicSettings, topicWarnings, type TopicFacts } from '../../src/kafka/topic-settings.js';

describe('resolveTopicSettings', () => {
  it('defaults to 3 replicas and min.insync.replicas 2 on a big cluster, keeping every message', () => {
    assert.deepEqual(resolveTopicSettings(DEFAULT_TOPIC_SETTINGS, { alive: 5, expected: 3 }), { replicationFactor: 3, minInsyncReplicas: 2, retentionMs: -1 });
  });

  it('fits a small cluster: as many replicas as brokers, min.insync.replicas 1 below 3', () => {
    assert.deepEqual(resolveTopicSettings(DEFAULT_TOPIC_SETTINGS, { alive: 1, expected: 0 }), { replicationFactor: 1, minInsyncReplicas: 1, retentionMs: -1 });
    assert.deepEqual(resolveTopicSettings(DEFAULT_TOPIC_SETTINGS, { alive: 2, expected: 2 }), { replicationFactor: 2, minInsyncReplicas: 1, retentionMs: -1 });
  });

  it('with a broker down, never creates a topic with fewer replicas than the cluster is built for', () => {
    assert.throws(() => resolveTopicSettings(DEFAULT_TOPIC_SETTINGS, { alive: 2, expected: 3 }),
      (e: Error) => !(e instanceof ConfigError) && /only 2 of the Kafka cluster's 3 brokers answer/.test(e.message));
    assert.throws(() => resolveTopicSettings({ ...DEFAULT_TOPIC_SETTINGS, replicationFactor: 3 }, { alive: 2, expected: 3 }), (e: Error) => !(e instanceof ConfigError));
  });

  it('refuses what the cluster cannot meet, naming the flag', () => {
    assert.throws(() => resolveTopicSettings({ ...DEFAULT_TOPIC_SETTINGS, replicationFactor: 3 }, { alive: 1, expected: 1 }), (e: Error) => e instanceof ConfigError && /--replication-factor 3 .* has 1/.test(e.message));
    assert.throws(() => resolveTopicSettings({ ...DEFAULT_TOPIC_SETTINGS, minInsyncReplicas: 2 }, { alive: 1, expected: 1 }), (e: Error) => e instanceof ConfigError && /--min-insync-replicas 2/.test(e.message));
  });
});

describe('topicWarnings', () => {
  const safe: TopicFacts = { topic: 't', replicationFactor: 3, minInsyncReplicas: 2, retentionMs: -1, retentionBytes: -1 };

  it('says nothing about a topic that keeps everything on enough replicas', () => {
    assert.deepEqual(topicWarnings(safe, 3), []);
    assert.deepEqual(topicWarnings({ ...safe, replicationFactor: 1, minInsyncReplicas: 1 }, 1), []);
  });

  it('warns about time and size retention, with the fix', () => {
    const [time, size] = topicWarnings({ ...safe, retentionMs: 7 * 86_400_000, retentionBytes: 1_000_000 }, 3);
    assert.match(time!, /retention\.ms=604800000 \(7 days\).*replay --from-lsn 0\/0.*--add-config retention\.ms=-1/);
    assert.match(size!, /retention\.bytes=1000000.*--add-config retention\.bytes=-1/);
  });

  it('warns about too few replicas and min.insync.replicas 1', () => {
    assert.match(topicWarnings({ ...safe, replicationFactor: 1, minInsyncReplicas: 1 }, 3).join('\n'), /1 replica\(s\) on a cluster of 3 brokers/);
    assert.match(topicWarnings({ ...safe, minInsyncReplicas: 1 }, 3).join('\n'), /min\.insync\.replicas=1: acks=all is met by the leader alone.*min\.insync\.replicas=2/);
  });
});
