import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatLsn, maxLsn, parseLsn } from '../../src/core/lsn.js';

describe('lsn', () => {
  it('reads both spellings PostgreSQL and pg-logical-replication use as the same number', () => {
    assert.equal(parseLsn('0/16B3748'), parseLsn('00000000/016B3748'));
    assert.equal(parseLsn('0/16B3748'), 0x16b3748n);
  });
  it('compares numerically where text comparison would be wrong', () => {
    assert.ok(parseLsn('0/A0000000') > parseLsn('0/9FFFFFFF'));
    assert.ok(parseLsn('10/0') > parseLsn('9/FFFFFFFF'));
  });
  it('keeps all 64 bits', () => {
    assert.equal(parseLsn('FFFFFFFF/FFFFFFFF'), 0xffff_ffff_ffff_ffffn);
    assert.equal(formatLsn(0xffff_ffff_ffff_ffffn), 'FFFFFFFF/FFFFFFFF');
  });
  it('formats as PostgreSQL does and round-trips', () => {
    assert.equal(formatLsn(parseLsn('00000016/0B374D84')), '16/B374D84');
    assert.equal(formatLsn(0n), '0/0');
  });
  it('rejects text that is not an LSN', () => {
    assert.throws(() => parseLsn('16B3748'), /not an LSN/);
    assert.throws(() => parseLsn('0/123456789'), /not an LSN/);
  });
  it('maxLsn never moves backwards', () => {
    assert.equal(maxLsn(5n, 3n), 5n);
    assert.equal(maxLsn(3n, 5n), 5n);
  });
});
