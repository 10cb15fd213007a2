import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { KafkaUnreachable, lostDependency, StreamEnded } from '../../src/cdc/connection-loss.js';
import { ConfigError } from '../../src/core/exit-codes.js';
import { withInnerErrors } from '../../src/core/error-text.js';

const withFields = (message: string, fields: Record<string, unknown>): Error => Object.assign(new Error(message), fields);
/** @platformatic/kafka's error for a broken connection. */
const network = (): Error => withFields('Connection closed', { code: 'PLT_KFK_NETWORK' });

describe('lostDependency: an outage to ride through, or a real failure', () => {
  it('PostgreSQL going away or not accepting connections yet', () => {
    for (const error of [
      withFields('terminating connection due to administrator command', { code: '57P01' }),
      withFields('terminating connection because of crash of another server process', { code: '57P02' }),
      withFields('the database system is starting up', { code: '57P03' }),
      withFields('connect ECONNREFUSED 127.0.0.1:5432', { code: 'ECONNREFUSED' }),
      withFields('connection failure', { code: '08006' }),
      new Error('Connection terminated unexpectedly'),
      new Error('Client has encountered a connection error and is not queryable'),
      new StreamEnded(),
    ]) assert.equal(lostDependency(error), 'postgres', error.message);
  });

  it('Kafka unreachable, or answering with what its clients call retriable', () => {
    for (const error of [
      new KafkaUnreachable('Kafka is not reachable at 127.0.0.1:9092'),
      network(),
      withFields('Producing messages failed.', { code: 'PLT_KFK_MULTIPLE', errors: [network(), withFields('leader moved', { code: 'PLT_KFK_PROTOCOL', canRetry: true })] }),
      // Final for the producer that got it, healed by the next attempt's new producer (seen in the chaos run after a broker came back).
      withFields('Producing messages failed.', { code: 'PLT_KFK_MULTIPLE', errors: [
        withFields('out of order sequence', { code: 'PLT_KFK_PROTOCOL', apiId: 'OUT_OF_ORDER_SEQUENCE_NUMBER', canRetry: false }),
        withFields('unknown producer', { code: 'PLT_KFK_PROTOCOL', apiId: 'UNKNOWN_PRODUCER_ID', canRetry: false }),
      ] }),
      // A send that gave up after its tries while a broker came back: a mix of errors, none permanent.
      withFields('Producing messages failed.', { code: 'PLT_KFK_MULTIPLE', errors: [withFields('produce failed 3 times.', { code: 'PLT_KFK_MULTIPLE', errors: [
        withFields('not leader', { code: 'PLT_KFK_PROTOCOL', apiId: 'NOT_LEADER_OR_FOLLOWER', canRetry: true }),
        withFields('timed out', { code: 'PLT_KFK_NETWORK' }),
        withFields('replica not available', { code: 'PLT_KFK_PROTOCOL', apiId: 'REPLICA_NOT_AVAILABLE', canRetry: false }),
      ] })] }),
      // Seen in the chaos run: the producer could not read a broker's answer (dynamic-buffer's error); a new producer could.
      withFields('Producing messages failed.', { code: 'PLT_KFK_MULTIPLE', errors: [withFields('Out of bounds.', { code: 'OUT_OF_BOUNDS' })] }),
      withFields('Connection error', { name: 'KafkaJSConnectionError', retriable: true }),
      withFields('retries exceeded', { name: 'KafkaJSNumberOfRetriesExceeded', retriable: false, cause: withFields('refused', { name: 'KafkaJSConnectionError', retriable: true }) }),
    ]) assert.equal(lostDependency(error), 'kafka', error.message);
  });

  it('real failures: waiting would not fix them', () => {
    for (const error of [
      new ConfigError('wal_level is replica'),
      withFields('permission denied for table user_logins', { code: '42501' }),
      withFields('password authentication failed', { code: '28P01' }),
      new Error('pgoutput change outside a transaction'),
      withFields('Producing messages failed.', { code: 'PLT_KFK_MULTIPLE', errors: [network(), withFields('record too large', { code: 'PLT_KFK_PROTOCOL', apiId: 'MESSAGE_TOO_LARGE', canRetry: false })] }),
      withFields('Producing messages failed.', { code: 'PLT_KFK_MULTIPLE', errors: [withFields('not allowed', { code: 'PLT_KFK_PROTOCOL', apiId: 'TOPIC_AUTHORIZATION_FAILED', canRetry: false })] }),
      withFields('invalid replication factor', { name: 'KafkaJSProtocolError', retriable: false }),
    ]) assert.equal(lostDependency(error), null, error.message);
  });
});


describe('withInnerErrors: what a fatal error prints', () => {
  it('names the errors inside an aggregate, the Kafka protocol error id first', () => {
    const error = withFields('Producing messages failed.', { errors: [
      withFields('The broker received an out of order sequence number.', { apiId: 'OUT_OF_ORDER_SEQUENCE_NUMBER' }),
      new Error('Connection closed'),
    ] });
    assert.equal(withInnerErrors(error),
      'Producing messages failed. (OUT_OF_ORDER_SEQUENCE_NUMBER: The broker received an out of order sequence number.; Connection closed)');
    assert.equal(withInnerErrors(new Error('plain')), 'plain');
    const nested = withFields('Producing messages failed.', { errors: [withFields('produce failed 2 times.', { errors: [
      withFields('Not leader.', { apiId: 'NOT_LEADER_OR_FOLLOWER' }), withFields('Not leader.', { apiId: 'NOT_LEADER_OR_FOLLOWER' }),
    ] })] });
    assert.equal(withInnerErrors(nested), 'Producing messages failed. (NOT_LEADER_OR_FOLLOWER: Not leader.)');
  });
});
