/**
 * One envelope value → the JSONEachRow text of a ClickHouse column value.
 *
 * The sink writes JSONEachRow lines itself rather than JSON.stringify-ing
 * objects: 64-bit integers and decimals go out as exact number text (bigint
 * cannot pass through JSON.stringify, and 18.16 rejects a quoted Decimal).
 * A value that cannot fit the column throws ValueError; the row then goes to
 * the dead-letter topic instead of failing the whole batch in ClickHouse.
 *
 * Timestamps arrive as epoch microseconds (Debezium MicroTimestamp) or as an
 * ISO-8601 string (ZonedTimestamp). DateTime keeps whole seconds (the only
 * kind 18.16 has: microseconds are truncated, toward the past) and is written
 * as unix seconds, so the column's time zone does not matter. DateTime64(p)
 * is written as UTC text with p fraction digits, so it must be declared with
 * the 'UTC' time zone (checked when the table is read).
 */
export type ValueConverter = (value: unknown) => string;

export class ValueError extends Error {
  override readonly name = 'ValueError';
}

const INT_RANGES: Record<string, [bigint, bigint]> = {
  Int8: [-(2n ** 7n), 2n ** 7n - 1n],
  Int16: [-(2n ** 15n), 2n ** 15n - 1n],
  Int32: [-(2n ** 31n), 2n ** 31n - 1n],
  Int64: [-(2n ** 63n), 2n ** 63n - 1n],
  UInt8: [0n, 2n ** 8n - 1n],
  UInt16: [0n, 2n ** 16n - 1n],
  UInt32: [0n, 2n ** 32n - 1n],
  UInt64: [0n, 2n ** 64n - 1n],
};

const INTEGER_TEXT = /^-?\d+$/;
const DECIMAL_TEXT = /^-?\d+(\.\d+)?$/;

function describe(value: unknown): string {
  const text = typeof value === 'bigint' ? `${value}` : JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function integerConverter(type: string, [min, max]: [bigint, bigint]): ValueConverter {
  const minNumber = Number(min);
  const maxNumber = Number(max);
  return (value) => {
    if (typeof value === 'number') {
      if (Number.isInteger(value) && value >= minNumber && value <= maxNumber) return String(value);
    } else if (typeof value === 'bigint') {
      if (value >= min && value <= max) return value.toString();
    } else if (typeof value === 'string' && INTEGER_TEXT.test(value)) {
      const big = BigInt(value);
      if (big >= min && big <= max) return big.toString();
    } else if (typeof value === 'boolean' && max >= 1n) {
      return value ? '1' : '0';
    }
    throw new ValueError(`${describe(value)} does not fit ${type}`);
  };
}

function floatConverter(type: string): ValueConverter {
  return (value) => {
    if (typeof value === 'number' && Number.isFinite(value)) return String(value);
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'string' && DECIMAL_TEXT.test(value)) return value;
    throw new ValueError(`${describe(value)} is not a finite number for ${type}`);
  };
}

function decimalConverter(type: string): ValueConverter {
  return (value) => {
    if (typeof value === 'number' && Number.isFinite(value)) return String(value);
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'string' && DECIMAL_TEXT.test(value)) return value;
    throw new ValueError(`${describe(value)} is not a decimal for ${type}`);
  };
}

/** Any JSON value as a JSON string literal (objects and arrays as their JSON text). */
function stringConverter(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `"${value}"`;
  if (typeof value === 'number' || typeof value === 'boolean') return `"${value}"`;
  return JSON.stringify(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
}

const ISO_TIMESTAMP = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}(?::?\d{2})?)?$/;

/** Epoch microseconds of an envelope timestamp value. */
export function epochMicros(value: unknown): bigint {
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  if (typeof value === 'bigint') return value;
  if (typeof value === 'string') {
    const match = ISO_TIMESTAMP.exec(value);
    if (match) {
      const zone = match[4] === undefined || match[4] === 'Z' ? 'Z' : match[4].length === 3 ? `${match[4]}:00` : match[4];
      const millis = Date.parse(`${match[1]}T${match[2]}${zone}`);
      if (!Number.isNaN(millis)) {
        const fraction = (match[3] ?? '').padEnd(6, '0').slice(0, 6);
        return BigInt(millis) * 1000n + BigInt(fraction);
      }
    }
  }
  throw new ValueError(`${describe(value)} is not a timestamp (epoch microseconds or ISO-8601 text)`);
}

/** Integer division rounding toward minus infinity (bigint `/` truncates toward zero). */
export function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && (a < 0n) !== (b < 0n) ? q - 1n : q;
}

const MAX_DATETIME = 2n ** 32n - 1n;

function dateTimeConverter(type: string): ValueConverter {
  return (value) => {
    // Fast path: a safe-integer number of microseconds.
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) {
      const seconds = Math.floor(value / 1_000_000);
      if (seconds <= 4294967295) return String(seconds);
    }
    const seconds = floorDiv(epochMicros(value), 1_000_000n);
    if (seconds < 0n || seconds > MAX_DATETIME) throw new ValueError(`${describe(value)} is outside ${type}'s range (1970 to 2106)`);
    return seconds.toString();
  };
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** UTC text `YYYY-MM-DD hh:mm:ss.ffffff` cut to `precision` fraction digits. */
export function utcTimestampText(micros: bigint, precision: number): string {
  const seconds = floorDiv(micros, 1_000_000n);
  const fraction = Number(micros - seconds * 1_000_000n);
  const date = new Date(Number(seconds) * 1000);
  const text = `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1, 2)}-${pad(date.getUTCDate(), 2)} ` +
    `${pad(date.getUTCHours(), 2)}:${pad(date.getUTCMinutes(), 2)}:${pad(date.getUTCSeconds(), 2)}`;
  return precision > 0 ? `${text}.${pad(fraction, 6).padEnd(precision, '0').slice(0, precision)}` : text;
}

function dateTime64Converter(precision: number): ValueConverter {
  return (value) => `"${utcTimestampText(epochMicros(value), precision)}"`;
}

/** Epoch-day ranges: Date is 16 bits of days from 1970; Date32 is 1900-01-01 to 2299-12-31. */
const DATE_RANGES: Record<string, [number, number, string]> = {
  Date: [0, 65_535, '1970 to 2149'],
  Date32: [-25_567, 120_529, '1900 to 2299'],
};

function dateConverter(type: 'Date' | 'Date32'): ValueConverter {
  const [min, max, years] = DATE_RANGES[type]!;
  return (value) => {
    if (typeof value === 'number' && Number.isInteger(value)) {
      if (value < min || value > max) throw new ValueError(`${describe(value)} (epoch days) is outside ${type}'s range (${years})`);
      return `"${new Date(value * 86_400_000).toISOString().slice(0, 10)}"`;
    }
    if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value)) return `"${value}"`;
    throw new ValueError(`${describe(value)} is not a date (epoch days or YYYY-MM-DD) for ${type}`);
  };
}

/** Array(T): a JSON array whose elements each fit T (null only where T is Nullable). */
function arrayConverter(column: string, elementType: string): ValueConverter {
  const element = converterFor(column, elementType);
  const nullable = unwrapType(elementType).nullable;
  return (value) => {
    if (!Array.isArray(value)) throw new ValueError(`${describe(value)} is not an array for Array(${elementType})`);
    const parts = value.map((item: unknown) => {
      if (item === null || item === undefined) {
        if (!nullable) throw new ValueError(`an array element is null but ${elementType} is not Nullable`);
        return 'null';
      }
      if (Array.isArray(item)) throw new ValueError('a multi-dimensional array does not fit a one-dimensional ClickHouse Array');
      return element(item);
    });
    return `[${parts.join(',')}]`;
  };
}

function passThrough(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

/** Strips Nullable(...) and LowCardinality(...) wrappers. */
export function unwrapType(type: string): { inner: string; nullable: boolean } {
  let inner = type.trim();
  let nullable = false;
  for (;;) {
    const match = /^(Nullable|LowCardinality)\((.*)\)$/.exec(inner);
    if (!match) return { inner, nullable };
    if (match[1] === 'Nullable') nullable = true;
    inner = match[2] ?? '';
  }
}

/** The converter for a column's non-null values; throws on a type it cannot write. */
export function converterFor(column: string, type: string): ValueConverter {
  const { inner } = unwrapType(type);
  const range = INT_RANGES[inner];
  if (range) return integerConverter(inner, range);
  if (inner === 'Float32' || inner === 'Float64') return floatConverter(inner);
  if (/^Decimal(32|64|128)?\(/.test(inner)) return decimalConverter(inner);
  if (inner === 'String' || inner.startsWith('FixedString(') || inner === 'UUID' || inner.startsWith('Enum')) return stringConverter;
  if (inner === 'Date' || inner === 'Date32') return dateConverter(inner);
  const array = /^Array\((.*)\)$/.exec(inner);
  if (array) return arrayConverter(column, array[1] ?? '');
  if (inner === 'DateTime' || inner.startsWith('DateTime(')) return dateTimeConverter(inner);
  const dt64 = /^DateTime64\((\d)(?:,\s*'([^']*)')?\)$/.exec(inner);
  if (dt64) {
    if (dt64[2] !== 'UTC') {
      throw new Error(`column ${column} is ${inner}; walbridge writes DateTime64 as UTC text, declare it DateTime64(${dt64[1]}, 'UTC')`);
    }
    return dateTime64Converter(Number(dt64[1]));
  }
  return passThrough;
}
