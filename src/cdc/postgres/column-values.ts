/**
 * PostgreSQL text output → JSON text, following Debezium's default type
 * mapping, losslessly and independent of the process time zone. The result is
 * a JSON fragment written into the event as is, so an int8 above 2^53 keeps
 * every digit (it never becomes a JS number).
 *
 *   bool                      true / false
 *   int2, int4, int8, oid     JSON number, PostgreSQL's own digits
 *   float4, float8            JSON number; NaN and ±Infinity as strings
 *   numeric                   decimal string (decimal.handling.mode=string)
 *   timestamp                 epoch microseconds (MicroTimestamp)
 *   timestamptz               ISO-8601 UTC string, `2024-05-01T10:00:00.123456Z`
 *   date                      epoch days (Date)
 *   time                      microseconds since midnight (MicroTime)
 *   bytea                     base64 string
 *   arrays of the above       JSON arrays of the element mapping (nested for
 *                             several dimensions); text[], uuid[], jsonb[] … of strings
 *   anything else             PostgreSQL's text as a string (json, jsonb, uuid, enums, …)
 *
 * ±infinity: timestamp → int64 max/min, date → int32 max/min, timestamptz →
 * "infinity"/"-infinity". The text must be in DateStyle ISO (connections set it).
 */

export const OID = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int2: 21,
  int4: 23,
  oid: 26,
  float4: 700,
  float8: 701,
  numeric: 1700,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
} as const;

/** `text`: what a hashed column is announced as in the schema header. */
export const TEXT_OID = 25;

/** Converts one column's text to a JSON fragment. */
export type ValueWriter = (text: string) => string;

const INT64_MAX = '9223372036854775807';
const INT64_MIN = '-9223372036854775808';

const TIMESTAMP =
  /^(\d{4,})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?([+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)?( BC)?$/;
const DATE = /^(\d{4,})-(\d{2})-(\d{2})( BC)?$/;
const TIME = /^(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/;

const writeString: ValueWriter = (text) => JSON.stringify(text);
const writeNumber: ValueWriter = (text) => text;

/** Array type OID → element type OID, for the built-in scalar types. */
const ARRAY_ELEMENTS = new Map<number, number>([
  [1000, OID.bool], [1001, OID.bytea], [1016, OID.int8], [1005, OID.int2], [1007, OID.int4], [1028, OID.oid],
  [1021, OID.float4], [1022, OID.float8], [1231, OID.numeric], [1182, OID.date], [1183, OID.time],
  [1115, OID.timestamp], [1185, OID.timestamptz],
  [1009, 25], [1015, 1043], [1014, 1042], [2951, 2950], [199, 114], [3807, 3802], [1002, 18], [1003, 19],
]);

export function valueWriter(typeOid: number): ValueWriter {
  const element = ARRAY_ELEMENTS.get(typeOid);
  if (element !== undefined) return arrayWriter(valueWriter(element));
  switch (typeOid) {
    case OID.bool:
      return (text) => (text === 't' ? 'true' : 'false');
    case OID.int2:
    case OID.int4:
    case OID.int8:
    case OID.oid:
      return writeNumber;
    case OID.float4:
    case OID.float8:
      return (text) => (text === 'NaN' || text === 'Infinity' || text === '-Infinity' ? `"${text}"` : text);
    case OID.timestamp:
      return timestampMicros;
    case OID.timestamptz:
      return timestamptzIso;
    case OID.date:
      return dateDays;
    case OID.time:
      return timeMicros;
    case OID.bytea:
      return (text) => `"${Buffer.from(text.startsWith('\\x') ? text.slice(2) : text, 'hex').toString('base64')}"`;
    default:
      return writeString; // numeric and every other type: the text itself
  }
}

/** Days since 1970-01-01 of a proleptic Gregorian date (astronomical year). */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

function civilFromDays(days: number): [number, number, number] {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return [era * 400 + yoe + (month <= 2 ? 1 : 0), month, day];
}

function astronomicalYear(digits: string, bc: string | undefined): number {
  const year = Number(digits);
  return bc ? 1 - year : year;
}

function fractionMicros(fraction: string | undefined): number {
  return fraction ? Number(fraction.padEnd(6, '0')) : 0;
}

/**
 * A timestamp's text as whole epoch seconds (offset subtracted) plus
 * microseconds; plain numbers, exact: seconds stay far below 2^53 for any
 * year PostgreSQL accepts.
 */
function epochParts(text: string): { seconds: number; micros: number } {
  const m = TIMESTAMP.exec(text);
  if (!m) throw new Error(`unexpected timestamp text '${text}' (is DateStyle ISO?)`);
  const days = daysFromCivil(astronomicalYear(m[1]!, m[9]), Number(m[2]), Number(m[3]));
  const seconds = days * 86_400 + Number(m[4]) * 3600 + Number(m[5]) * 60 + Number(m[6]) - offsetSeconds(m[8]);
  return { seconds, micros: fractionMicros(m[7]) };
}

function offsetSeconds(offset: string | undefined): number {
  if (!offset) return 0;
  const sign = offset.startsWith('-') ? -1 : 1;
  const parts = offset.slice(1).split(':');
  const digits = parts.length > 1 ? parts : (offset.slice(1).match(/\d{2}/g) ?? []);
  const [h = '0', mi = '0', s = '0'] = digits;
  return sign * (Number(h) * 3600 + Number(mi) * 60 + Number(s));
}

/** |seconds| below this: seconds × 10^6 + micros is below 2^53, exact as a number (years 1685–2255). */
const EXACT_SECONDS = 9_000_000_000;

export function timestampMicros(text: string): string {
  if (text === 'infinity') return INT64_MAX;
  if (text === '-infinity') return INT64_MIN;
  const { seconds, micros } = epochParts(text);
  // Per-row hot path: BigInt only where a double would round.
  if (Math.abs(seconds) < EXACT_SECONDS) return String(seconds * 1_000_000 + micros);
  return (BigInt(seconds) * 1_000_000n + BigInt(micros)).toString();
}

export function timestamptzIso(text: string): string {
  if (text === 'infinity' || text === '-infinity') return `"${text}"`;
  const { seconds, micros } = epochParts(text);
  const days = Math.floor(seconds / 86_400);
  const secondsOfDay = seconds - days * 86_400;
  const [year, month, day] = civilFromDays(days);
  const yearText = year < 0 ? `-${String(-year).padStart(4, '0')}` : String(year).padStart(4, '0');
  const time = `${pad2(Math.floor(secondsOfDay / 3600))}:${pad2(Math.floor(secondsOfDay / 60) % 60)}:${pad2(secondsOfDay % 60)}`;
  const fractionText = micros === 0 ? '' : `.${String(micros).padStart(6, '0')}`;
  return `"${yearText}-${pad2(month)}-${pad2(day)}T${time}${fractionText}Z"`;
}

export function dateDays(text: string): string {
  if (text === 'infinity') return '2147483647';
  if (text === '-infinity') return '-2147483648';
  const m = DATE.exec(text);
  if (!m) throw new Error(`unexpected date text '${text}' (is DateStyle ISO?)`);
  return String(daysFromCivil(astronomicalYear(m[1]!, m[4]), Number(m[2]), Number(m[3])));
}

export function timeMicros(text: string): string {
  const m = TIME.exec(text);
  if (!m) throw new Error(`unexpected time text '${text}'`);
  const seconds = Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
  return String(seconds * 1_000_000 + fractionMicros(m[4]));
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/**
 * A one- or more-dimensional array literal (`{1,2,NULL}`, `{{"a b","c"}}`,
 * `[0:1]={…}` bounds dropped) → a JSON array of the element writer's values.
 */
function arrayWriter(element: ValueWriter): ValueWriter {
  return (text) => {
    const start = text.startsWith('[') ? text.indexOf('=') + 1 : 0;
    let position = start;
    const parse = (): string => {
      if (text[position] !== '{') throw new Error(`unexpected array text '${text}'`);
      position++;
      const items: string[] = [];
      while (position < text.length && text[position] !== '}') {
        if (text[position] === '{') {
          items.push(parse());
        } else if (text[position] === '"') {
          let value = '';
          position++;
          while (text[position] !== '"') {
            if (text[position] === '\\') position++;
            value += text[position++];
          }
          position++;
          items.push(element(value));
        } else {
          const end = nextDelimiter(text, position);
          const raw = text.slice(position, end).trim();
          position = end;
          items.push(raw === 'NULL' ? 'null' : element(raw));
        }
        if (text[position] === ',') position++;
      }
      position++;
      return `[${items.join(',')}]`;
    };
    return parse();
  };
}

function nextDelimiter(text: string, from: number): number {
  let i = from;
  while (i < text.length && text[i] !== ',' && text[i] !== '}') i++;
  return i;
}
