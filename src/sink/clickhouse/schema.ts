/**
 * What the connected ClickHouse server can do, and the DDL pieces that follow.
 * 18.16 (Debian's package) lacks DateTime64 (20.1+) and the two-argument
 * ReplacingMergeTree(ver, is_deleted) (23.2+); current releases have both.
 */
import type { ClickHouseClient } from '@clickhouse/client';

export interface ServerFeatures {
  version: string;
  /** DateTime64(6): microsecond timestamps. Without it DateTime keeps seconds. */
  dateTime64: boolean;
  /** ReplacingMergeTree(_version, _is_deleted). */
  replacingIsDeleted: boolean;
  /**
   * Decimal128 (precision 19–38) that prints right: 18.16 writes NUL bytes
   * into toString() of large values (checked on 18.16.1). 20.1 is a safe
   * lower bound, not the exact release of the fix (only 18.16 runs here).
   */
  decimal128: boolean;
  /** Date32 (1900–2299). */
  date32: boolean;
  /**
   * input_format_defaults_for_omitted_fields: an omitted JSONEachRow field
   * takes the column's DEFAULT expression. 18.16 does not know the setting
   * and fills the type's zero value instead (checked on 18.16.1).
   */
  omittedFieldDefaults: boolean;
}

export function featuresOf(version: string): ServerFeatures {
  const [major = 0, minor = 0] = version.split('.').map((part) => Number.parseInt(part, 10));
  const atLeast = (maj: number, min: number): boolean => major > maj || (major === maj && minor >= min);
  return {
    version, dateTime64: atLeast(20, 1), replacingIsDeleted: atLeast(23, 2), decimal128: atLeast(20, 1), date32: atLeast(21, 9),
    omittedFieldDefaults: atLeast(20, 1),
  };
}

export async function detectFeatures(client: ClickHouseClient): Promise<ServerFeatures> {
  const result = await client.query({ query: 'SELECT version() AS version', format: 'JSONEachRow' });
  const rows = await result.json<{ version: string }>();
  const version = rows[0]?.version;
  if (!version) throw new Error('ClickHouse did not report its version');
  return featuresOf(version);
}

/** Values for the {{...}} markers in migrations/clickhouse/*.sql. */
export function ddlMarkers(features: ServerFeatures): Record<string, string> {
  return {
    DATETIME_US: features.dateTime64 ? "DateTime64(6, 'UTC')" : "DateTime('UTC')",
    NOW_US: features.dateTime64 ? 'now64(6)' : 'now()',
    REPLACING_ENGINE: features.replacingIsDeleted
      ? 'ReplacingMergeTree(_version, _is_deleted)'
      : 'ReplacingMergeTree(_version)',
  };
}
