/**
 * PostgreSQL column (from the `walbridge.schema` header) → ClickHouse type,
 * chosen so every value the event mapping carries (cdc/postgres/column-values.ts)
 * is stored losslessly where ClickHouse can hold it:
 *
 *   bool → UInt8 (0/1; Bool is UInt8 underneath on servers that have it)
 *   int2/int4/int8 → Int16/Int32/Int64, oid → UInt32
 *   float4/float8 → Float32/Float64
 *   numeric(p, s), 0 ≤ s ≤ p ≤ 18 → Decimal(p, s); p ≤ 38 → Decimal(p, s) from
 *     ClickHouse 20.1 (18.16 prints Decimal128 values with NUL bytes inside);
 *     unconstrained numeric (any size, NaN) and the rest → String, the exact text
 *   text/varchar/char/name, json/jsonb, enums, unknown types → String (the text)
 *   uuid → UUID
 *   date → Date (1970+), Date32 from 21.9 (1900–2299); earlier dates are dead-lettered
 *   time → Int64, microseconds since midnight (ClickHouse has no time-of-day type)
 *   timestamp, timestamptz → DateTime64(p, 'UTC') from 20.1 (p = the column's
 *     precision, 6 by default); DateTime('UTC'), whole seconds, on 18.16
 *   bytea → String holding the event's base64 (JSONEachRow cannot carry raw bytes)
 *   arrays of the above → Array(Nullable(element)); ClickHouse has no
 *     Nullable(Array), so a NULL array is stored as []
 *
 * Key columns are non-Nullable (they are the sorting key); the others Nullable.
 */
import type { ColumnSchema } from '../../core/envelope.js';
import type { ServerFeatures } from './schema.js';

const SCALARS: Record<number, string> = {
  16: 'bool', 17: 'bytea', 18: 'char', 19: 'name', 20: 'int8', 21: 'int2', 23: 'int4', 25: 'text', 26: 'oid',
  114: 'json', 700: 'float4', 701: 'float8', 1042: 'bpchar', 1043: 'varchar', 1082: 'date', 1083: 'time',
  1114: 'timestamp', 1184: 'timestamptz', 1700: 'numeric', 2950: 'uuid', 3802: 'jsonb',
};

/** Array type OID → element type OID, for the scalars above. */
const ARRAYS: Record<number, number> = {
  1000: 16, 1001: 17, 1002: 18, 1003: 19, 1016: 20, 1005: 21, 1007: 23, 1009: 25, 1028: 26, 199: 114, 1021: 700,
  1022: 701, 1014: 1042, 1015: 1043, 1182: 1082, 1183: 1083, 1115: 1114, 1185: 1184, 1231: 1700, 2951: 2950, 3807: 3802,
};

/** The ClickHouse type of one scalar PostgreSQL type (never Nullable). */
function scalarType(typeOid: number, typmod: number, features: ServerFeatures): string {
  switch (SCALARS[typeOid]) {
    case 'bool': return 'UInt8';
    case 'int2': return 'Int16';
    case 'int4': return 'Int32';
    case 'int8': return 'Int64';
    case 'oid': return 'UInt32';
    case 'float4': return 'Float32';
    case 'float8': return 'Float64';
    case 'numeric': return numericType(typmod, features);
    case 'uuid': return 'UUID';
    case 'date': return features.date32 ? 'Date32' : 'Date';
    case 'time': return 'Int64';
    case 'timestamp':
    case 'timestamptz': {
      if (!features.dateTime64) return "DateTime('UTC')";
      const precision = typmod >= 0 && typmod <= 6 ? typmod : 6;
      return `DateTime64(${precision}, 'UTC')`;
    }
    default: return 'String';
  }
}

/** numeric's typmod is ((precision << 16) | scale) + 4; -1 when unconstrained. */
function numericType(typmod: number, features: ServerFeatures): string {
  if (typmod < 4) return 'String';
  const precision = ((typmod - 4) >> 16) & 0xffff;
  const scale = (typmod - 4) & 0xffff; // PostgreSQL 15 allows negative scales: those arrive above 1000 and fall to String
  if (scale > precision || precision < 1) return 'String';
  if (precision <= 18 || (precision <= 38 && features.decimal128)) return `Decimal(${precision}, ${scale})`;
  return 'String';
}

function elementOid(column: ColumnSchema): number | undefined {
  const element = ARRAYS[column.typeOid];
  if (element !== undefined) return element;
  // An array of an enum or other non-built-in type: its name is `_name` (pg_type) or `name[]`.
  if (column.typeName?.startsWith('_') || column.typeName?.endsWith('[]')) return 0;
  return undefined;
}

/** The ClickHouse column type for a PostgreSQL column of the header. */
export function clickHouseTypeOf(column: ColumnSchema, features: ServerFeatures): string {
  const element = elementOid(column);
  if (element !== undefined) return `Array(Nullable(${scalarType(element, column.typmod, features)}))`;
  const type = scalarType(column.typeOid, column.typmod, features);
  return column.key ? type : `Nullable(${type})`;
}

/** A human name of the PostgreSQL type, for messages. */
export function postgresTypeName(column: ColumnSchema): string {
  const element = ARRAYS[column.typeOid];
  if (element !== undefined) return `${SCALARS[element]}[]`;
  const name = SCALARS[column.typeOid] ?? column.typeName ?? `oid ${column.typeOid}`;
  if ((name === 'numeric') && column.typmod >= 4) return `numeric(${((column.typmod - 4) >> 16) & 0xffff}, ${(column.typmod - 4) & 0xffff})`;
  if ((name === 'varchar' || name === 'bpchar') && column.typmod >= 4) return `${name}(${column.typmod - 4})`;
  return name;
}
