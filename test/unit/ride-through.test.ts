/** cdc's outage loop (cdc/outages.ts): when a recovery counts, and when --retry-for gives up. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rideThrough } from '../../src/cdc/outages.js';
import type { CaptureOptions, CaptureSummary } from '../../src/cdc/run.js';
import { RetryGaveUp } from '../../src/core/retry.js';
import pino from 'pino';

const lost = (): Error => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
const options = (retryForMs: number): CaptureOptions => ({
  databaseUrl: 'postgres://u@127.0.0.1:5432/db', kafka: { brokers: ['127.0.0.1:9092'] }, retryForMs, logger: pino({ level: 'silent' }),
}) as unknown as CaptureOptions;

describe('rideThrough', () => {
  it('a stream that fails right after each restart is one outage: --retry-for gives up', async () => {
    let attempts = 0;
    const started = Date.now();
    await assert.rejects(rideThrough(options(2_000), async (_options, carried) => {
      attempts += 1;
      carried.recovered(0n as never);
      throw lost();
    }, 60_000), RetryGaveUp);
    assert.ok(attempts >= 2, `attempts: ${attempts}`);
    assert.ok(Date.now() - started < 10_000);
  });

  it('a stream that held ends the outage: the next failure starts a new bound', async () => {
    let attempts = 0;
    const summary = await rideThrough(options(1_500), async (_options, carried) => {
      attempts += 1;
      if (attempts > 1) carried.recovered(0n as never);
      if (attempts === 4) return { attempts } as unknown as CaptureSummary;
      // Held past streamHeldMs, then lost again: each loss is a fresh outage, the bound never runs out.
      if (attempts > 1) await new Promise((resolve) => setTimeout(resolve, 1_000));
      throw lost();
    }, 200);
    assert.deepEqual(summary, { attempts: 4 });
  });
});
