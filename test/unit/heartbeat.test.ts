import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HEARTBEAT_PREFIX, startHeartbeat } from '../../src/cdc/heartbeat.js';
import type { LogicalMessage } from '../../src/cdc/postgres/pgoutput-reader.js';
import type { TransactionContext } from '../../src/cdc/postgres/decode.js';
import { registry } from '../../src/observability/metrics.js';
import { createLogger } from '../../src/observability/logger.js';

const message = (slot: string, prefix = HEARTBEAT_PREFIX): LogicalMessage =>
  ({ tag: 'message', transactional: true, lsn: 0n, prefix, content: Buffer.from(JSON.stringify({ slot })) });
const txn = (finalLsn: bigint, commitSeconds: number): TransactionContext =>
  ({ xid: 1, finalLsn, commitTimeUs: commitSeconds * 1e6, lastCommitLsn: null, order: 1 });
const value = async (name: string): Promise<number> => (await registry.getSingleMetric(name)!.get()).values[0]!.value;

describe('heartbeat: counted once its commit is confirmed, own slot only', () => {
  it('counts a heartbeat when the confirmed LSN passes its commit, not before', async () => {
    // An hour's interval: no timer fires, so nothing is written to a database here.
    const heartbeat = startHeartbeat({ databaseUrl: 'postgres://unused', slot: 's1', intervalMs: 3_600_000, logger: createLogger('test') });
    try {
      heartbeat.onLogicalMessage(message('s1'), txn(100n, 1_000));
      heartbeat.onLogicalMessage(message('other_slot'), txn(200n, 2_000));
      heartbeat.onLogicalMessage(message('s1', 'walbridge.snapshot'), txn(250n, 2_500));
      heartbeat.onLogicalMessage(message('s1'), txn(300n, 3_000));
      const before = await value('walbridge_cdc_heartbeats_total');
      heartbeat.confirmed(100n); // an earlier commit's end can equal this commit record's start: not through yet
      assert.equal(await value('walbridge_cdc_heartbeats_total'), before);
      heartbeat.confirmed(150n);
      assert.equal(await value('walbridge_cdc_heartbeats_total'), before + 1);
      assert.equal(await value('walbridge_cdc_heartbeat_timestamp_seconds'), 1_000);
      heartbeat.confirmed(400n); // the other slot's heartbeat and the watermark are not counted
      assert.equal(await value('walbridge_cdc_heartbeats_total'), before + 2);
      assert.equal(await value('walbridge_cdc_heartbeat_timestamp_seconds'), 3_000);
    } finally {
      await heartbeat.stop();
    }
  });
});
