import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Checkpointer } from '../../src/cdc/postgres/checkpointer.js';

describe('Checkpointer: confirm late, never early, never backwards', () => {
  it('confirms a commit only after all its events are delivered', () => {
    const c = new Checkpointer(100n);
    c.begin();
    c.submit(3);
    assert.equal(c.commit(200n), false);
    assert.equal(c.deliveredThrough(2), false);
    assert.equal(c.confirmed, 100n);
    assert.equal(c.deliveredThrough(3), true);
    assert.equal(c.confirmed, 200n);
  });

  it('never lets a later transaction overtake an unfinished earlier one', () => {
    const c = new Checkpointer(0n);
    c.begin();
    c.submit(2);
    c.commit(10n); // events 1-2
    c.begin();
    c.commit(20n); // no events (e.g. walbridge's own marking, skipped)
    c.begin();
    c.submit(1);
    c.commit(30n); // event 3
    assert.equal(c.confirmed, 0n);
    c.deliveredThrough(1);
    assert.equal(c.confirmed, 0n);
    c.deliveredThrough(2);
    assert.equal(c.confirmed, 20n);
    c.deliveredThrough(3);
    assert.equal(c.confirmed, 30n);
    c.deliveredThrough(2); // a stale report does not move it back
    assert.equal(c.confirmed, 30n);
  });

  it('confirms a keepalive WAL end only when nothing is open or in flight', () => {
    const c = new Checkpointer(50n, 4);
    assert.equal(c.idle, true);
    assert.equal(c.keepalive(40n), false, 'never backwards');
    assert.equal(c.keepalive(60n), true);
    c.begin();
    assert.equal(c.keepalive(70n), false, 'a transaction is open');
    c.submit(1);
    c.commit(80n);
    assert.equal(c.keepalive(90n), false, 'an event is in flight');
    c.deliveredThrough(5);
    assert.equal(c.confirmed, 80n);
    assert.equal(c.keepalive(90n), true);
    assert.equal(c.confirmed, 90n);
  });
});

describe('Checkpointer.freeze: nothing after a failure is confirmed', () => {
  it('ignores later commits, deliveries and keepalives', () => {
    const c = new Checkpointer(100n);
    c.begin();
    c.submit(1);
    c.commit(200n);
    c.deliveredThrough(1);
    assert.equal(c.confirmed, 200n);
    c.begin();
    c.submit(1); // the event that failed to decode was never submitted; this one was
    c.freeze();
    assert.equal(c.commit(300n), false);
    assert.equal(c.deliveredThrough(2), false);
    assert.equal(c.keepalive(400n), false);
    assert.equal(c.confirmed, 200n);
  });
});
