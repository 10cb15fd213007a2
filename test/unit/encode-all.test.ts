import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeAll } from '../../src/kafka/producer.js';

describe('encodeAll (Kafka keys and values as UTF-8 views of one buffer)', () => {
  it('gives each text its own bytes, ASCII or not', () => {
    for (const texts of [['{"a":1}', '', 'xyz'], ['ascii', '{"name":"Zoë 😀"}', 'tail'], []]) {
      assert.deepEqual(encodeAll(texts).map((b) => b.toString('utf8')), texts);
    }
  });
});
