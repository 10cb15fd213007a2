/**
 * A drained `sink --once` must not end while rows the rebalance fence dropped
 * are unwritten: the worker asks the reader to read their partition again,
 * forgets how far it had read it, and ends only once the messages came again
 * and were written; nothing of the dropped batch is committed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { BatchHandler, ConsumedMessage, TopicOffsets, TopicReader } from '../../src/kafka/consumer.js';
import type { BatchApplier } from '../../src/sink/batch-applier.js';
import { emptyCounts } from '../../src/sink/batch-applier.js';
import type { RowBatch } from '../../src/sink/row-batch.js';
import { SinkWorker } from '../../src/sink/sink-worker.js';
import type { TableTarget } from '../../src/sink/table-target.js';
import { START_POSITION } from '../../src/core/envelope.js';
import { createLogger } from '../../src/observability/logger.js';

const message = (offset: number): ConsumedMessage => ({
  topic: 't', partition: 0, offset: BigInt(offset), key: Buffer.from(`{"id":${offset}}`), headers: {},
  value: Buffer.from(`{"op":"c","after":{"id":${offset}},"source":{"commit_lsn":"0/${(offset + 1).toString(16)}"}}`),
});

describe('SinkWorker and the rebalance fence', () => {
  it('a drained --once run whose rows were dropped reads them again before it ends', async () => {
    let handler: BatchHandler | undefined;
    const rewound: string[] = [];
    const commits: TopicOffsets[] = [];
    const reader: TopicReader = {
      generation: 1,
      async run(h) {
        handler = h;
      },
      commit: async (offsets) => {
        commits.push(offsets);
      },
      disconnect: async () => undefined,
      onFatal: () => undefined,
      rewind: (topic, partition) => rewound.push(`${topic}/${partition}`),
    };
    const target = {
      name: 'x', prepared: true, truncateFloor: START_POSITION, ready: () => true,
      mapper: { row: (event: { version: bigint }) => String(event.version), syncedAtFragment: () => '' },
    } as unknown as TableTarget;
    const written: string[] = [];
    let rebalanceDuringInsert = true;
    const applier = {
      apply: async (batch: RowBatch<ConsumedMessage>, generation: () => number) => {
        if (rebalanceDuringInsert) {
          rebalanceDuringInsert = false;
          (reader as { generation: number }).generation = 2; // a rebalance while the insert waited
        }
        for (const row of batch.rows.values()) if (row.generation === generation()) written.push(row.line);
        return emptyCounts();
      },
    } as unknown as BatchApplier;
    const worker = new SinkWorker(reader, new Map([['t', target]]), applier, createLogger('test'),
      { limits: { maxRows: 10_000, maxBytes: 8 * 1024 * 1024, lingerMs: 1 }, drainTo: new Map([['t', new Map([[0, 3n]])]]), commit: true, fromVersion: 0n });
    let ended = false;
    void worker.done.then(() => (ended = true));
    worker.start();
    const control = { lastOffset: 2n, taken: () => undefined, keepAlive: async () => undefined };

    await handler!('t', 0, [message(0), message(1), message(2)], control);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(written, [], 'read in generation 1, dropped in generation 2');
    assert.deepEqual(rewound, ['t/0']);
    assert.equal(commits.every((c) => c.size === 0), true, 'nothing of the dropped batch committed');
    assert.equal(ended, false, 'the end offset was reached, but its rows were dropped: not drained');

    await handler!('t', 0, [message(0), message(1), message(2)], control); // read again, generation 2
    await worker.done;
    assert.equal(written.length, 3);
    assert.deepEqual([...commits.at(-1)!.get('t') ?? []], [[0, 3n]]);
  });
});
