/**
 * Personal data: columns cdc leaves out of its events, or sends as a keyed
 * hash, per table. Applied where a row's columns become values (the
 * decoder's column layout, cdc/postgres/decode.ts), so it holds for change
 * events (before and after), initial and incremental snapshot rows and the
 * `walbridge.schema` header alike; `sink verify` applies the same rules to
 * the PostgreSQL side it compares.
 *
 *   --exclude-column public.user_logins.username   the column is absent
 *   --hash-column public.user_logins.username      HMAC-SHA-256 of the value's
 *                                                  PostgreSQL text, keyed with
 *                                                  CDC_HASH_KEY / CDC_HASH_KEY_FILE,
 *                                                  as 64 hex digits (a text column)
 *
 * The same value hashes alike in every table and every run with the same key,
 * so hashed columns still join; without the key the hash cannot be recomputed
 * from a guessed value (a plain SHA-256 of a user name could). NULL stays NULL.
 * A primary key column can be neither: it is the Kafka key and ClickHouse's
 * sorting key.
 */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../core/exit-codes.js';
import { tableList } from './table-selection.js';

export interface ColumnRef {
  schema: string;
  table: string;
  column: string;
  /** As the user wrote it, for messages. */
  text: string;
}

export type ColumnTreatment = 'keep' | 'exclude' | 'hash';

/** Shorter keys are refused: the key is all that stands between a hash and a guessed value. */
export const MIN_HASH_KEY_BYTES = 16;

const PART = /("(?:[^"]|"")+"|[^."]+)/.source;
const COLUMN_NAME = new RegExp(`^(?:${PART}\\.)?${PART}\\.${PART}$`);

/** `schema.table.column` or `table.column` (schema public); quoted parts keep their case and dots. */
export function parseColumnRef(text: string, flag: string): ColumnRef {
  const match = COLUMN_NAME.exec(text.trim());
  if (!match) throw new ConfigError(`${flag} must be 'schema.table.column' (or 'table.column' in schema public), got '${text}'`);
  const unquote = (part: string): string => (part.startsWith('"') ? part.slice(1, -1).replace(/""/g, '"') : part);
  return { schema: unquote(match[1] ?? 'public'), table: unquote(match[2]!), column: unquote(match[3]!), text };
}

export interface ColumnPolicyFlags {
  excludeColumn?: readonly string[] | undefined;
  hashColumn?: readonly string[] | undefined;
}

export class ColumnPolicy {
  /** qualified table (`schema.table`, as CapturedTable.qualified) → column → treatment. */
  private readonly byTable = new Map<string, Map<string, Exclude<ColumnTreatment, 'keep'>>>();

  constructor(readonly excluded: readonly ColumnRef[], readonly hashed: readonly ColumnRef[], private readonly hashKey: Buffer | null) {
    if (hashed.length > 0 && hashKey === null) {
      throw new ConfigError(`--hash-column ${hashed[0]!.text} needs a key: set CDC_HASH_KEY, or CDC_HASH_KEY_FILE to a file holding it (at least ${MIN_HASH_KEY_BYTES} bytes, e.g. from openssl rand -hex 32)`);
    }
    for (const [refs, treatment] of [[excluded, 'exclude'], [hashed, 'hash']] as const) {
      for (const ref of refs) {
        const columns = this.byTable.get(`${ref.schema}.${ref.table}`) ?? new Map<string, Exclude<ColumnTreatment, 'keep'>>();
        const earlier = columns.get(ref.column);
        if (earlier !== undefined && earlier !== treatment) throw new ConfigError(`column ${ref.text} is both excluded (--exclude-column) and hashed (--hash-column): choose one`);
        columns.set(ref.column, treatment);
        this.byTable.set(`${ref.schema}.${ref.table}`, columns);
      }
    }
  }

  static readonly none = new ColumnPolicy([], [], null);

  get empty(): boolean {
    return this.byTable.size === 0;
  }

  treatment(qualifiedTable: string, column: string): ColumnTreatment {
    return this.byTable.get(qualifiedTable)?.get(column) ?? 'keep';
  }

  /** HMAC-SHA-256 (hex) of a value's PostgreSQL text. */
  hashText(text: string): string {
    if (this.hashKey === null) throw new Error('hashText without a hash key');
    return createHmac('sha256', this.hashKey).update(text, 'utf8').digest('hex');
  }

  /**
   * Refuses (ConfigError) a rule that names a column the table lacks, or
   * excludes or hashes a primary key column; with `others` (cdc: the rules
   * must name captured tables), also one whose table is not among `tables`,
   * saying that it is not `others` (verify checks only the tables it compares).
   */
  check(tables: readonly PolicyTable[], others?: string): void {
    for (const [refs, flag] of [[this.excluded, '--exclude-column'], [this.hashed, '--hash-column']] as const) {
      for (const ref of refs) {
        const table = tables.find((t) => t.qualified === `${ref.schema}.${ref.table}`);
        if (table) checkColumn(ref, flag, table);
        else if (others !== undefined) throw new ConfigError(`${flag} ${ref.text}: table ${ref.schema}.${ref.table} is not ${others}`);
      }
    }
  }
}

/** What a check needs of a table (a CapturedTable has it). */
export interface PolicyTable {
  /** `schema.table`, unquoted. */
  qualified: string;
  columns: readonly string[];
  primaryKey: readonly string[];
}

function checkColumn(ref: ColumnRef, flag: string, table: PolicyTable): void {
  if (!table.columns.includes(ref.column)) {
    throw new ConfigError(`${flag} ${ref.text}: table ${table.qualified} has no column ${ref.column} (its columns: ${table.columns.join(', ')})`);
  }
  if (table.primaryKey.includes(ref.column)) {
    throw new ConfigError(`${flag} ${ref.text}: ${ref.column} is part of the primary key of ${table.qualified}, which is the Kafka key and ClickHouse's sorting key; it cannot be ${flag === '--exclude-column' ? 'left out' : 'hashed'}`);
  }
}

/**
 * The policy from flags (repeatable) over the environment (comma-separated
 * CDC_EXCLUDE_COLUMNS, CDC_HASH_COLUMNS), with the key from CDC_HASH_KEY or
 * the file named by CDC_HASH_KEY_FILE (one trailing newline ignored).
 */
export function resolveColumnPolicy(flags: ColumnPolicyFlags, env: NodeJS.ProcessEnv = process.env): ColumnPolicy {
  const refs = (flag: string, values: readonly string[] | undefined, envValue: string | undefined): ColumnRef[] =>
    tableList(values && values.length > 0 ? values : envValue).map((text) => parseColumnRef(text, flag));
  const excluded = refs('--exclude-column', flags.excludeColumn, env.CDC_EXCLUDE_COLUMNS);
  const hashed = refs('--hash-column', flags.hashColumn, env.CDC_HASH_COLUMNS);
  return new ColumnPolicy(excluded, hashed, hashed.length > 0 ? hashKey(env) : null);
}

function hashKey(env: NodeJS.ProcessEnv): Buffer | null {
  if (env.CDC_HASH_KEY && env.CDC_HASH_KEY_FILE) throw new ConfigError('CDC_HASH_KEY and CDC_HASH_KEY_FILE are both set: give the hash key one way');
  let key: Buffer;
  if (env.CDC_HASH_KEY) {
    key = Buffer.from(env.CDC_HASH_KEY, 'utf8');
  } else if (env.CDC_HASH_KEY_FILE) {
    try {
      key = Buffer.from(readFileSync(env.CDC_HASH_KEY_FILE, 'utf8').replace(/\r?\n$/, ''), 'utf8');
    } catch (error) {
      throw new ConfigError(`cannot read the hash key file CDC_HASH_KEY_FILE=${env.CDC_HASH_KEY_FILE}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  } else {
    return null;
  }
  if (key.length < MIN_HASH_KEY_BYTES) {
    throw new ConfigError(`the hash key (CDC_HASH_KEY / CDC_HASH_KEY_FILE) has ${key.length} bytes; give at least ${MIN_HASH_KEY_BYTES} (e.g. from openssl rand -hex 32)`);
  }
  return key;
}
