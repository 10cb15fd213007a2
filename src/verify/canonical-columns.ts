/**
 * One column, read from both sides as the same canonical text, so verify
 * compares values rather than spellings. Chosen by the ClickHouse type (what
 * the sink stored) and the PostgreSQL type (what it came from):
 *
 *   DateTime64(p)      epoch time at p fraction digits (the column's precision)
 *   DateTime           whole epoch seconds (18.16; PostgreSQL's microseconds truncated)
 *   Date, Date32       epoch days (18.16 prints day 0, 1970-01-01, as 0000-00-00)
 *   bool → UInt8       0 / 1
 *   time → Int64       microseconds since midnight
 *   bytea → String     base64 without line breaks
 *   char(n) → String   with its padding, as the event carried it (::text would trim it)
 *   Decimal, Float     the number (trailing zeros, float spelling normalised in JS)
 *   Array(T)           `<length>:` then the elements' canonical texts, `\N` for NULL;
 *                      a NULL PostgreSQL array is stored as [] (no Nullable(Array))
 *   anything else      the text (numbers, text, uuid, json, enums)
 *
 * A column cdc hashed (--hash-column) is read as PostgreSQL's text of the
 * value (what cdc hashed: concat() keeps char(n)'s padding, and verify's
 * session prints values as cdc's does) and hashed here, then compared with
 * the hex text ClickHouse holds.
 */
import { ConfigError } from '../core/exit-codes.js';
import { quoteIdentifier } from '../sink/clickhouse/client.js';
import { unwrapType } from '../sink/clickhouse/column-types.js';

export interface ComparedColumn {
  name: string;
  pgExpr: string;
  chExpr: string;
  normalise: (text: string) => string;
  /** Applied to the PostgreSQL side's value first: a hashed column's hash. */
  pgValue?: (text: string) => string;
}

interface Canonical {
  pg: (expr: string) => string;
  ch: (expr: string) => string;
  normalise: (text: string) => string;
  note?: string;
}

const identity = (text: string): string => text;

function normaliseDecimal(text: string): string {
  return /^-?\d+\.\d+$/.test(text) ? text.replace(/0+$/, '').replace(/\.$/, '') : text;
}

function canonical(pgType: string, chType: string): Canonical {
  const { inner } = unwrapType(chType);
  const array = /^Array\((.*)\)$/.exec(inner);
  if (array) {
    const element = canonical(pgType.replace(/\[\]$/, ''), array[1] ?? '');
    return {
      pg: (e) => `(SELECT coalesce(cardinality(${e}), 0)::text || ':' || coalesce(string_agg(coalesce(${element.pg('u.x')}, '\\N'), E'\\x1f' ORDER BY u.o), '') ` +
        `FROM unnest(${e}) WITH ORDINALITY AS u(x, o))`,
      ch: (e) => `concat(toString(length(${e})), ':', arrayStringConcat(arrayMap(x -> ifNull(${element.ch('x')}, '\\\\N'), ${e}), '\\x1F'))`,
      normalise: identity,
      note: element.note,
    };
  }
  const dt64 = /^DateTime64\((\d)/.exec(inner);
  if (dt64) {
    const precision = Number(dt64[1]);
    const fn = ({ 3: 'toUnixTimestamp64Milli', 6: 'toUnixTimestamp64Micro', 9: 'toUnixTimestamp64Nano' } as Record<number, string>)[precision];
    if (!fn) throw new ConfigError(`verify compares DateTime64 with 3, 6 or 9 digits; the column is ${inner}`);
    return {
      pg: (e) => `floor(extract(epoch from ${e}) * 1e${precision})::bigint::text`, ch: (e) => `toString(${fn}(${e}))`, normalise: identity,
      note: `compared as epoch time at ${precision} fraction digits (ClickHouse ${inner})`,
    };
  }
  if (inner === 'DateTime' || inner.startsWith('DateTime(')) {
    return {
      pg: (e) => `floor(extract(epoch from ${e}))::bigint::text`, ch: (e) => `toString(toUnixTimestamp(${e}))`, normalise: identity,
      note: `compared at whole seconds (ClickHouse ${inner} keeps seconds; PostgreSQL's microseconds are truncated)`,
    };
  }
  if (inner === 'Date' || inner === 'Date32') {
    return { pg: (e) => `(${e} - date '1970-01-01')::text`, ch: (e) => `toString(toInt32(${e}))`, normalise: identity };
  }
  if (pgType === 'character' || pgType.startsWith('character(')) return { pg: (e) => `CASE WHEN ${e} IS NULL THEN NULL ELSE concat(${e}) END`, ch: (e) => `toString(${e})`, normalise: identity };
  if (pgType === 'boolean') return { pg: (e) => `(${e})::int::text`, ch: (e) => `toString(${e})`, normalise: identity };
  if (pgType.startsWith('time') && !pgType.startsWith('timestamp') && inner === 'Int64') {
    return { pg: (e) => `(extract(epoch from ${e}) * 1000000)::bigint::text`, ch: (e) => `toString(${e})`, normalise: identity };
  }
  if (pgType === 'bytea') return { pg: (e) => `translate(encode(${e}, 'base64'), E'\\n', '')`, ch: (e) => `toString(${e})`, normalise: identity };
  let normalise = identity;
  if (inner.startsWith('Decimal')) normalise = normaliseDecimal;
  if (inner.startsWith('Float')) normalise = (text) => String(Number(text));
  return { pg: (e) => `(${e})::text`, ch: (e) => `toString(${e})`, normalise };
}

export function pgQuote(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function hashedColumn(name: string, hash: (text: string) => string): ComparedColumn {
  const column = `t.${pgQuote(name)}`;
  return { name, pgExpr: `CASE WHEN ${column} IS NULL THEN NULL ELSE concat(${column}) END`, chExpr: `toString(${quoteIdentifier(name)})`, normalise: identity, pgValue: hash };
}

export function compareColumn(name: string, pgType: string, chType: string, notes: string[]): ComparedColumn {
  const way = canonical(pgType, chType);
  if (way.note) notes.push(`${name} ${way.note}`);
  return { name, pgExpr: way.pg(`t.${pgQuote(name)}`), chExpr: way.ch(quoteIdentifier(name)), normalise: way.normalise };
}
