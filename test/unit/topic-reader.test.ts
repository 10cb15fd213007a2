/**
 * The reader's rules that keep rows the rebalance fence dropped from being
 * skipped (src/kafka/consumer.ts), against a stand-in for the kafkajs
 * consumer that replays the event orders seen with real brokers:
 * - a batch fetched while a rebalance's rejoin is pending is refused with a
 *   rebalance error (kafkajs then rejoins), and a partition whose rows were
 *   dropped meanwhile is sought back to its committed offset;
 * - in a generation, a batch must start at or before where this member's
 *   reading of its partition stands (the committed offset, or the log's start,
 *   before the first): one fetched before a rejoin is refused;
 * - a message taken after a rejoin completed under its batch does not move
 *   kafkajs' position.
 */
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Kafka } from '../../src/kafka/client.js';
import { openTopicReader, type BatchHandler } from '../../src/kafka/consumer.js';
import { createLogger } from '../../src/observability/logger.js';

interface FakeBatch {
  topic: string;
  partition: number;
  fetchedOffset: string;
  messages: { offset: string; key: Buffer; value: Buffer; headers: Record<string, never> }[];
  lastOffset(): string;
}
type EachBatch = (payload: { batch: FakeBatch; resolveOffset(offset: string): void; heartbeat(): Promise<void> }) => Promise<void>;

const EVENTS = {
  REBALANCING: 'rebalancing', GROUP_JOIN: 'group_join', RECEIVED_UNSUBSCRIBED_TOPICS: 'unsubscribed', CRASH: 'crash', START_BATCH_PROCESS: 'start_batch',
};

/** Committed offsets: t/0 at 10, t/1 none; the log of t/1 starts at 5. */
function fakeKafka() {
  const emitter = new EventEmitter();
  const seeks: string[] = [];
  let eachBatch: EachBatch | undefined;
  const consumer = {
    events: EVENTS,
    on: (event: string, listener: (e: { payload: unknown }) => void) => emitter.on(event, (payload: unknown) => listener({ payload })),
    connect: async () => {},
    subscribe: async () => {},
    run: async (options: { eachBatch: EachBatch }) => {
      eachBatch = options.eachBatch;
    },
    seek: ({ topic, partition, offset }: { topic: string; partition: number; offset: string }) => seeks.push(`${topic}/${partition}@${offset}`),
    commitOffsets: async () => {},
    disconnect: async () => {},
  };
  const admin = {
    connect: async () => {},
    disconnect: async () => {},
    fetchOffsets: async () => [{ topic: 't', partitions: [{ partition: 0, offset: '10' }, { partition: 1, offset: '-1' }] }],
    fetchTopicOffsets: async () => [{ partition: 0, offset: '100', high: '100', low: '0' }, { partition: 1, offset: '100', high: '100', low: '5' }],
  };
  const kafka = { consumer: () => consumer, admin: () => admin } as unknown as Kafka;
  const resolved: string[] = [];
  /** Delivers a batch as kafkajs' runner would; resolves to the error it threw, if any. */
  const deliver = async (partition: number, fetchedOffset: number, count = 1, controlRecords = 0): Promise<(Error & { type?: string }) | undefined> => {
    const messages = Array.from({ length: count }, (_, i) => ({ offset: String(fetchedOffset + i), key: Buffer.from('k'), value: Buffer.from('v'), headers: {} }));
    const batch: FakeBatch = { topic: 't', partition, fetchedOffset: String(fetchedOffset), messages, lastOffset: () => String(fetchedOffset + count - 1 + controlRecords) };
    try {
      await eachBatch!({ batch, resolveOffset: (offset) => resolved.push(`${partition}:${offset}`), heartbeat: async () => {} });
      return undefined;
    } catch (error) {
      return error as Error & { type?: string };
    }
  };
  /** A join as kafkajs reports it; waits for the reader's read of the committed offsets. */
  const join = async (partitions: number[]) => {
    emitter.emit(EVENTS.GROUP_JOIN, { memberAssignment: { t: partitions } });
    await new Promise((resolve) => setTimeout(resolve, 10));
  };
  return { kafka, emitter, seeks, resolved, deliver, join };
}

/** A handler that takes every message; `during` runs before it takes them. */
function takingAll(seen: string[], during: () => void = () => {}): BatchHandler {
  return async (_topic, partition, messages, control) => {
    during();
    for (const m of messages) {
      seen.push(`${partition}:${m.offset}`);
      control.taken(m.offset);
    }
  };
}

const open = (kafka: Kafka) => openTopicReader(kafka, { topics: ['t'], groupId: 'g', logger: createLogger('test') });

describe('topic reader', () => {
  it('refuses a batch fetched while a rejoin is pending, and seeks a partition whose rows were dropped back to its committed offset', async () => {
    const f = fakeKafka();
    const reader = await open(f.kafka);
    const seen: string[] = [];
    await reader.run(takingAll(seen));
    await f.join([0]);
    assert.equal(await f.deliver(0, 10, 3), undefined);
    assert.deepEqual(f.resolved, ['0:10', '0:11', '0:12']);

    f.emitter.emit(EVENTS.REBALANCING, {});
    const refused = await f.deliver(0, 13);
    assert.equal(refused?.type, 'REBALANCE_IN_PROGRESS', 'kafkajs rejoins on this type');
    assert.deepEqual(seen, ['0:10', '0:11', '0:12'], 'the refused batch never reached the handler');

    reader.rewind('t', 0);
    assert.deepEqual(f.seeks, ['t/0@10'], 'back to the committed offset, so a fetch (and its refusal) comes without new traffic');
    reader.rewind('t', 1);
    assert.deepEqual(f.seeks, ['t/0@10'], 'a partition it did not hold is left alone');

    await f.join([0]);
    assert.deepEqual(f.seeks, ['t/0@10', 't/0@10'], 'sought again at the join: kafkajs keeps a seek until it fetches the partition');
    assert.equal(await f.deliver(0, 10), undefined);
    reader.rewind('t', 0);
    assert.equal(f.seeks.length, 2, 'after a join kafkajs reads from the committed offsets itself: no seek');
  });

  it('after a join, refuses a batch that starts past the committed offset (or the log start), and one that skips ahead later', async () => {
    const f = fakeKafka();
    const reader = await open(f.kafka);
    const seen: string[] = [];
    await reader.run(takingAll(seen));
    await f.join([0, 1]);
    assert.equal((await f.deliver(0, 15))?.type, 'REBALANCE_IN_PROGRESS', 'fetched from an old position, past the committed 10');
    assert.equal(await f.deliver(0, 10, 3), undefined);
    assert.equal(await f.deliver(0, 13, 2), undefined, 'where the last batch ended');
    assert.equal(await f.deliver(0, 12), undefined, 'reading again is harmless');
    assert.equal((await f.deliver(0, 20))?.type, 'REBALANCE_IN_PROGRESS', 'skips 13..19');
    assert.equal((await f.deliver(1, 7))?.type, 'REBALANCE_IN_PROGRESS', 'nothing committed: the log starts at 5');
    assert.equal(await f.deliver(1, 5, 1, 1), undefined, 'a transaction marker at 6 ends the batch');
    assert.equal(await f.deliver(1, 7), undefined, 'kafkajs resolves past the marker when the last message is taken');
    assert.deepEqual(seen, ['0:10', '0:11', '0:12', '0:13', '0:14', '0:12', '1:5', '1:7']);
  });

  it('a message taken after a rejoin completed under its batch leaves kafkajs\' position alone', async () => {
    const f = fakeKafka();
    const reader = await open(f.kafka);
    const seen: string[] = [];
    let rejoined = false;
    await reader.run(takingAll(seen, () => {
      if (rejoined) return;
      rejoined = true;
      f.emitter.emit(EVENTS.GROUP_JOIN, { memberAssignment: { t: [0] } }); // kafkajs rejoining from a fetcher
    }));
    await f.join([0]);
    const before = reader.generation;
    assert.equal(await f.deliver(0, 10, 2), undefined);
    assert.ok(reader.generation > before);
    assert.deepEqual(seen, ['0:10', '0:11'], 'handled (its rows carry the old generation and are dropped)');
    assert.deepEqual(f.resolved, [], 'not resolved: the new generation reads them again from the committed offset');
  });
});
