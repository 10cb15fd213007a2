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
  it('throws on text that is not JSON, on both paths', () => {
    assert.throws(() => parseJsonLossless('not json'));
    assert.throws(() => parseJsonLossless('{"big":92233720368547758070'));
  });
});
