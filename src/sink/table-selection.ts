/**
 * Which topics the sink consumes, and which ClickHouse table each one lands in.
 *
 * A selection is one of:
 * - `--table` rules (exact `schema.table` names or `*` patterns, repeatable,
 *   minus `--exclude-table` rules) over topics `<prefix>.<schema>.<table>`;
 * - `--topic-pattern REGEX` (the whole topic name must match);
 * - `--topic NAME`, one explicit topic (e.g. a Debezium topic).
 * Dead-letter topics (`*.dlq`) are never selected. Each topic lands in the
 * table named like its source table (or `--target-table`, for one exact
 * table); two topics landing in one table is refused, naming both.
 */
import { topicName } from '../core/envelope.js';
import { ConfigError } from '../core/exit-codes.js';
import { matches, parseTablePattern, type TablePattern } from '../config/table-selection.js';

export interface SelectionRules {
  topicPrefix: string;
  /** `schema.table` names or patterns with `*`; a name without a schema is in `public`. */
  tables: string[];
  excludeTables: string[];
  topicPattern?: string | undefined;
  topic?: string | undefined;
  targetTable?: string | undefined;
}

export interface SelectedTopic {
  topic: string;
  /** Source schema and table, as far as the topic name tells. */
  schema: string;
  table: string;
  /** The ClickHouse table it lands in. */
  targetTable: string;
}

export class TableSelection {
  private readonly include: TablePattern[];
  private readonly exclude: TablePattern[];
  private readonly topicRegex: RegExp | undefined;
  /** Topics named exactly (no pattern): they must exist for `--once`. */
  readonly exactTopics: string[] = [];

  constructor(private readonly rules: SelectionRules) {
    if (rules.topicPattern !== undefined && (rules.topic !== undefined || rules.tables.length > 0)) {
      throw new ConfigError('--topic-pattern selects topics by itself: drop --table/--topic, or drop --topic-pattern');
    }
    try {
      this.topicRegex = rules.topicPattern === undefined ? undefined : new RegExp(`^(?:${rules.topicPattern})$`);
    } catch (error) {
      throw new ConfigError(`--topic-pattern is not a regular expression: ${(error as Error).message}`);
    }
    this.include = rules.tables.map(parseTablePattern);
    this.exclude = rules.excludeTables.map(parseTablePattern);
    if (rules.topic !== undefined) this.exactTopics.push(rules.topic);
    else if (!this.topicRegex) {
      for (const { exact } of this.include) {
        if (exact && !this.excluded(exact.schema, exact.table)) this.exactTopics.push(topicName(rules.topicPrefix, exact.schema, exact.table));
      }
    }
    const patterns = this.topicRegex !== undefined || rules.tables.some((rule) => rule.includes('*'));
    if (rules.targetTable !== undefined && (patterns || this.exactTopics.length > 1)) {
      throw new ConfigError('--target-table names the ClickHouse table of one source table; with several tables each lands in a table of its own name');
    }
  }

  /** True when the selection can grow (patterns): new topics are looked for while running. */
  get hasPatterns(): boolean {
    return this.topicRegex !== undefined || this.rules.tables.some((rule) => rule.includes('*'));
  }

  /** What the selection is, for messages: `public.*, public.orders` or the regex. */
  describe(): string {
    if (this.rules.topic !== undefined) return `topic ${this.rules.topic}`;
    if (this.rules.topicPattern !== undefined) return `topics matching /${this.rules.topicPattern}/`;
    const excluded = this.rules.excludeTables.length ? ` except ${this.rules.excludeTables.join(', ')}` : '';
    return `tables ${this.rules.tables.join(', ')}${excluded} (topic prefix ${this.rules.topicPrefix})`;
  }

  /**
   * The selected topics among `existing` (plus exact topics not created yet),
   * sorted by name; throws ConfigError when two land in one table.
   */
  select(existing: readonly string[]): SelectedTopic[] {
    const chosen = new Map<string, SelectedTopic>();
    for (const topic of this.exactTopics) chosen.set(topic, this.route(topic));
    for (const topic of existing) {
      if (chosen.has(topic) || topic.endsWith('.dlq')) continue;
      const route = this.matching(topic);
      if (route) chosen.set(topic, route);
    }
    const selected = [...chosen.values()].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0));
    const byTarget = new Map<string, string>();
    for (const { topic, targetTable } of selected) {
      const other = byTarget.get(targetTable);
      if (other !== undefined) {
        throw new ConfigError(`topics ${other} and ${topic} would both land in ClickHouse table ${targetTable}; ` +
          'narrow the selection (--exclude-table, --topic-pattern) or run one sink per table with --target-table');
      }
      byTarget.set(targetTable, topic);
    }
    return selected;
  }

  private matching(topic: string): SelectedTopic | undefined {
    if (this.topicRegex) return this.topicRegex.test(topic) ? this.route(topic) : undefined;
    if (this.rules.topic !== undefined) return undefined;
    const prefix = `${this.rules.topicPrefix}.`;
    if (!topic.startsWith(prefix)) return undefined;
    const route = this.route(topic);
    return this.include.some((p) => matches(p, route)) && !this.excluded(route.schema, route.table) ? route : undefined;
  }

  private excluded(schema: string, table: string): boolean {
    return this.exclude.some((p) => matches(p, { schema, table }));
  }

  /** Source schema and table from the topic name: after the prefix when it has it, else its last two parts. */
  private route(topic: string): SelectedTopic {
    const prefix = `${this.rules.topicPrefix}.`;
    let schema = 'public';
    let table = topic;
    if (topic.startsWith(prefix) && topic.indexOf('.', prefix.length) > 0) {
      const rest = topic.slice(prefix.length);
      schema = rest.slice(0, rest.indexOf('.'));
      table = rest.slice(rest.indexOf('.') + 1);
    } else {
      const parts = topic.split('.');
      if (parts.length >= 2) {
        schema = parts[parts.length - 2] ?? schema;
        table = parts[parts.length - 1] ?? table;
      }
    }
    return { topic, schema, table, targetTable: this.rules.targetTable ?? table };
  }
}
