/**
 * TLS to PostgreSQL and ClickHouse.
 *
 * PostgreSQL: the database URL's own libpq-style parameters, read by
 * node-postgres (pg-connection-string) for every connection walbridge opens,
 * the replication connection included (pg-logical-replication hands the
 * same config to pg.Client): `sslmode=verify-full&sslrootcert=/path/ca.pem`.
 * node-postgres verifies the certificate and the host name for every sslmode
 * but `disable` and `no-verify` (it treats `prefer`, `require` and
 * `verify-ca` as `verify-full`, with a warning; any other value would turn
 * TLS on silently, so it is refused here). It reads the sslrootcert, sslcert
 * and sslkey files itself, when the client is made: they are checked here
 * first so a wrong path is a clear configuration error.
 *
 * ClickHouse: an `https://` URL, and, for a CA that is not among the
 * system's, its PEM file in --clickhouse-ca / CLICKHOUSE_CA_FILE.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../core/exit-codes.js';

export const POSTGRES_SSL_MODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'];
const CLICKHOUSE_CA = 'the ClickHouse CA file (--clickhouse-ca / CLICKHOUSE_CA_FILE)';

/** Refuses an unknown sslmode and unreadable or non-PEM sslrootcert/sslcert/sslkey files of the database URL. */
export function checkPostgresTls(databaseUrl: string): void {
  const params = new URL(databaseUrl).searchParams;
  const mode = params.get('sslmode');
  if (mode !== null && !POSTGRES_SSL_MODES.includes(mode)) {
    throw new ConfigError(`sslmode=${mode} in the database URL (--database-url / DATABASE_URL) is not one of ${POSTGRES_SSL_MODES.join(', ')}`);
  }
  for (const [param, marker] of [['sslrootcert', 'CERTIFICATE'], ['sslcert', 'CERTIFICATE'], ['sslkey', 'PRIVATE KEY']] as const) {
    const file = params.get(param);
    if (file !== null) readPem(file, `${param} of the database URL (--database-url / DATABASE_URL)`, marker);
  }
}

/**
 * The ClickHouse CA file (flag > environment), checked: readable, a PEM
 * certificate, and given for an https:// URL (over http it would be unused,
 * and the connection silently unencrypted).
 */
export function resolveClickHouseCaFile(flag: string | undefined, env: NodeJS.ProcessEnv, clickhouseUrl: string): string | undefined {
  const file = flag ?? (env.CLICKHOUSE_CA_FILE || undefined);
  if (file === undefined) return undefined;
  if (new URL(clickhouseUrl).protocol !== 'https:') {
    throw new ConfigError(`${CLICKHOUSE_CA} is given, but the ClickHouse URL (--clickhouse-url / CLICKHOUSE_URL) is not https://: use https:// and ClickHouse's https_port`);
  }
  readClickHouseCa(file);
  return file;
}

/** The CA certificate(s) in the file (PEM). */
export function readClickHouseCa(file: string): Buffer {
  return readPem(file, CLICKHOUSE_CA, 'CERTIFICATE');
}

function readPem(file: string, what: string, marker: 'CERTIFICATE' | 'PRIVATE KEY'): Buffer {
  let content: Buffer;
  try {
    content = readFileSync(file);
  } catch (error) {
    throw new ConfigError(`cannot read ${what}, ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (!new RegExp(`-----BEGIN [A-Z ]*${marker}-----`).test(content.toString('latin1'))) {
    throw new ConfigError(`${what}, ${file}, holds no PEM ${marker.toLowerCase()} (-----BEGIN ${marker}-----)`);
  }
  return content;
}

/** Node's codes for a certificate chain the client does not trust. */
const UNTRUSTED_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_UNTRUSTED', 'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE', 'CERT_CHAIN_TOO_LONG', 'INVALID_CA',
]);
const EXPIRY_CODES = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);
const WHERE_TO_GIVE_THE_CA =
  'PostgreSQL: sslrootcert=/path/ca.pem with sslmode=verify-full in --database-url / DATABASE_URL; ClickHouse: --clickhouse-ca / CLICKHOUSE_CA_FILE';

interface TlsError {
  code?: string;
  message?: string;
  host?: string;
  cert?: { subjectaltname?: string };
}

/** The user-facing text when a connection failed on TLS for a reason the user must fix, else undefined. */
export function tlsUserError(error: unknown): string | undefined {
  const err = error as TlsError | undefined;
  const code = err?.code ?? '';
  const message = err?.message ?? '';
  if (UNTRUSTED_CODES.has(code)) {
    return `TLS: the server's certificate is not trusted (${message}); give the CA that signed it (${WHERE_TO_GIVE_THE_CA})`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const names = err?.cert?.subjectaltname ? `; the certificate holds ${err.cert.subjectaltname}` : '';
    return `TLS: the server's certificate is not valid for the host ${err?.host ?? 'connected to'} (${message}${names}); `
      + 'connect by a name the certificate holds (the host in --database-url / --clickhouse-url), or have the certificate reissued for this one';
  }
  if (EXPIRY_CODES.has(code)) return `TLS: the server's certificate is not valid now (${message}); renew it`;
  if (message === 'The server does not support SSL connections') {
    return 'TLS: the PostgreSQL server does not accept TLS (ssl = off) but --database-url / DATABASE_URL asks for it (sslmode); turn ssl on in the server, or use sslmode=disable';
  }
  const notTls = code === 'EPROTO' ? /wrong version number|packet length too long/i.exec(message) : null;
  if (notTls) return `TLS: the server did not answer in TLS (${notTls[0]}); is the port an https one (ClickHouse's https_port, not http_port)?`;
  return undefined;
}
