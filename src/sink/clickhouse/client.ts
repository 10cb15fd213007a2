/**
 * ClickHouse connections from one URL: `http://user:password@host:port/database`
 * (or `https://`, with the CA's PEM file when it is not a system CA).
 * The database in the path is where walbridge's tables live.
 */
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { readClickHouseCa } from '../../config/tls.js';
import { checkCluster, runDdl, type Cluster } from './cluster.js';

export interface ClickHouseTarget {
  client: ClickHouseClient;
  database: string;
}

export function databaseOf(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\/+|\/+$/g, ''));
  return name || 'default';
}

export interface ClickHouseOptions {
  requestTimeoutMs?: number;
  /** PEM file of the CA to trust for an https URL (--clickhouse-ca); undefined: the system's CAs. */
  caFile?: string | undefined;
}

export function openClickHouse(url: string, options: ClickHouseOptions = {}): ClickHouseTarget {
  const client = createClient({
    url,
    ...(options.caFile === undefined ? {} : { tls: { ca_cert: readClickHouseCa(options.caFile) } }),
    request_timeout: options.requestTimeoutMs ?? 60_000,
    // An insert is one finite HTTP request; keep-alive sockets are reused
    // between batches, compression costs CPU we would rather spend decoding.
    compression: { request: false, response: false },
    // Failures reach the caller as errors, which say what to do; the client's
    // own console logging would print each one a second time.
    log: { level: ClickHouseLogLevel.OFF },
  });
  return { client, database: databaseOf(url) };
}

/**
 * Creates the URL's database when missing (through `default`, which always
 * exists); with a cluster, on every host of it (ON CLUSTER).
 */
export async function ensureDatabase(url: string, caFile?: string, cluster: Cluster = undefined): Promise<void> {
  const database = databaseOf(url);
  if (database === 'default') return;
  const admin = new URL(url);
  admin.pathname = '/default';
  const { client } = openClickHouse(admin.toString(), { caFile });
  try {
    if (cluster !== undefined) await checkCluster(client, cluster);
    await runDdl(client, `CREATE DATABASE IF NOT EXISTS ${quoteIdentifier(database)}`, 'default', cluster);
  } finally {
    await client.close();
  }
}

/** Backquoted identifier, as ClickHouse quotes them. */
export function quoteIdentifier(name: string): string {
  return '`' + name.replace(/\\/g, '\\\\').replace(/`/g, '\\`') + '`';
}
