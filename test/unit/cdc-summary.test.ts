import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { summaryLine } from '../../src/cli/cdc-summary.js';

const base = { slot: 's', topics: ['w.public.t'], confirmed: 0x1a2b3c4n };

describe('cdc start summary line', () => {
  it('counts events as sent when every message was delivered', () => {
    const line = summaryLine({ ...base, counts: { r: 0, c: 2, u: 1, d: 0, t: 0 }, undelivered: 0 });
    assert.equal(line, 'sent 3 events (2 inserts, 1 update) from slot s to w.public.t; confirmed 0/1A2B3C4');
  });

  it('does not call undelivered events sent (the stop flush ran out of time)', () => {
    const line = summaryLine({ ...base, counts: { r: 0, c: 5, u: 0, d: 0, t: 0 }, undelivered: 2 });
    assert.doesNotMatch(line, /^sent/);
    assert.equal(line, 'read 5 events (5 inserts) from slot s to w.public.t; confirmed 0/1A2B3C4; 2 Kafka messages were not delivered before the stop (not confirmed: a restart sends them again)');
  });

  it('names every topic when several tables are captured', () => {
    const line = summaryLine({ ...base, topics: ['w.public.a', 'w.public.b'], counts: { r: 3, c: 0, u: 0, d: 0, t: 0 }, undelivered: 0 });
    assert.equal(line, 'sent 3 events (3 snapshot rows) from slot s to 2 topics (w.public.a, w.public.b); confirmed 0/1A2B3C4');
  });
});
