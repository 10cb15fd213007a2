import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseJsonLossless } from '../../src/core/json-text.js';

describe('parseJsonLossless', () => {
  it('keeps an int8 above 2^53 exact as bigint', () => {
    const value = parseJsonLossless('{"big":9223372036854775807,"neg":-9007199254740993}') as Record<string, unknown>;
    assert.equal(value.big, 9223372036854775807n);
    assert.equal(value.neg, -9007199254740993n);
  });
  it('leaves safe numbers (epoch microseconds included) as numbers', () => {
    const value = parseJsonLossless('{"t":1700000000123456,"max":9007199254740991,"f":1.5}') as Record<string, unknown>;
    assert.equal(value.t, 1700000000123456);
    assert.equal(value.max, 9007199254740991);
    assert.equal(value.f, 1.5);
  });
  it('gives the same value on both paths for ordinary text, digits in strings included', () => {
    const text = '{"s":"12345678901234567890","n":[1,2,3],"o":{"x":null,"b":true}}';
    assert.deepEqual(parseJsonLossless(text), JSON.parse(text));
  });
  it('keeps big integers exact inside arrays and nested objects', () => {
    const value = parseJsonLossless('{"a":[1,{"b":12345678901234567890}]}') as { a: [number, { b: unknown }] };
    assert.equal(value.a[1].b, 12345678901234567890n);
  });
  it('leaves the paths named as inexact out of the check, and only those', () => {
    const inexact = { ts_ns: true, source: { ts_ns: true } } as const;
    const fast = parseJsonLossless('{"ts_ns":1764211200000000000,"source":{"ts_ns":1764211200000000001},"id":1}', inexact) as Record<string, unknown>;
    assert.equal(typeof fast.ts_ns, 'number');
    const exact = parseJsonLossless('{"ts_ns":1764211200000000000,"id":9223372036854775807}', inexact) as Record<string, unknown>;
    assert.equal(exact.id, 9223372036854775807n);
    // A row's own column named ts_ns (under after, not a named path) stays exact.
    const row = parseJsonLossless('{"ts_ns":1,"after":{"ts_ns":1733160000123456789}}', inexact) as { after: Record<string, unknown> };
    assert.equal(row.after.ts_ns, 1733160000123456789n);
  });
  it('throws on text that is not JSON, on both paths', () => {
    assert.throws(() => parseJsonLossless('not json'));
    assert.throws(() => parseJsonLossless('{"big":92233720368547758070'));
  });
});
