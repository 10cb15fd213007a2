/** pgoutput's 'M' message and the watermark it carries. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readPgoutput, type LogicalMessage } from '../../src/cdc/postgres/pgoutput-reader.js';
import { readWatermark, WATERMARK_PREFIX } from '../../src/cdc/postgres/watermarks.js';

function messageBytes(flags: number, lsn: bigint, prefix: string, content: string): Buffer {
  const lsnBytes = Buffer.alloc(8);
  lsnBytes.writeBigUInt64BE(lsn);
  const body = Buffer.from(content, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  return Buffer.concat([Buffer.from('M'), Buffer.from([flags]), lsnBytes, Buffer.from(prefix), Buffer.from([0]), length, body]);
}

describe('logical messages', () => {
  it("reads pgoutput's 'M': flags, LSN, prefix, content", () => {
    const message = readPgoutput(messageBytes(1, 0x1_0000_00a0n, 'p', 'héllo')) as LogicalMessage;
    assert.equal(message.tag, 'message');
    assert.equal(message.transactional, true);
    assert.equal(message.lsn, 0x1_0000_00a0n);
    assert.equal(message.prefix, 'p');
    assert.equal(message.content.toString('utf8'), 'héllo');
  });

  it('refuses a truncated message rather than reading past it', () => {
    const bytes = messageBytes(1, 1n, 'p', 'content');
    assert.throws(() => readPgoutput(bytes.subarray(0, bytes.length - 2)), /truncated/);
  });

  it("a watermark is this slot's, transactional, under walbridge's prefix; anything else is someone else's", () => {
    const watermark = { slot: 's1', run: 'r', table: 'public.t', chunk: 3, kind: 'high' };
    const text = JSON.stringify(watermark);
    const read = (flags: number, prefix: string, content: string, slot = 's1') => readWatermark(readPgoutput(messageBytes(flags, 1n, prefix, content)) as LogicalMessage, slot);
    assert.deepEqual(read(1, WATERMARK_PREFIX, text), watermark);
    assert.equal(read(1, WATERMARK_PREFIX, text, 's2'), null, 'another slot');
    assert.equal(read(0, WATERMARK_PREFIX, text), null, 'not transactional');
    assert.equal(read(1, 'other', text), null, 'another prefix');
    assert.equal(read(1, WATERMARK_PREFIX, '{not json'), null);
    assert.equal(read(1, WATERMARK_PREFIX, JSON.stringify({ ...watermark, kind: 'middle' })), null);
  });
});
