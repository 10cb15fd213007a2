/**
 * Stands in for `cdc` while it is being built: applies a change to the
 * PostgreSQL table and produces the envelope cdc would, with the same format
 * (src/core/envelope.ts): Debezium envelope, schemas disabled, key
 * {"id":N}, `source.commit_lsn` = one fake but increasing commit LSN per
 * transaction, timestamp as epoch microseconds.
 */
import pg from 'pg';
import kafkajs from 'kafkajs';
import { encodeTableSchema, SCHEMA_HEADER, type ChangeEnvelope, type Operation, type RowImage } from '../../src/core/envelope.js';
import { formatLsn } from '../../src/core/lsn.js';
import { utcTimestampText } from '../../src/sink/clickhouse/column-types.js';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

export interface Login {
  id: number;
  username: string | null;
  event_type: string | null;
  /** Epoch microseconds, or null. */
  event_time: number | null;
}

export interface RawMessage {
  key: string | null;
  value: string | Buffer | null;
  /** Set for a truncate, which goes to every partition. */
  partition?: number;
}

/** One change of a multi-statement transaction (ChangeFeed.transaction). */
export type TransactionStep = { op: 'insert' | 'update'; login: Login } | { op: 'delete'; id: number } | { op: 'truncate' };

export function envelope(op: Operation, before: RowImage | null, after: RowImage | null, commitLsn: string, table = 'user_logins'): ChangeEnvelope {
  return {
    before,
    after,
    source: {
      version: 'walbridge-test', connector: 'postgresql', name: 'walbridge', ts_ms: 1_700_000_000_000, ts_us: 1_700_000_000_000_000, ts_ns: 1.7e18, snapshot: 'false',
      db: 'walbridge', sequence: null, schema: 'public', table, txId: 1, lsn: null, xmin: null, commit_lsn: commitLsn,
    },
    op,
    ts_ms: 1_700_000_000_000,
    transaction: null,
  };
}

/** user_logins' columns as pgoutput describes them (type OIDs: int4, text, timestamp, bool). */
const USER_LOGINS_SCHEMA = encodeTableSchema('public', 'user_logins', [
  { name: 'id', typeOid: 23, typmod: -1, key: true },
  { name: 'username', typeOid: 25, typmod: -1, key: false },
  { name: 'event_type', typeOid: 25, typmod: -1, key: false },
  { name: 'event_time', typeOid: 1114, typmod: -1, key: false },
  { name: 'sent_to_kafka', typeOid: 16, typmod: -1, key: false },
]);

export function image(login: Login, sentToKafka = false): RowImage {
  return { ...login, sent_to_kafka: sentToKafka };
}

export class ChangeFeed {
  private lsn = 0x1_0000_0000n;
  private producer: kafkajs.Producer;
  /** When set, every message carries user_logins' `walbridge.schema` header, as cdc sends it. */
  withSchemaHeader = false;

  constructor(private readonly db: pg.Client, kafkaBrokers: string, readonly topic: string, private readonly partitions = 1) {
    this.producer = new kafkajs.Kafka({ brokers: kafkaBrokers.split(','), logLevel: kafkajs.logLevel.NOTHING }).producer();
  }

  static async open(databaseUrl: string, kafkaBrokers: string, topic: string, partitions: number): Promise<ChangeFeed> {
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    const admin = new kafkajs.Kafka({ brokers: kafkaBrokers.split(','), logLevel: kafkajs.logLevel.NOTHING }).admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
    await admin.disconnect();
    const feed = new ChangeFeed(db, kafkaBrokers, topic, partitions);
    await feed.producer.connect();
    return feed;
  }

  /** The next commit LSN, as text. */
  nextLsn(): string {
    this.lsn += 0x1000n;
    return formatLsn(this.lsn);
  }

  async send(messages: RawMessage[]): Promise<void> {
    const headers = this.withSchemaHeader ? { [SCHEMA_HEADER]: USER_LOGINS_SCHEMA } : undefined;
    for (let i = 0; i < messages.length; i += 5000) {
      await this.producer.send({ topic: this.topic, acks: -1, messages: messages.slice(i, i + 5000).map((m) => ({ ...m, headers })) });
    }
  }

  /** INSERTs the rows in one transaction; returns the envelopes it produced. */
  async insert(logins: Login[]): Promise<RawMessage[]> {
    const lsn = this.nextLsn();
    for (let i = 0; i < logins.length; i += 1000) {
      const chunk = logins.slice(i, i + 1000);
      const params: unknown[] = [];
      const values = chunk.map((l) => {
        params.push(l.id, l.username, l.event_type, l.event_time === null ? null : utcTimestampText(BigInt(l.event_time), 6));
        const n = params.length;
        return `($${n - 3}, $${n - 2}, $${n - 1}, $${n}::timestamp)`;
      });
      await this.db.query(`INSERT INTO user_logins (id, username, event_type, event_time) VALUES ${values.join(', ')}`, params);
    }
    const messages = logins.map((l) => ({ key: JSON.stringify({ id: l.id }), value: JSON.stringify(envelope('c', null, image(l), lsn)) }));
    await this.send(messages);
    return messages;
  }

  async update(login: Login): Promise<RawMessage[]> {
    const lsn = this.nextLsn();
    await this.db.query('UPDATE user_logins SET username = $2, event_type = $3, event_time = $4::timestamp WHERE id = $1',
      [login.id, login.username, login.event_type, login.event_time === null ? null : utcTimestampText(BigInt(login.event_time), 6)]);
    const messages = [{ key: JSON.stringify({ id: login.id }), value: JSON.stringify(envelope('u', null, image(login), lsn)) }];
    await this.send(messages);
    return messages;
  }

  async delete(id: number): Promise<RawMessage[]> {
    const lsn = this.nextLsn();
    await this.db.query('DELETE FROM user_logins WHERE id = $1', [id]);
    const messages = [
      { key: JSON.stringify({ id }), value: JSON.stringify(envelope('d', { id, username: null, event_type: null, event_time: null, sent_to_kafka: null }, null, lsn)) },
      { key: JSON.stringify({ id }), value: null }, // Debezium's tombstone
    ];
    await this.send(messages);
    return messages;
  }

  async truncate(): Promise<RawMessage[]> {
    const lsn = this.nextLsn();
    await this.db.query('TRUNCATE user_logins');
    const messages = [{ key: null, value: JSON.stringify(envelope('t', null, null, lsn)) }];
    await this.send(messages);
    return messages;
  }

  /**
   * Runs the steps in one PostgreSQL transaction and produces their events as
   * cdc does: one commit LSN, `transaction.total_order` 1, 2, … in step order,
   * a truncate sent to every partition.
   */
  async transaction(steps: TransactionStep[]): Promise<RawMessage[]> {
    const lsn = this.nextLsn();
    const messages: RawMessage[] = [];
    await this.db.query('BEGIN');
    try {
      for (const [index, step] of steps.entries()) {
        const transaction = { id: `${index}:${lsn}`, total_order: index + 1, data_collection_order: index + 1 };
        const event = (op: Operation, before: RowImage | null, after: RowImage | null): string => JSON.stringify({ ...envelope(op, before, after, lsn), transaction });
        if (step.op === 'truncate') {
          await this.db.query('TRUNCATE user_logins');
          for (let partition = 0; partition < this.partitions; partition += 1) messages.push({ key: null, value: event('t', null, null), partition });
        } else if (step.op === 'delete') {
          await this.db.query('DELETE FROM user_logins WHERE id = $1', [step.id]);
          messages.push({ key: JSON.stringify({ id: step.id }), value: event('d', { id: step.id, username: null, event_type: null, event_time: null, sent_to_kafka: null }, null) });
        } else {
          const { login } = step;
          const time = login.event_time === null ? null : utcTimestampText(BigInt(login.event_time), 6);
          await this.db.query(step.op === 'insert'
            ? 'INSERT INTO user_logins (id, username, event_type, event_time) VALUES ($1, $2, $3, $4::timestamp)'
            : 'UPDATE user_logins SET username = $2, event_type = $3, event_time = $4::timestamp WHERE id = $1',
          [login.id, login.username, login.event_type, time]);
          messages.push({ key: JSON.stringify({ id: login.id }), value: event(step.op === 'insert' ? 'c' : 'u', null, image(login)) });
        }
      }
      await this.db.query('COMMIT');
    } catch (error) {
      await this.db.query('ROLLBACK');
      throw error;
    }
    await this.send(messages);
    return messages;
  }

  async close(): Promise<void> {
    await this.producer.disconnect();
    await this.db.end();
  }
}

/** `count` logins with ids from `firstId`, deterministic contents. */
export function logins(firstId: number, count: number, tag = 'user'): Login[] {
  return Array.from({ length: count }, (_, i) => ({
    id: firstId + i,
    username: `${tag}_${firstId + i}`,
    event_type: i % 3 === 0 ? 'register' : 'login',
    event_time: 1_700_000_000_000_000 + (firstId + i) * 1_000_123,
  }));
}
