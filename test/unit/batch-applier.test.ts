import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ConsumedMessage } from '../../src/kafka/consumer.js';
import type { DeadLetterProducer, Letter } from '../../src/kafka/dead-letter.js';
import type { ClickHouseWriter } from '../../src/sink/clickhouse/writer.js';
import { BatchApplier, DeadLetterFlood } from '../../src/sink/batch-applier.js';
import { RowBatch } from '../../src/sink/row-batch.js';
import { createLogger } from '../../src/observability/logger.js';

const message = (offset: number): ConsumedMessage => ({ topic: 't', partition: 0, offset: BigInt(offset), key: null, value: null, headers: {} });

function applierWith(inserted: string[][], sent: Letter[]): BatchApplier {
  const writer = { insert: async (_table: string, lines: string[]) => void inserted.push([...lines]) } as unknown as ClickHouseWriter;
  const letters = { send: async (batch: Letter[]) => void sent.push(...batch) } as unknown as DeadLetterProducer;
  return new BatchApplier(writer, new Map(), letters, createLogger('test'), 'ch', undefined, undefined, undefined, 0.5);
}

describe('BatchApplier', () => {
  it('leaves out rows and letters read before the current generation (the rebalance fence)', async () => {
    const inserted: string[][] = [];
    const sent: Letter[] = [];
    const batch = new RowBatch<ConsumedMessage>({ maxRows: 100, maxBytes: 1e6, lingerMs: 0 });
    batch.addRow('a', { table: 'x', line: 'old', version: 1n, deleted: false, source: message(1), generation: 1 });
    batch.addRow('b', { table: 'x', line: 'new', version: 1n, deleted: false, source: message(2), generation: 2 });
    batch.addDeadLetter({ source: message(3), error: 'bad', generation: 1 }, 1);
    const counts = await applierWith(inserted, sent).apply(batch, () => 2);
    assert.deepEqual(inserted, [['new']]);
    assert.equal(sent.length, 0);
    assert.equal(counts.upserts, 1);
  });
  it('stops on a dead-letter flood before sending any letter', async () => {
    const inserted: string[][] = [];
    const sent: Letter[] = [];
    const batch = new RowBatch<ConsumedMessage>({ maxRows: 100, maxBytes: 1e6, lingerMs: 0 });
    for (let i = 0; i < 12; i += 1) {
      batch.take('t', 0, BigInt(i), 1);
      batch.addDeadLetter({ source: message(i), error: 'bad', generation: 1 }, 1);
    }
    await assert.rejects(applierWith(inserted, sent).apply(batch, () => 1), (e: unknown) => e instanceof DeadLetterFlood && /12 of 12 messages/.test(e.message));
    assert.equal(sent.length, 0);
  });
  it('dead-letters a few bad messages below the minimum, whatever their share', async () => {
    const sent: Letter[] = [];
    const batch = new RowBatch<ConsumedMessage>({ maxRows: 100, maxBytes: 1e6, lingerMs: 0 });
    batch.take('t', 0, 0n, 1);
    batch.addDeadLetter({ source: message(0), error: 'bad', generation: 1 }, 1);
    const counts = await applierWith([], sent).apply(batch, () => 1);
    assert.equal(sent.length, 1);
    assert.equal(counts.deadLetters, 1);
  });
});
