import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ClickHouseClient } from '@clickhouse/client';
import { ClusterDdlTimeout, clusterFrom, forCluster, runDdl } from '../../src/sink/clickhouse/cluster.js';
import { createTableSql } from '../../src/sink/clickhouse/table-ddl.js';
import { featuresOf } from '../../src/sink/clickhouse/schema.js';

describe('forCluster', () => {
  it('leaves every statement alone without a cluster', () => {
    assert.equal(forCluster('CREATE TABLE t (id Int32) ENGINE = MergeTree ORDER BY id', 'db', undefined), 'CREATE TABLE t (id Int32) ENGINE = MergeTree ORDER BY id');
  });
  it('qualifies the table, adds ON CLUSTER and makes a ReplacingMergeTree replicated with its arguments', () => {
    const sql = 'CREATE TABLE IF NOT EXISTS user_logins (\n    id Int32,\n    _version UInt64\n) ENGINE = ReplacingMergeTree(_version)\nORDER BY id';
    assert.equal(forCluster(sql, 'my db', 'walbridge'), 'CREATE TABLE IF NOT EXISTS `my db`.`user_logins` ON CLUSTER `walbridge` (\n    id Int32,\n    _version UInt64\n) ' +
      "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/my db/user_logins', '{replica}', _version)\nORDER BY id");
  });
  it('takes the database of a qualified name, and a MergeTree without arguments', () => {
    assert.equal(forCluster('CREATE TABLE IF NOT EXISTS `d`.`t.x` (a String) ENGINE = MergeTree ORDER BY a', 'other', 'c'),
      "CREATE TABLE IF NOT EXISTS `d`.`t.x` ON CLUSTER `c` (a String) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d/t.x', '{replica}') ORDER BY a");
  });
  it('handles the sink\'s own CREATE TABLE for 18.16 and for servers with ReplacingMergeTree(_version, _is_deleted)', () => {
    const schema = { schema: 'public', table: 'orders', columns: [{ name: 'id', type: 'int4', key: true }] } as never;
    assert.match(forCluster(createTableSql('db', 'orders', schema, featuresOf('18.16.1')), 'db', 'c'),
      /^CREATE TABLE IF NOT EXISTS `db`\.`orders` ON CLUSTER `c` \(.*ENGINE = ReplicatedReplacingMergeTree\('\/clickhouse\/tables\/\{shard\}\/db\/orders', '\{replica\}', _version\)\nORDER BY \(`id`\)$/s);
    assert.match(forCluster(createTableSql('db', 'orders', schema, featuresOf('24.3.1')), 'db', 'c'), /ReplicatedReplacingMergeTree\('[^']+', '\{replica\}', _version, _is_deleted\)/);
  });
  it('gives a view and a database ON CLUSTER, and leaves ALTER and INSERT to ClickHouse\'s own replication', () => {
    assert.equal(forCluster('CREATE VIEW IF NOT EXISTS v AS SELECT 1', 'db', 'c'), 'CREATE VIEW IF NOT EXISTS `db`.`v` ON CLUSTER `c` AS SELECT 1');
    assert.equal(forCluster('CREATE DATABASE IF NOT EXISTS `db`', 'default', 'c'), 'CREATE DATABASE IF NOT EXISTS `db` ON CLUSTER `c`');
    assert.equal(forCluster('ALTER TABLE `db`.`t` DELETE WHERE 1', 'db', 'c'), 'ALTER TABLE `db`.`t` DELETE WHERE 1');
  });
  it('refuses a table it cannot make replicated', () => {
    assert.throws(() => forCluster('CREATE TABLE t (a Int8) ENGINE = Log', 'db', 'c'), /cannot make this table replicated/);
  });
});

describe('runDdl on a cluster', () => {
  const failing = (message: string): ClickHouseClient => ({ command: async () => { throw new Error(message); } }) as unknown as ClickHouseClient;
  it('turns distributed_ddl_task_timeout into a ClusterDdlTimeout naming the hosts behind', async () => {
    const error = await runDdl(failing('Code: 159, e.displayText() = DB::Exception: Watching task /clickhouse/task_queue/ddl/query-0000000004 is executing longer than ' +
      'distributed_ddl_task_timeout (=5) seconds. There are 1 unfinished hosts (0 of them are currently active), they are going to execute the query in background'),
    'CREATE TABLE t (a Int8) ENGINE = MergeTree ORDER BY a', 'db', 'walbridge').catch((e: Error) => e);
    assert.ok(error instanceof ClusterDdlTimeout);
    assert.match(error.message, /^ON CLUSTER DDL not confirmed by 1 host\(s\) of cluster walbridge \(0 of them active\) within distributed_ddl_task_timeout: CREATE TABLE `db`\.`t` ON CLUSTER/);
  });
  it('names the host whose DDL failed', async () => {
    const error = await runDdl(failing('Code: 60, e.displayText() = DB::Exception: There was an error on [127.0.0.1:39000]: Code: 60, e.displayText() = DB::Exception: Table default.t doesn\'t exist.'),
      'CREATE VIEW v AS SELECT * FROM t', 'db', 'walbridge').catch((e: Error) => e);
    assert.match((error as Error).message, /^ON CLUSTER DDL failed on 127\.0\.0\.1:39000 of cluster walbridge: /);
  });
  it('asks the server to hold the per-host answer until every host answered, for less than the client waits', async () => {
    const seen: unknown[] = [];
    const client = { command: async (params: unknown) => void seen.push(params) } as unknown as ClickHouseClient;
    await runDdl(client, 'CREATE DATABASE IF NOT EXISTS x', 'default', 'c');
    assert.deepEqual(seen, [{ query: 'CREATE DATABASE IF NOT EXISTS x ON CLUSTER `c`', clickhouse_settings: { wait_end_of_query: 1, distributed_ddl_task_timeout: '45' } }]);
  });
});

describe('clusterFrom', () => {
  it('takes the flag, else CLICKHOUSE_CLUSTER; empty is none', () => {
    assert.equal(clusterFrom('a', { CLICKHOUSE_CLUSTER: 'b' }), 'a');
    assert.equal(clusterFrom(undefined, { CLICKHOUSE_CLUSTER: 'b' }), 'b');
    assert.equal(clusterFrom(undefined, { CLICKHOUSE_CLUSTER: ' ' }), undefined);
    assert.equal(clusterFrom('', { CLICKHOUSE_CLUSTER: 'b' }), undefined);
  });
});
