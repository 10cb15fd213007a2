/**
 * Stands in for cdc capturing many tables: reads rows of any PostgreSQL
 * table and produces the events cdc sends for them, each with the
 * `walbridge.schema` header built from the catalog (encodeTableSchema), on
 * topic `<prefix>.public.<table>`, key = the primary key columns. Values go
 * through cdc's own mapping (column-values.ts), arrays included.
 */
import pg from 'pg';
import kafkajs from 'kafkajs';
import { encodeTableSchema, SCHEMA_HEADER, topicName } from '../../src/core/envelope.js';
import { formatLsn } from '../../src/core/lsn.js';
import { valueWriter } from '../../src/cdc/postgres/column-values.js';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

interface CatalogColumn {
  name: string;
  oid: number;
  typmod: number;
  typname: string;
  builtin: boolean;
  key: boolean;
}

export class SchemaFeed {
  private lsn = 0x2_0000_0000n;
  private readonly producer: kafkajs.Producer;
  private readonly kafka: kafkajs.Kafka;

  private constructor(readonly db: pg.Client, kafkaBrokers: string, readonly prefix: string) {
    this.kafka = new kafkajs.Kafka({ brokers: kafkaBrokers.split(','), logLevel: kafkajs.logLevel.NOTHING });
    this.producer = this.kafka.producer();
  }

  static async open(databaseUrl: string, kafkaBrokers: string, prefix: string): Promise<SchemaFeed> {
    const db = new pg.Client({ connectionString: databaseUrl, types: { getTypeParser: () => (value: string) => value } as never });
    await db.connect();
    await db.query(`SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET extra_float_digits = 3`);
    const feed = new SchemaFeed(db, kafkaBrokers, prefix);
    await feed.producer.connect();
    return feed;
  }

  topic(table: string): string {
    return topicName(this.prefix, 'public', table);
  }

  async createTopic(table: string, partitions: number): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      await admin.createTopics({ topics: [{ topic: this.topic(table), numPartitions: partitions }], waitForLeaders: true });
    } finally {
      await admin.disconnect();
    }
  }

  private nextLsn(): string {
    this.lsn += 0x1000n;
    return formatLsn(this.lsn);
  }

  private async columns(table: string): Promise<CatalogColumn[]> {
    const result = await this.db.query<{ name: string; oid: string; typmod: string; typname: string; builtin: string; key: string }>(
      `SELECT a.attname AS name, a.atttypid AS oid, a.atttypmod AS typmod, ty.typname, (a.atttypid < 10000)::text AS builtin,
              (a.attnum = ANY(coalesce((SELECT i.indkey::int2[] FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary), '{}')))::text AS key
         FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
        WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, [`public.${table}`]);
    return result.rows.map((r) => ({
      name: r.name, oid: Number(r.oid), typmod: Number(r.typmod), typname: r.typname, builtin: r.builtin === 'true', key: r.key === 'true',
    }));
  }

  /** The header for the table as the catalog has it now; `missing`: column → JSON fragment of PostgreSQL's stored value. */
  async header(table: string, missing: Record<string, string> = {}): Promise<string> {
    const columns = await this.columns(table);
    return encodeTableSchema('public', table, columns.map((c) => ({
      name: c.name, typeOid: c.oid, typmod: c.typmod, key: c.key,
      ...(c.builtin ? {} : { typeName: c.typname }), ...(missing[c.name] === undefined ? {} : { missingJson: missing[c.name] }),
    })));
  }

  /** Produces one transaction's 'c' (or 'u') events for the rows matching `where`, under the given header. */
  async sendRows(table: string, where: string, header: string, op: 'c' | 'u' = 'c'): Promise<number> {
    const columns = await this.columns(table);
    const select = columns.map((c) => `t."${c.name}"`).join(', ');
    const rows = (await this.db.query<Record<string, string | null>>(`SELECT ${select} FROM public."${table}" t WHERE ${where}`)).rows;
    const lsn = this.nextLsn();
    const messages = rows.map((row) => {
      const json = (c: CatalogColumn): string => {
        const text = row[c.name];
        if (text === null || text === undefined) return 'null';
        return valueWriter(c.oid)(text);
      };
      const after = `{${columns.map((c) => `${JSON.stringify(c.name)}:${json(c)}`).join(',')}}`;
      const key = `{${columns.filter((c) => c.key).map((c) => `${JSON.stringify(c.name)}:${json(c)}`).join(',')}}`;
      return { key, value: this.envelope(table, op, 'null', after, lsn), headers: { [SCHEMA_HEADER]: header } };
    });
    for (let i = 0; i < messages.length; i += 1000) {
      await this.producer.send({ topic: this.topic(table), acks: -1, messages: messages.slice(i, i + 1000) });
    }
    return messages.length;
  }

  /** A delete event for `key` (JSON object text). */
  async sendDelete(table: string, key: string, header: string): Promise<void> {
    await this.producer.send({
      topic: this.topic(table), acks: -1, messages: [{ key, value: this.envelope(table, 'd', key, 'null', this.nextLsn()), headers: { [SCHEMA_HEADER]: header } }],
    });
  }

  private envelope(table: string, op: string, before: string, after: string, lsn: string): string {
    return `{"before":${before},"after":${after},"source":{"version":"walbridge-test","connector":"postgresql","name":"${this.prefix}",` +
      `"ts_ms":1,"snapshot":"false","db":"walbridge","sequence":null,"schema":"public","table":${JSON.stringify(table)},"txId":1,"lsn":null,` +
      `"xmin":null,"commit_lsn":"${lsn}"},"op":"${op}","ts_ms":1,"transaction":null}`;
  }

  async close(): Promise<void> {
    await this.producer.disconnect();
    await this.db.end();
  }
}
