import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fetchRows } from '../../src/cdc/postgres/snapshot.js';

describe('snapshot fetch size', () => {
  it('starts small while the row size is unknown', () => {
    assert.equal(fetchRows(0), 100);
  });
  it('reads 5,000 narrow rows per fetch, and fewer as rows grow, so a fetch holds about 4 MB', () => {
    assert.equal(fetchRows(500), 5_000);
    assert.equal(fetchRows(2_048), 2_048);
    assert.equal(fetchRows(1024 * 1024), 4);
  });
  it('reads at least one row, however large', () => {
    assert.equal(fetchRows(64 * 1024 * 1024), 1);
  });
});
