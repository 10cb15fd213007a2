/**
 * Which tables a command works on, as users write them: `--table` (repeatable)
 * with exact names or `*` patterns, minus `--exclude-table`. Shared by cdc and
 * sink. A part in double quotes is taken literally (its case kept, `*` no
 * wildcard); `*` elsewhere matches any run of characters within that part.
 */
import { ConfigError } from '../core/exit-codes.js';

export interface TablePattern {
  /** As the user wrote it, for messages. */
  text: string;
  schema: RegExp;
  table: RegExp;
  /** No wildcard: the table must exist. */
  exact: { schema: string; table: string } | null;
}

export interface TableSelection {
  include: TablePattern[];
  exclude: TablePattern[];
}

const PART = /("(?:[^"]|"")+"|[^."]+)/.source;
const NAME = new RegExp(`^(?:${PART}\\.)?${PART}$`);

export function parseTablePattern(text: string): TablePattern {
  const match = NAME.exec(text.trim());
  if (!match) throw new ConfigError(`--table must be 'schema.table', 'table' or a pattern such as 'public.*', got '${text}'`);
  const parts = [match[1] ?? 'public', match[2]!];
  const literal = parts.map((part) => (part.startsWith('"') ? part.slice(1, -1).replace(/""/g, '"') : part));
  const wild = parts.map((part) => !part.startsWith('"') && part.includes('*'));
  const regex = (part: string, i: number): RegExp =>
    new RegExp(`^${wild[i] ? part.split('*').map(escapeRegex).join('.*') : escapeRegex(literal[i]!)}$`);
  return {
    text,
    schema: regex(parts[0]!, 0),
    table: regex(parts[1]!, 1),
    exact: wild.some(Boolean) ? null : { schema: literal[0]!, table: literal[1]! },
  };
}

export function parseTableSelection(include: readonly string[], exclude: readonly string[]): TableSelection {
  if (include.length === 0) throw new ConfigError('no table selected: pass --table schema.table (repeatable, patterns such as public.* allowed)');
  return { include: include.map(parseTablePattern), exclude: exclude.map(parseTablePattern) };
}

export function matches(pattern: TablePattern, name: { schema: string; table: string }): boolean {
  return pattern.schema.test(name.schema) && pattern.table.test(name.table);
}

/** Selected: matched by an include pattern and by no exclude pattern. */
export function isSelected(selection: TableSelection, name: { schema: string; table: string }): boolean {
  return selection.include.some((p) => matches(p, name)) && !selection.exclude.some((p) => matches(p, name));
}

/** `--table` values from flags (repeatable, or comma-separated as env vars give them). */
export function tableList(values: string | readonly string[] | undefined): string[] {
  if (values === undefined) return [];
  const list = typeof values === 'string' ? [values] : values;
  return list.flatMap((value) => splitOutsideQuotes(value)).map((v) => v.trim()).filter(Boolean);
}

function splitOutsideQuotes(text: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (const char of text) {
    if (char === '"') quoted = !quoted;
    if (char === ',' && !quoted) {
      parts.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  parts.push(current);
  return parts;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
