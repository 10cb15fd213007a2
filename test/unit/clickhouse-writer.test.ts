import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ClickHouseClient } from '@clickhouse/client';
import { ClickHouseWriter } from '../../src/sink/clickhouse/writer.js';

describe('ClickHouseWriter.applyTruncate', () => {
  it('deletes before it records the truncate, so a crash between the two never skips the delete', async () => {
    const queries: string[] = [];
    const client = { command: async ({ query }: { query: string }) => void queries.push(query) } as unknown as ClickHouseClient;
    const writer = new ClickHouseWriter(client, 'db', false);
    await writer.applyTruncate('user_logins', 42n);
    assert.equal(queries.length, 2);
    assert.match(queries[0]!, /^ALTER TABLE `db`\.`user_logins` DELETE WHERE `_version` < 42$/);
    assert.match(queries[1]!, /^INSERT INTO `db`\.`walbridge_sink_truncates` .*'user_logins', 42\)$/);
  });
});
