/**
 * The dead-letter topics `<topic>.dlq`, one per source topic (created on
 * first use): a message the sink cannot apply is
 * copied there unchanged (key, value, headers) with headers saying why and
 * where it came from:
 *   walbridge.error             what is wrong with it
 *   walbridge.source.topic      original topic
 *   walbridge.source.partition  original partition
 *   walbridge.source.offset     original offset
 * send() resolves once Kafka acknowledged every letter (acks=all), so the
 * original offsets may then be committed. After a crash between the two, a
 * letter can appear twice in the DLQ (at least once), never zero times.
 * A letter that fails again in `sink dlq replay` (read from `<topic>.dlq`)
 * goes back to the end of that same topic with the new error, its
 * walbridge.source.* headers as they were (where it first came from).
 */
import { redactUrl } from '../config/connections.js';
import type kafkajs from 'kafkajs';
import type { Kafka } from './client.js';
import { deadLetterTopic } from '../core/envelope.js';
import type { ConsumedMessage } from './consumer.js';
import { ensureTopic } from './topics.js';

export const ERROR_HEADER = 'walbridge.error';

export interface Letter {
  message: ConsumedMessage;
  error: string;
}

export class DeadLetterProducer {
  private producer: kafkajs.Producer | undefined;
  private readonly created = new Set<string>();

  /**
   * `rereading`: the messages come from dead-letter topics (`sink dlq
   * replay`), so a letter goes back to the topic it came from. Told by the
   * caller, not guessed from a name: a table named `dlq` has a topic ending
   * in `.dlq` too.
   */
  constructor(private readonly kafka: Kafka, private readonly rereading: boolean) {}

  async send(letters: readonly Letter[]): Promise<void> {
    if (letters.length === 0) return;
    if (!this.producer) {
      const producer = this.kafka.producer({ allowAutoTopicCreation: false });
      await producer.connect();
      this.producer = producer;
    }
    const byTopic = new Map<string, Letter[]>();
    for (const letter of letters) {
      const topic = this.rereading ? letter.message.topic : deadLetterTopic(letter.message.topic);
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), letter]);
    }
    for (const topic of byTopic.keys()) {
      if (this.created.has(topic)) continue;
      await ensureTopic(this.kafka, topic, 1);
      this.created.add(topic);
    }
    await this.producer.sendBatch({
      acks: -1,
      topicMessages: [...byTopic].map(([topic, group]) => ({ topic, messages: group.map(({ message, error }) => ({
        key: message.key,
        value: message.value,
        headers: this.rereading ? { ...message.headers, [ERROR_HEADER]: redactUrl(error) } : {
          ...message.headers,
          [ERROR_HEADER]: redactUrl(error),
          'walbridge.source.topic': message.topic,
          'walbridge.source.partition': String(message.partition),
          'walbridge.source.offset': message.offset.toString(),
        },
      })) })),
    });
  }

  async close(): Promise<void> {
    await this.producer?.disconnect();
  }
}
