/** Which streamed transactions a marking UPDATE's snapshot did not see yet (src/cdc/postgres/marker.ts, invisibleIn). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { invisibleIn } from '../../src/cdc/postgres/marker.js';

describe('marker visibility', () => {
  it('a committed xid below xmax and not running is visible; running ones and those at or past xmax are not', () => {
    assert.deepEqual(invisibleIn('100:110:', [90, 100, 109]), []);
    assert.deepEqual(invisibleIn('100:110:103,107', [103, 104, 107]), [103, 107]);
    assert.deepEqual(invisibleIn('100:110:', [110, 111]), [110, 111], 'xmax and later: not yet completed when the snapshot was taken');
  });

  it('compares the stream\'s 32-bit xids with the snapshot\'s 64-bit ones across an epoch', () => {
    const epoch = 2n ** 32n;
    // xmax just past the wrap: the stream's 4294967290 is the previous epoch's, visible; 5 is running.
    assert.deepEqual(invisibleIn(`${epoch - 20n}:${epoch + 10n}:${epoch + 5n}`, [4294967290, 5, 9, 10]), [5, 10]);
    assert.deepEqual(invisibleIn(`${3n * epoch + 1n}:${3n * epoch + 2n}:`, [1]), []);
  });

  it('nothing to wait for: no xids', () => {
    assert.deepEqual(invisibleIn('1:2:', []), []);
  });
});
