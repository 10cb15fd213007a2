#!/usr/bin/env node
/**
 * `migrate`: creates user_logins in PostgreSQL (the seed's DDL) and in
 * ClickHouse (ReplacingMergeTree for the server's version; with --cluster,
 * ReplicatedReplacingMergeTree ON CLUSTER). Idempotent.
 */
import pg from 'pg';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { redactUrl, resolveConnections } from '../config/connections.js';
import { ensureDatabase, openClickHouse } from '../sink/clickhouse/client.js';
import { clusterFrom } from '../sink/clickhouse/cluster.js';
import { migrateClickHouse } from '../migrate/clickhouse-migrator.js';
import { migratePostgres } from '../migrate/postgres-migrator.js';
import { runCommand, usageFailure } from './run-command.js';

const argv = yargs(hideBin(process.argv))
  .scriptName('migrate')
  .usage('$0 [--only postgres|clickhouse]\n\nApplies migrations/postgres and migrations/clickhouse, idempotently.')
  .option('database-url', { type: 'string', describe: 'PostgreSQL URL (env DATABASE_URL)' })
  .option('clickhouse-url', { type: 'string', describe: 'ClickHouse URL with the database as its path (env CLICKHOUSE_URL)' })
  .option('clickhouse-ca', { type: 'string', describe: 'PEM file of the CA that signed ClickHouse\'s https certificate (env CLICKHOUSE_CA_FILE)' })
  .option('cluster', { type: 'string', describe: 'ClickHouse cluster (remote_servers) to create the tables on, ON CLUSTER and replicated (env CLICKHOUSE_CLUSTER)' })
  .option('only', { choices: ['postgres', 'clickhouse'] as const, describe: 'migrate one side only' })
  .strict()
  .help()
  .fail(usageFailure('migrate'))
  .parseSync();

await runCommand(async () => {
  const connections = resolveConnections({ databaseUrl: argv.databaseUrl, clickhouseUrl: argv.clickhouseUrl, clickhouseCa: argv.clickhouseCa });
  if (argv.only !== 'clickhouse') {
    const client = new pg.Client({ connectionString: connections.databaseUrl });
    await client.connect();
    try {
      const applied = await migratePostgres(client);
      console.log(`postgres   ${redactUrl(connections.databaseUrl)}: ${applied.length ? `applied ${applied.join(', ')}` : 'up to date'}`);
    } finally {
      await client.end();
    }
  }
  if (argv.only !== 'postgres') {
    const cluster = clusterFrom(argv.cluster);
    await ensureDatabase(connections.clickhouseUrl, connections.clickhouseCaFile, cluster);
    const { client, database } = openClickHouse(connections.clickhouseUrl, { caFile: connections.clickhouseCaFile });
    try {
      const { features, applied } = await migrateClickHouse(client, database, cluster);
      const where = cluster === undefined ? '' : ` on cluster ${cluster}`;
      console.log(`clickhouse ${redactUrl(connections.clickhouseUrl)} (server ${features.version})${where}: ${applied.length ? `applied ${applied.join(', ')}` : 'up to date'}`);
    } finally {
      await client.close();
    }
  }
});
