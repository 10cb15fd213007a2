import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ClickHouseClient } from '@clickhouse/client';
import { ClickHouseWriter } from '../../src/sink/clickhouse/writer.js';

describe('ClickHouseWriter.applyTruncate', () => {
  it('deletes before it records the truncate, so a crash between the two never skips the delete', async () => {
    const queries: string[] = [];
    const client = { command: async ({ query }: { query: string }) => void queries.push(query) } as unknown as ClickHouseClient;
    const writer = new ClickHouseWriter(client, 'db', false);
    await writer.applyTruncate('user_logins', { version: 42n, seq: 3n }, true);
    assert.equal(queries.length, 2);
    assert.match(queries[0]!, /^ALTER TABLE `db`\.`user_logins` DELETE WHERE `_version` < 42 OR \(`_version` = 42 AND `_seq` < 3\)$/);
    assert.match(queries[1]!, /^INSERT INTO `db`\.`walbridge_sink_truncates` .*'user_logins', 42, 3\)$/);
  });
  it('compares versions only on a table without _seq', async () => {
    const queries: string[] = [];
    const client = { command: async ({ query }: { query: string }) => void queries.push(query) } as unknown as ClickHouseClient;
    await new ClickHouseWriter(client, 'db', false).applyTruncate('t', { version: 42n, seq: 3n }, false);
    assert.match(queries[0]!, /DELETE WHERE `_version` < 42$/);
  });
});

describe('ClickHouseWriter.ensureTruncatesTable on a cluster', () => {
  const logger = { warn: () => {} } as never;
  function fakeClient(exists: number, commands: string[]): ClickHouseClient {
    return {
      command: async ({ query }: { query: string }) => void commands.push(query.replace(/\s+/g, ' ')),
      query: async ({ query }: { query: string }) => ({
        json: async () => (query.startsWith('EXISTS') ? [{ result: exists }] : [{ name: 'table_name' }, { name: 'version' }, { name: 'seq' }]),
      }),
    } as unknown as ClickHouseClient;
  }
  it('creates the table ON CLUSTER, replicated, when this replica lacks it', async () => {
    const commands: string[] = [];
    await new ClickHouseWriter(fakeClient(0, commands), 'db', false, 'walbridge').ensureTruncatesTable(logger);
    assert.equal(commands.length, 1);
    assert.match(commands[0]!, /^CREATE TABLE IF NOT EXISTS `db`\.`walbridge_sink_truncates` ON CLUSTER `walbridge` .*ENGINE = ReplicatedMergeTree\('\/clickhouse\/tables\/\{shard\}\/db\/walbridge_sink_truncates', '\{replica\}'\) ORDER BY/);
  });
  it('sends no ON CLUSTER DDL when this replica has it (a replica that is down would hold it up)', async () => {
    const commands: string[] = [];
    await new ClickHouseWriter(fakeClient(1, commands), 'db', false, 'walbridge').ensureTruncatesTable(logger);
    assert.deepEqual(commands, []);
  });
});
