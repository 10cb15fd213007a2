import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TableSelection } from '../../src/sink/table-selection.js';

const rules = (over: Partial<ConstructorParameters<typeof TableSelection>[0]>) =>
  new TableSelection({ topicPrefix: 'wb', tables: [], excludeTables: [], ...over });
const topics = ['wb.public.orders', 'wb.public.order_items', 'wb.public.orders.dlq', 'wb.audit.log', 'other.public.x', '__consumer_offsets'];

describe('TableSelection', () => {
  it('selects exact names and * patterns, minus exclusions, never dead-letter topics', () => {
    const selected = rules({ tables: ['public.*'], excludeTables: ['public.order_items'] }).select(topics);
    assert.deepEqual(selected, [{ topic: 'wb.public.orders', schema: 'public', table: 'orders', targetTable: 'orders' }]);
    assert.deepEqual(rules({ tables: ['audit.log', 'orders'] }).select(topics).map((t) => t.topic), ['wb.audit.log', 'wb.public.orders']);
  });
  it('keeps exact tables whose topic does not exist yet (so --once can refuse them)', () => {
    assert.deepEqual(rules({ tables: ['public.missing'] }).select(topics).map((t) => t.topic), ['wb.public.missing']);
  });
  it('matches --topic-pattern against whole topic names', () => {
    const selected = rules({ topicPattern: 'wb\\.public\\.order.*' }).select(topics);
    assert.deepEqual(selected.map((t) => [t.topic, t.targetTable]), [['wb.public.order_items', 'order_items'], ['wb.public.orders', 'orders']]);
  });
  it('refuses two topics landing in one table, naming both', () => {
    assert.throws(() => rules({ topicPattern: '.*\\.x|wb\\.audit\\.x' }).select(['a.public.x', 'wb.audit.x']),
      /topics a\.public\.x and wb\.audit\.x would both land in ClickHouse table x/);
  });
  it('refuses --target-table with patterns', () => {
    assert.throws(() => rules({ tables: ['public.*'], targetTable: 't' }), /--target-table/);
  });
});
