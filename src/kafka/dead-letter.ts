/**
 * The dead-letter topic `<topic>.dlq`: a message the sink cannot apply is
 * copied there unchanged (key, value, headers) with headers saying why and
 * where it came from:
 *   walbridge.error             what is wrong with it
 *   walbridge.source.topic      original topic
 *   walbridge.source.partition  original partition
 *   walbridge.source.offset     original offset
 * send() resolves once Kafka acknowledged every letter (acks=all), so the
 * original offsets may then be committed. After a crash between the two, a
 * letter can appear twice in the DLQ (at least once), never zero times.
 */
import type kafkajs from 'kafkajs';
import type { Kafka } from './client.js';
import type { ConsumedMessage } from './consumer.js';
import { ensureTopic } from './topics.js';

export const ERROR_HEADER = 'walbridge.error';

export interface Letter {
  message: ConsumedMessage;
  error: string;
}

export class DeadLetterProducer {
  private producer: kafkajs.Producer | undefined;

  constructor(private readonly kafka: Kafka, private readonly sourceTopic: string, readonly topic: string) {}

  async send(letters: readonly Letter[]): Promise<void> {
    if (letters.length === 0) return;
    if (!this.producer) {
      await ensureTopic(this.kafka, this.topic, 1);
      const producer = this.kafka.producer({ allowAutoTopicCreation: false });
      await producer.connect();
      this.producer = producer;
    }
    await this.producer.send({
      topic: this.topic,
      acks: -1,
      messages: letters.map(({ message, error }) => ({
        key: message.key,
        value: message.value,
        headers: {
          ...message.headers,
          [ERROR_HEADER]: error,
          'walbridge.source.topic': this.sourceTopic,
          'walbridge.source.partition': String(message.partition),
          'walbridge.source.offset': message.offset.toString(),
        },
      })),
    });
  }

  async close(): Promise<void> {
    await this.producer?.disconnect();
  }
}
