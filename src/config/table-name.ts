/**
 * Table names as users write them on the command line (`--table`): shared by
 * cdc and sink.
 */
import { ConfigError } from '../core/exit-codes.js';

/** `schema.table` or `table` (schema public); quoted parts keep their case. */
export function parseTableName(text: string): { schema: string; table: string } {
  const match = /^(?:("(?:[^"]|"")+"|[^."]+)\.)?("(?:[^"]|"")+"|[^."]+)$/.exec(text.trim());
  if (!match) throw new ConfigError(`--table must be 'schema.table' or 'table', got '${text}'`);
  const unquote = (part: string): string => (part.startsWith('"') ? part.slice(1, -1).replace(/""/g, '"') : part);
  return { schema: match[1] ? unquote(match[1]) : 'public', table: unquote(match[2]!) };
}
