/**
 * A replicated ClickHouse (`--cluster NAME`, env CLICKHOUSE_CLUSTER): every
 * table walbridge creates is created `ON CLUSTER NAME` with the Replicated
 * variant of its engine, its replicas agreeing through ZooKeeper at
 * `/clickhouse/tables/{shard}/<database>/<table>` (the {shard} and {replica}
 * macros come from each server's config).
 *
 * Only CREATE runs ON CLUSTER. An ALTER of a Replicated table (ADD/MODIFY
 * COLUMN, the truncate's `ALTER TABLE … DELETE`) is replicated by ClickHouse
 * itself through ZooKeeper: run plainly on the replica walbridge talks to, it
 * reaches every replica, and a replica that is down applies it when it
 * returns. ON CLUSTER would instead wait for every host (checked on 18.16: a
 * down replica holds each ALTER for distributed_ddl_task_timeout, 180 s, then
 * fails), which would stall the sink for as long as a replica is down.
 *
 * ON CLUSTER DDL answers one row per host (host, port, status, error, …) and
 * fails when a host failed or when not every host confirmed within
 * distributed_ddl_task_timeout; the query still runs on the hosts that did not
 * confirm, when they come back. Both failures are turned into messages that say so.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { ConfigError } from '../../core/exit-codes.js';
import { quoteIdentifier } from './client.js';
import { quoteString } from './rows.js';

/** The cluster walbridge creates its tables on; undefined: a single server. */
export type Cluster = string | undefined;

/** `--cluster` / CLICKHOUSE_CLUSTER; empty means none. */
export function clusterFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): Cluster {
  const name = (flag ?? env.CLICKHOUSE_CLUSTER ?? '').trim();
  return name === '' ? undefined : name;
}

const NAME = String.raw`(?:\x60(?:[^\x60\\]|\\.)*\x60|[A-Za-z_][\w$]*)`;
const CREATE = new RegExp(String.raw`^(\s*CREATE\s+(TABLE|VIEW|DATABASE)\s+(?:IF\s+NOT\s+EXISTS\s+)?)(${NAME}(?:\.${NAME})?)`, 'i');
const ENGINE = /\bENGINE\s*=\s*(ReplacingMergeTree|MergeTree)(?:\s*\(([^)]*)\))?/i;

function unquote(name: string): string {
  return name.startsWith('`') ? name.slice(1, -1).replace(/\\(.)/g, '$1') : name;
}

/**
 * The statement as the cluster needs it: a CREATE TABLE / VIEW / DATABASE gets
 * ON CLUSTER, and a (Replacing)MergeTree engine its Replicated variant with
 * the table's ZooKeeper path. Any other statement (ALTER, INSERT) is returned
 * as is: see the file's comment. `database`: where an unqualified table lives.
 */
export function forCluster(sql: string, database: string, cluster: Cluster): string {
  if (cluster === undefined) return sql;
  const create = CREATE.exec(sql);
  if (!create) return sql;
  const [whole, head = '', kind = '', name = ''] = create;
  let rest = sql.slice(whole.length);
  if (kind.toUpperCase() === 'DATABASE') return `${head}${name} ON CLUSTER ${quoteIdentifier(cluster)}${rest}`;
  // Each host runs the statement in its own session (database `default`): the name is qualified.
  const parts = name.split(new RegExp(String.raw`\.(?=${NAME}$)`));
  const [db, table] = parts.length === 2 ? [unquote(parts[0] ?? ''), unquote(parts[1] ?? '')] : [database, unquote(name)];
  const qualified = `${quoteIdentifier(db)}.${quoteIdentifier(table)}`;
  if (kind.toUpperCase() === 'TABLE') {
    const engine = ENGINE.exec(rest);
    if (!engine) throw new Error(`cannot make this table replicated for --cluster (no MergeTree or ReplacingMergeTree engine): ${sql}`);
    const args = [quoteString(`/clickhouse/tables/{shard}/${db}/${table}`), quoteString('{replica}'), ...(engine[2] ?? '').split(',').map((a) => a.trim()).filter(Boolean)];
    // A replacer function: a `$` in a name is not a replacement pattern.
    rest = rest.replace(ENGINE, () => `ENGINE = Replicated${engine[1]}(${args.join(', ')})`);
  }
  return `${head}${qualified} ON CLUSTER ${quoteIdentifier(cluster)}${rest}`;
}

/** Runs one statement, ON CLUSTER when `cluster` is set, turning a cluster's failure into a clear message. */
export async function runDdl(client: ClickHouseClient, sql: string, database: string, cluster: Cluster): Promise<void> {
  const statement = forCluster(sql, database, cluster);
  if (statement === sql) {
    await client.command({ query: sql });
    return;
  }
  try {
    // wait_end_of_query: the server holds the per-host answer until every host
    // answered, so a late failure is an HTTP error rather than text after a 200.
    // Nothing is sent meanwhile, so the cluster's wait must end before the
    // client's idle timeout (request_timeout, client.ts) or the answer is a bare "Timeout error".
    await client.command({ query: statement, clickhouse_settings: { wait_end_of_query: 1, distributed_ddl_task_timeout: String(ON_CLUSTER_WAIT_S) } });
  } catch (error) {
    throw clusterDdlError(error, cluster ?? '', statement);
  }
}

/** How long ON CLUSTER DDL waits for every host: under the client's 60-s request timeout. */
const ON_CLUSTER_WAIT_S = 45;

/** Thrown when ON CLUSTER DDL was not confirmed by every host in time (it still runs on them later). */
export class ClusterDdlTimeout extends Error {
  override readonly name = 'ClusterDdlTimeout';
}

function clusterDdlError(error: unknown, cluster: string, statement: string): Error {
  const message = (error as Error).message ?? String(error);
  const first = statement.split('\n')[0];
  if (/distributed_ddl_task_timeout/.test(message)) {
    const hosts = /There are (\d+) unfinished hosts \((\d+) of them are currently active\)/.exec(message);
    const which = hosts ? `${hosts[1]} host(s) of cluster ${cluster} (${hosts[2]} of them active)` : `some host of cluster ${cluster}`;
    return new ClusterDdlTimeout(`ON CLUSTER DDL not confirmed by ${which} within distributed_ddl_task_timeout: ${first} … ` +
      'ClickHouse runs it on them when they are back; start the stopped replica (or raise distributed_ddl_task_timeout) and run this again', { cause: error });
  }
  const host = /There was an error on \[?([^\]:\s]+:\d+)\]?/.exec(message)?.[1];
  if (host) return new Error(`ON CLUSTER DDL failed on ${host} of cluster ${cluster}: ${message.split('\n')[0]} (statement: ${first} …)`, { cause: error });
  return error as Error;
}

/**
 * Fails fast (exit 2) unless the server knows the cluster, has ZooKeeper (for
 * replicated tables and ON CLUSTER DDL) and the {shard} and {replica} macros.
 */
export async function checkCluster(client: ClickHouseClient, cluster: string): Promise<void> {
  const clusters = await client.query({ query: 'SELECT DISTINCT cluster FROM system.clusters ORDER BY cluster', format: 'JSONEachRow' });
  const names = (await clusters.json<{ cluster: string }>()).map((row) => row.cluster);
  if (!names.includes(cluster)) {
    throw new ConfigError(`ClickHouse knows no cluster ${cluster} (--cluster / CLICKHOUSE_CLUSTER); ` +
      `its remote_servers define ${names.length ? names.join(', ') : 'none'}`);
  }
  try {
    await client.query({ query: `SELECT name FROM system.zookeeper WHERE path = ${quoteString('/')} LIMIT 1`, format: 'JSONEachRow' }).then((r) => r.json());
  } catch (error) {
    // Without <zookeeper> the server has no system.zookeeper (60, checked on 18.16); 225 NO_ZOOKEEPER,
    // 999 KEEPER_EXCEPTION: none reachable. 18.16 puts the code in the message, current servers in ClickHouseError.code.
    const message = (error as Error).message;
    const code = (error as { code?: string }).code ?? /^Code: (\d+)/.exec(message)?.[1];
    if ((code === '60' && /system\.zookeeper/.test(message)) || code === '225' || code === '999') {
      throw new ConfigError(`ClickHouse has no ZooKeeper configured or reachable (${message.split('\n')[0]}): --cluster ${cluster} needs it for ` +
        'replicated tables and ON CLUSTER DDL; add <zookeeper> to the servers\' config, or drop --cluster for a single server');
    }
    throw error;
  }
  const macros = await client.query({ query: 'SELECT macro FROM system.macros', format: 'JSONEachRow' });
  const defined = new Set((await macros.json<{ macro: string }>()).map((row) => row.macro));
  const missing = ['shard', 'replica'].filter((m) => !defined.has(m));
  if (missing.length > 0) {
    throw new ConfigError(`ClickHouse lacks the macro(s) ${missing.map((m) => `{${m}}`).join(', ')} that --cluster ${cluster} names its ` +
      'replicated tables with; define them in <macros> of each server\'s config');
  }
}
