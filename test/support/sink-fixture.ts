/**
 * One isolated sink scenario: own PostgreSQL and ClickHouse databases with
 * user_logins migrated (through the migrate CLI), and a change feed on the
 * topic `<prefix>.public.user_logins` with the chosen partition count.
 */
import { openClickHouse } from '../../src/sink/clickhouse/client.js';
import { cliEnv, runCli, type CliResult } from './cli.js';
import { ChangeFeed } from './change-feed.js';
import { isolatedServices, type IsolatedServices } from './services.js';

export interface SinkFixture {
  services: IsolatedServices;
  feed: ChangeFeed;
  topic: string;
  env: NodeJS.ProcessEnv;
  /** Runs `sink <args...>` with the scenario's topic prefix and services. */
  sink(args: string[], timeoutMs?: number): Promise<CliResult>;
  /** ClickHouse query → rows (JSONEachRow). */
  clickhouse<T>(query: string): Promise<T[]>;
  clickhouseCommand(query: string): Promise<void>;
  cleanup(): Promise<void>;
}

export async function sinkFixture(label: string, partitions: number): Promise<SinkFixture> {
  const services = await isolatedServices(label);
  const env = cliEnv(services);
  const migrated = await runCli('migrate', [], env);
  if (migrated.code !== 0) throw new Error(`migrate failed: ${migrated.stderr}`);
  const topic = `${services.topicPrefix}.public.user_logins`;
  const feed = await ChangeFeed.open(services.databaseUrl, services.kafkaBrokers, topic, partitions);
  const { client } = openClickHouse(services.clickhouseUrl);
  return {
    services,
    feed,
    topic,
    env,
    sink: (args, timeoutMs) => runCli('sink', [...args, '--topic-prefix', services.topicPrefix], env, timeoutMs),
    clickhouse: async <T>(query: string) => (await client.query({ query, format: 'JSONEachRow' })).json<T>(),
    clickhouseCommand: async (query) => {
      await client.command({ query });
    },
    cleanup: async () => {
      await feed.close();
      await client.close();
      await services.cleanup();
    },
  };
}
