/** Which failed offset commits the sink skips (read again later) and which stop it. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import kafkajs from 'kafkajs';
import { commitNotTaken } from '../../src/kafka/consumer.js';

const protocolError = (type: string, retriable: boolean) => new kafkajs.KafkaJSProtocolError({ message: type, type, code: 0, retriable } as unknown as Error);

describe('commitNotTaken', () => {
  it('skips a commit refused by a rebalance, also after kafkajs gave up retrying', () => {
    assert.match(commitNotTaken(protocolError('REBALANCE_IN_PROGRESS', false)) ?? '', /rebalancing/);
    const exhausted = new kafkajs.KafkaJSNumberOfRetriesExceeded(protocolError('NOT_COORDINATOR', true), { retryCount: 5, retryTime: 100 });
    assert.match(commitNotTaken(exhausted) ?? '', /rebalancing \(NOT_COORDINATOR\)/);
  });

  it('skips a commit whose coordinator did not answer (a broker killed)', () => {
    const refused = new kafkajs.KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:49192', { broker: '127.0.0.1:49192', code: 'ECONNREFUSED' });
    assert.equal(commitNotTaken(refused), 'Kafka did not answer it');
    assert.equal(commitNotTaken(new kafkajs.KafkaJSNumberOfRetriesExceeded(refused, { retryCount: 5, retryTime: 100 })), 'Kafka did not answer it');
    // The group coordinator killed (seen in test/cluster): kafkajs wraps the lookup failure as non-retriable.
    const BrokerNotFound = kafkajs.KafkaJSBrokerNotFound as unknown as new (message: string) => Error;
    const NonRetriable = kafkajs.KafkaJSNonRetriableError as unknown as new (e: Error, options: { cause: Error }) => Error;
    const notFound = new BrokerNotFound('Broker 2 not found in the cached metadata');
    assert.equal(commitNotTaken(new NonRetriable(notFound, { cause: notFound })), 'Kafka did not answer it');
  });

  it('does not skip what needs the user: an authorization error, or an error that is not Kafka\'s', () => {
    assert.equal(commitNotTaken(protocolError('GROUP_AUTHORIZATION_FAILED', false)), undefined);
    assert.equal(commitNotTaken(new Error('boom')), undefined);
  });
});
