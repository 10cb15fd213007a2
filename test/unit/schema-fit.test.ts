import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ColumnSchema, TableSchema } from '../../src/core/envelope.js';
import { replicatedSchema } from '../../src/core/envelope.js';
import { featuresOf } from '../../src/sink/clickhouse/schema.js';
import { fitSchema, relate } from '../../src/sink/clickhouse/schema-fit.js';
import { createTableSql } from '../../src/sink/clickhouse/table-ddl.js';
import { clickHouseTypeOf } from '../../src/sink/clickhouse/type-mapping.js';

const old = featuresOf('18.16.1');
const current = featuresOf('24.8.4.13');
const col = (name: string, typeOid: number, typmod = -1, extra: Partial<ColumnSchema> = {}): ColumnSchema => ({ name, typeOid, typmod, key: false, ...extra });
const numeric = (p: number, s: number) => ((p << 16) | s) + 4;

describe('PostgreSQL → ClickHouse type mapping', () => {
  it('maps each type losslessly, by server version', () => {
    const cases: [ColumnSchema, string, string][] = [
      [col('b', 16), 'Nullable(UInt8)', 'Nullable(UInt8)'],
      [col('i', 23, -1, { key: true }), 'Int32', 'Int32'],
      [col('l', 20), 'Nullable(Int64)', 'Nullable(Int64)'],
      [col('n', 1700, numeric(10, 2)), 'Nullable(Decimal(10, 2))', 'Nullable(Decimal(10, 2))'],
      [col('n', 1700, numeric(30, 4)), 'Nullable(String)', 'Nullable(Decimal(30, 4))'],
      [col('n', 1700), 'Nullable(String)', 'Nullable(String)'],
      [col('u', 2950), 'Nullable(UUID)', 'Nullable(UUID)'],
      [col('d', 1082), 'Nullable(Date)', 'Nullable(Date32)'],
      [col('t', 1083), 'Nullable(Int64)', 'Nullable(Int64)'],
      [col('ts', 1114, 3), "Nullable(DateTime('UTC'))", "Nullable(DateTime64(3, 'UTC'))"],
      [col('tz', 1184), "Nullable(DateTime('UTC'))", "Nullable(DateTime64(6, 'UTC'))"],
      [col('j', 3802), 'Nullable(String)', 'Nullable(String)'],
      [col('e', 16_385, -1, { typeName: 'mood' }), 'Nullable(String)', 'Nullable(String)'],
      [col('a', 1007), 'Array(Nullable(Int32))', 'Array(Nullable(Int32))'],
      [col('ea', 16_384, -1, { typeName: '_mood' }), 'Array(Nullable(String))', 'Array(Nullable(String))'],
    ];
    for (const [column, on18, onNew] of cases) {
      assert.equal(clickHouseTypeOf(column, old), on18, column.name);
      assert.equal(clickHouseTypeOf(column, current), onNew, column.name);
    }
  });
  it('creates the table like migrate, with PostgreSQL\'s missing value as DEFAULT', () => {
    const schema: TableSchema = { schema: 'public', table: 't', columns: [col('a', 23, -1, { key: true }), col('b', 25, -1, { key: true }), col('c', 25, -1, { missing: 'x' })] };
    assert.equal(createTableSql('db', 't', schema, old),
      'CREATE TABLE IF NOT EXISTS `db`.`t` (\n    `a` Int32,\n    `b` String,\n    `c` Nullable(String) DEFAULT CAST(\'x\' AS Nullable(String)),\n' +
      "    `_version` UInt64,\n    `_seq` UInt64,\n    `_is_deleted` UInt8,\n    `_synced_at` DateTime('UTC') DEFAULT now()\n) ENGINE = ReplacingMergeTree(_version)\nORDER BY (`a`, `b`)");
    assert.match(createTableSql('db', 't', schema, current), /DateTime64\(6, 'UTC'\) DEFAULT now64\(6\)\n\) ENGINE = ReplacingMergeTree\(_version, _is_deleted\)/);
  });
});

describe('fitSchema', () => {
  const table = [
    { name: 'id', type: 'Int32', default_type: '' }, { name: 'n', type: 'Nullable(Int32)', default_type: '' },
    { name: 'gone', type: 'Nullable(String)', default_type: '' }, { name: '_version', type: 'UInt64', default_type: '' },
  ];
  const schema = (columns: ColumnSchema[]): TableSchema => ({ schema: 'public', table: 't', columns: [col('id', 23, -1, { key: true }), ...columns] });
  it('adds new columns, widens types, keeps columns dropped in PostgreSQL', () => {
    const fit = fitSchema('db', 't', replicatedSchema(schema([col('n', 20), col('added', 25, -1, { missing: 'x' }), col('sent_to_kafka', 16)])), table, new Set(['id']), new Set(), old);
    assert.deepEqual(fit.changes.map((c) => c.sql), [
      'ALTER TABLE `db`.`t` MODIFY COLUMN `n` Nullable(Int64)',
      "ALTER TABLE `db`.`t` ADD COLUMN `added` Nullable(String) DEFAULT CAST('x' AS Nullable(String))",
    ]);
    assert.deepEqual(fit.blockers, []);
    assert.deepEqual(fit.droppedInPostgres, ['gone']);
  });
  it('blocks on an incompatible type and on a column dropped in ClickHouse by hand, naming the DDL', () => {
    const fit = fitSchema('db', 't', schema([col('n', 1114), col('lost', 25)]), table, new Set(['id']), new Set(['lost']), old);
    assert.equal(fit.changes.length, 0);
    assert.match(fit.blockers[0] ?? '', /column n is Nullable\(Int32\), but public\.t\.n is now PostgreSQL timestamp .*MODIFY COLUMN `n` Nullable\(DateTime\('UTC'\)\)/);
    assert.match(fit.blockers[1] ?? '', /has no column lost any more .*ADD COLUMN `lost` Nullable\(String\)/);
  });
  it('relates types: what holds, what widens', () => {
    assert.equal(relate('Int64', 'Int32'), 'holds');
    assert.equal(relate('Int32', 'Int64'), 'widen');
    assert.equal(relate('Decimal(10, 2)', 'Decimal(12, 2)'), 'widen');
    assert.equal(relate('Decimal(10, 2)', 'Decimal(10, 4)'), 'incompatible');
    assert.equal(relate('Int32', 'String'), 'widen');
    assert.equal(relate('Array(Nullable(Int32))', 'Array(Nullable(Int64))'), 'widen');
    assert.equal(relate('Date', "DateTime('UTC')"), 'incompatible');
  });
});
