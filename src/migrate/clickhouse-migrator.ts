/**
 * Applies migrations/clickhouse/*.sql with the DDL fitting the server's
 * version, recorded in walbridge_schema_migrations. ClickHouse has no DDL
 * transactions: every statement is written IF NOT EXISTS, so a file that
 * failed half-way is simply applied again; an `ADD COLUMN` (18.16 knows no
 * IF NOT EXISTS there) whose column exists counts as applied.
 * With a cluster (--cluster), every CREATE runs ON CLUSTER with a Replicated
 * engine, walbridge_schema_migrations included (src/sink/clickhouse/cluster.ts).
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { quoteIdentifier } from '../sink/clickhouse/client.js';
import { checkCluster, runDdl, type Cluster } from '../sink/clickhouse/cluster.js';
import { ddlMarkers, detectFeatures, type ServerFeatures } from '../sink/clickhouse/schema.js';
import { fillMarkers, readMigrations, splitStatements } from './migration-files.js';

export interface ClickHouseMigration {
  features: ServerFeatures;
  applied: string[];
}

/** The client must point at the target `database` (see ensureDatabase). */
export async function migrateClickHouse(client: ClickHouseClient, database: string, cluster: Cluster = undefined): Promise<ClickHouseMigration> {
  const features = await detectFeatures(client);
  if (cluster !== undefined) await checkCluster(client, cluster);
  await runDdl(client, `CREATE TABLE IF NOT EXISTS walbridge_schema_migrations (name String, applied_at DateTime DEFAULT now())
            ENGINE = MergeTree ORDER BY name`, database, cluster);
  const result = await client.query({ query: 'SELECT name FROM walbridge_schema_migrations', format: 'JSONEachRow' });
  const done = new Set((await result.json<{ name: string }>()).map((row) => row.name));
  const markers = { ...ddlMarkers(features), DATABASE: quoteIdentifier(database) };
  const applied: string[] = [];
  for (const file of await readMigrations('clickhouse')) {
    if (done.has(file.name)) continue;
    for (const statement of splitStatements(fillMarkers(file.sql, markers))) {
      try {
        await runDdl(client, statement, database, cluster);
      } catch (error) {
        if (/\bADD COLUMN\b/i.test(statement) && /already exists|Code: 44\b/.test((error as Error).message)) continue;
        throw new Error(`ClickHouse migration ${file.name} failed: ${(error as Error).message}`, { cause: error });
      }
    }
    await client.insert({ table: 'walbridge_schema_migrations', values: [{ name: file.name }], format: 'JSONEachRow' });
    applied.push(file.name);
  }
  return { features, applied };
}
