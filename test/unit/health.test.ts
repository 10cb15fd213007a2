/**
 * /readyz and walbridge_ready follow the process's progress heartbeat: not
 * ready before the first one, ready after it, not ready again once it is
 * older than a minute (a stuck process, or a dependency away). The clock is
 * the test's; the endpoint is real HTTP on a free port.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { serveHealth, type Health } from '../../src/observability/health.js';
import { freePort } from '../support/ports.js';
import { get, sample } from '../support/metrics.js';

describe('readiness', () => {
  let health: Health | undefined;
  after(async () => health?.close());

  it('503 before the first progress, 200 after it, 503 with the idle time once it is over a minute old', async () => {
    let clock = 1_000_000;
    const port = await freePort();
    health = await serveHealth(port, () => clock);

    const starting = await get(port, '/readyz');
    assert.equal(starting.status, 503);
    assert.match(starting.text, /starting: not connected and moving yet/);
    assert.equal(sample((await get(port, '/metrics')).text, 'walbridge_ready'), 0);
    assert.equal((await get(port, '/healthz')).status, 200, 'alive even when not ready');

    health.progressed();
    clock += 60_000;
    assert.equal((await get(port, '/readyz')).status, 200);
    assert.equal(sample((await get(port, '/metrics')).text, 'walbridge_ready'), 1);

    clock += 1_000;
    const stale = await get(port, '/readyz');
    assert.equal(stale.status, 503);
    assert.match(stale.text, /no progress for 61s/);
    assert.equal(sample((await get(port, '/metrics')).text, 'walbridge_ready'), 0);

    health.progressed();
    assert.equal((await get(port, '/readyz')).status, 200, 'ready again on the next progress');
  });
});
