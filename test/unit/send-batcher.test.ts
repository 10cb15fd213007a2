/** The send batcher's contract (src/cdc/send-batcher.ts), with a fake producer and marker. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { EventProducer, OutgoingMessage } from '../../src/kafka/producer.js';
import type { Marker } from '../../src/cdc/postgres/marker.js';
import type { DecodedChange } from '../../src/cdc/postgres/decode.js';
import type { CapturedTable } from '../../src/cdc/postgres/table.js';
import { Batcher, type BatcherOptions } from '../../src/cdc/send-batcher.js';

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets pending promise callbacks and setImmediate turns run. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
};

/** A producer whose sends complete when the test says so; the log records the order of events. */
function fakes(log: string[]) {
  const sends: { messages: OutgoingMessage[]; done: Deferred }[] = [];
  const marks: { ids: string[]; writers: number[]; done: Deferred }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const producer: EventProducer = {
    send: (messages) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const done = deferred();
      sends.push({ messages: [...messages], done });
      log.push(`send ${messages.map((m) => m.value).join(',')}`);
      return done.promise.finally(() => inFlight--);
    },
    disconnect: async () => {},
  };
  const marker: Marker = {
    mark: (keys, writers) => {
      const ids = [...keys.values()].flat().map((key) => key.join('|'));
      const done = deferred();
      marks.push({ ids, writers: [...writers].sort((a, b) => a - b), done });
      log.push(`mark ${ids.join(',')}`);
      return done.promise;
    },
    close: async () => {},
  };
  return { producer, marker, sends, marks, maxInFlight: () => maxInFlight };
}

function batcher(overrides: Partial<BatcherOptions> & Pick<BatcherOptions, 'producer'>, log: string[]) {
  const failures: Error[] = [];
  const pressure: boolean[] = [];
  const b = new Batcher({
    marker: null,
    maxBatchBytes: 1_000_000,
    maxBatchMessages: 1_000,
    highWaterBytes: 1_000_000,
    lowWaterBytes: 500_000,
    onDelivered: (count) => log.push(`delivered ${count}`),
    onPressure: (paused) => pressure.push(paused),
    onFailure: (error) => failures.push(error),
    ...overrides,
  });
  return { b, failures, pressure };
}

const TABLE = { qualified: 'public.t', primaryKey: ['id'] } as CapturedTable;
/** An event of table t, written by transaction `xid`; `marked`: its row is to be flagged sent_to_kafka. */
const message = (value: string, marked = false, xid = 700): DecodedChange =>
  ({ op: 'c', table: TABLE, topic: 't', key: `{"id":${value}}`, value, markKey: marked ? [value] : null, xid, schema: null, headers: null });

describe('send batcher', () => {
  it('keeps one send in flight; events pushed meanwhile form the next batch', async () => {
    const log: string[] = [];
    const f = fakes(log);
    const { b } = batcher({ producer: f.producer }, log);
    b.push(message('1'));
    b.push(message('2'));
    await settle();
    assert.equal(f.sends.length, 1, 'one socket read, one batch');
    b.push(message('3'));
    b.push(message('4'));
    await settle();
    assert.equal(f.sends.length, 1, 'no second send while the first is in flight');
    f.sends[0]!.done.resolve();
    await settle();
    assert.equal(f.sends.length, 2);
    assert.deepEqual(f.sends[1]!.messages.map((m) => m.value), ['3', '4']);
    f.sends[1]!.done.resolve();
    await b.drain();
    assert.equal(f.maxInFlight(), 1);
    assert.deepEqual(log, ['send 1,2', 'send 3,4', 'delivered 2', 'delivered 4']);
  });

  it('marks a batch only after Kafka acknowledged it, in batch order, and reports delivery only after its marks committed', async () => {
    const log: string[] = [];
    const f = fakes(log);
    const { b } = batcher({ producer: f.producer, marker: f.marker, maxBatchMessages: 2 }, log);
    b.push(message('1', true));
    b.push(message('2')); // nothing to mark (already flagged)
    b.push(message('3', true));
    b.push(message('4', true));
    await settle();
    assert.deepEqual(log, ['send 1,2'], 'nothing marked before the ack');
    f.sends[0]!.done.resolve();
    await settle();
    // The next send overlaps the first batch's marking; its own marking waits for the ack and for the first.
    assert.deepEqual(log, ['send 1,2', 'send 3,4', 'mark 1']);
    f.sends[1]!.done.resolve();
    await settle();
    assert.equal(f.marks.length, 1, 'the second batch is not marked before the first finished');
    assert.ok(!log.includes('delivered 2'), 'not delivered before the marks committed');
    f.marks[0]!.done.resolve();
    await settle();
    assert.deepEqual(log.slice(3), ['delivered 2', 'mark 3,4']);
    f.marks[1]!.done.resolve();
    await b.drain();
    assert.deepEqual(log.slice(5), ['delivered 4']);
  });

  it('batches acknowledged while a marking runs are marked together by the next one, then delivered at once', async () => {
    const log: string[] = [];
    const f = fakes(log);
    const { b } = batcher({ producer: f.producer, marker: f.marker, maxBatchMessages: 1 }, log);
    for (const id of ['1', '2', '3', '4']) b.push(message(id, true, 700 + (Number(id) % 3)));
    b.push(message('5', false, 799)); // written, not to be marked: not a writer to wait for
    await settle();
    f.sends[0]!.done.resolve();
    await settle();
    assert.deepEqual(f.marks.map((m) => m.ids), [['1']]);
    for (const i of [1, 2, 3, 4]) {
      f.sends[i]!.done.resolve();
      await settle();
    }
    assert.equal(f.marks.length, 1, 'one marking at a time');
    f.marks[0]!.done.resolve();
    await settle();
    assert.deepEqual(f.marks.map((m) => m.ids), [['1'], ['2', '3', '4']], 'the batches acknowledged meanwhile: one marking');
    assert.deepEqual(f.marks.map((m) => m.writers), [[701], [700, 701, 702]], 'with the transactions that wrote their rows');
    assert.deepEqual(log.filter((line) => line.startsWith('delivered')), ['delivered 1']);
    f.marks[1]!.done.resolve();
    await b.drain();
    assert.deepEqual(log.filter((line) => line.startsWith('delivered')), ['delivered 1', 'delivered 5']);
  });

  it('the first failure is final: reported once, drain rejects, nothing is delivered after it', async () => {
    const log: string[] = [];
    const f = fakes(log);
    const { b, failures } = batcher({ producer: f.producer, marker: f.marker, maxBatchMessages: 1 }, log);
    b.push(message('1', true));
    b.push(message('2', true));
    await settle();
    f.sends[0]!.done.resolve();
    await settle();
    f.sends[1]!.done.resolve();
    await settle();
    f.marks[0]!.done.reject(new Error('marker lost its connection'));
    await settle();
    assert.equal(failures.length, 1);
    assert.match(failures[0]!.message, /marker lost its connection/);
    await assert.rejects(b.drain(), /marker lost its connection/);
    assert.equal(f.marks.length, 1, 'the batch after the failure is not marked');
    b.push(message('3', true));
    await settle();
    assert.equal(f.sends.length, 2, 'nothing sent after the failure');
    assert.ok(!log.some((line) => line.startsWith('delivered')), 'nothing delivered');
  });

  it('a failed send is final too, and a later failure is not reported again', async () => {
    const log: string[] = [];
    const f = fakes(log);
    const { b, failures } = batcher({ producer: f.producer }, log);
    b.push(message('1'));
    await settle();
    f.sends[0]!.done.reject(new Error('broker down'));
    await settle();
    await assert.rejects(b.drain(), /broker down/);
    b.push(message('2'));
    await settle();
    assert.equal(f.sends.length, 1);
    assert.equal(failures.length, 1);
  });

  it('pressure: on past the high water mark of undelivered bytes, off below the low one', async () => {
    const log: string[] = [];
    const f = fakes(log);
    // Each message counts its value + key + 64 bytes of overhead.
    const big = (n: string): DecodedChange => ({ ...message(n), key: null, value: `${n}${'x'.repeat(999)}` });
    const { b, pressure } = batcher({ producer: f.producer, maxBatchMessages: 1, highWaterBytes: 2_500, lowWaterBytes: 1_500 }, log);
    b.push(big('1'));
    b.push(big('2'));
    assert.deepEqual(pressure, []);
    b.push(big('3'));
    assert.deepEqual(pressure, [true], 'paused once past 2500 bytes');
    b.push(big('4'));
    assert.deepEqual(pressure, [true], 'reported once');
    await settle();
    f.sends[0]!.done.resolve();
    await settle();
    f.sends[1]!.done.resolve();
    await settle();
    assert.deepEqual(pressure, [true], '2 of 4 undelivered: still above the low water mark');
    f.sends[2]!.done.resolve();
    await settle();
    assert.deepEqual(pressure, [true, false], 'resumed below 1500 bytes');
    f.sends[3]!.done.resolve();
    await b.drain();
  });
});
