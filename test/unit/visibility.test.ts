/** Which streamed transactions (32-bit xids) a snapshot does not see yet (src/cdc/postgres/visibility.ts). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { awaitVisible, invisibleIn, visibilityIn } from '../../src/cdc/postgres/visibility.js';

describe('visibility in a snapshot', () => {
  it('a committed xid below xmax and not running is visible; running ones and those at or past xmax are not', () => {
    assert.deepEqual(invisibleIn('100:110:', [90, 100, 109]), []);
    assert.deepEqual(invisibleIn('100:110:103,107', [103, 104, 107]), [103, 107]);
    assert.deepEqual(invisibleIn('100:110:', [110, 111]), [110, 111], 'xmax and later: not yet completed when the snapshot was taken');
  });

  it('compares the stream\'s 32-bit xids with the snapshot\'s 64-bit ones across an epoch', () => {
    const epoch = 2n ** 32n;
    // xmax just past the wrap: the stream's 4294967290 is the previous epoch's, visible; 5 is running.
    assert.deepEqual(invisibleIn(`${epoch - 20n}:${epoch + 10n}:${epoch + 5n}`, [4294967290, 5, 9, 10]), [5, 10]);
    // Just before the wrap: 4294967295 committed, 3 (after the wrap, ids 0-2 are never assigned) not yet.
    assert.deepEqual(invisibleIn(`${3n * epoch - 10n}:${3n * epoch + 3n}:`, [4294967295, 3]), [3]);
  });

  it('nothing to wait for: no xids; not a snapshot: an error', () => {
    assert.deepEqual(invisibleIn('1:2:', []), []);
    assert.throws(() => visibilityIn('garbage'), /not a snapshot/);
  });

  it('awaitVisible reads snapshots until every transaction is visible, and only then resolves', async () => {
    // 7 running, then visible; 11 at xmax, then visible; 8 visible from the start.
    const snapshots = ['5:10:7', '5:10:7', '5:11:', '5:12:', '5:13:'];
    let reads = 0;
    await awaitVisible(async () => snapshots[reads++]!, [7, 8, 11], () => {});
    assert.equal(reads, 4, 'read again while one is invisible, up to the first snapshot that sees them all');
  });

  it('awaitVisible with every transaction visible: one read', async () => {
    let reads = 0;
    await awaitVisible(async () => (reads++, '5:10:'), [6, 9], () => {});
    assert.equal(reads, 1);
  });
});
