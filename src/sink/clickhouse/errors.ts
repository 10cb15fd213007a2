/**
 * What a ClickHouse failure means for the sink: wait and retry (transient),
 * dead-letter the row (its data does not fit), or tell the user what to fix.
 */
import { ClickHouseError } from '@clickhouse/client';

/** Server error codes that pass: overload, timeouts, read-only replica, network. */
const TRANSIENT_CODES = new Set(['3', '159', '164', '202', '203', '209', '210', '241', '242', '252', '285', '319', '425', '999']);
/** Server error codes that mean a row of the insert does not fit (parse, type, range). */
const ROW_DATA_CODES = new Set(['6', '25', '26', '27', '32', '38', '41', '53', '69', '70', '72', '117', '131', '349', '407']);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);

/**
 * The server's error code. @clickhouse/client parses only the current error
 * format into ClickHouseError; 18.16 answers `Code: 131, e.displayText() = …`,
 * which arrives as a plain Error.
 */
function serverErrorCode(error: unknown): string | undefined {
  if (error instanceof ClickHouseError) return error.code;
  return /^Code: (\d+)[.,]/.exec((error as Error | undefined)?.message ?? '')?.[1];
}

export function isTransientClickHouseError(error: unknown): boolean {
  const code = serverErrorCode(error);
  if (code !== undefined) return TRANSIENT_CODES.has(code);
  const err = error as { code?: string; message?: string } | undefined;
  if (err?.code && NETWORK_CODES.has(err.code)) return true;
  const message = err?.message ?? '';
  return /Timeout error|socket hang up|ECONNRESET|ECONNREFUSED|other side closed/i.test(message);
}

/**
 * Errors of the server or its setup rather than of the rows: a login or grant
 * refused, the database gone, a replica read-only, too many parts, memory or
 * disk short, besides the transient ones. While the sink runs, it waits them
 * out (logging what is wrong) and never dead-letters rows for them: they
 * would fail for every row alike. A missing table or column is no such error
 * for the applier: it reads the table again first (batch-applier.ts).
 */
const SYSTEMIC_CODES = new Set(['81', '192', '193', '194', '195', '516', '497', '243', '225', '236', '999']);

export function isSystemicClickHouseError(error: unknown): boolean {
  if (isTransientClickHouseError(error)) return true;
  const code = serverErrorCode(error);
  return code !== undefined && SYSTEMIC_CODES.has(code);
}

export function isRowDataError(error: unknown): boolean {
  const code = serverErrorCode(error);
  return code !== undefined && ROW_DATA_CODES.has(code);
}

const UNKNOWN_DATABASE = '81';

/** Server error codes of a refused login: unknown user, wrong or missing password, address not allowed. */
const AUTH_CODES = new Set(['192', '193', '194', '195', '516']);

/** The user-facing text for a ClickHouse error the user must fix, else undefined. */
export function clickHouseUserError(error: unknown): string | undefined {
  const code = serverErrorCode(error);
  if (code === UNKNOWN_DATABASE) {
    const name = /Database (\S+) doesn't exist/.exec((error as Error).message)?.[1] ?? 'named in the URL';
    return `ClickHouse database ${name} does not exist; create it (\`migrate --only clickhouse\` does, or CREATE DATABASE) or fix the path of --clickhouse-url / CLICKHOUSE_URL`;
  }
  if (code === undefined || !AUTH_CODES.has(code)) return undefined;
  const detail = /DB::Exception: ([^,]+)/.exec((error as Error).message)?.[1] ?? (error as Error).message;
  return `ClickHouse refused the login (${detail.trim()}); check the user and password in --clickhouse-url / CLICKHOUSE_URL`;
}
