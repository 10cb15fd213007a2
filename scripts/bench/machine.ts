/** What the benchmark ran on: cores, memory, versions, recorded in the results. */
import os from 'node:os';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { ClickHouseClient } from '@clickhouse/client';
import type pg from 'pg';

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGb: number;
  node: string;
  postgres: string;
  kafka: string;
  clickhouse: string;
  kernel: string;
}

function kafkaVersion(libs: string): string {
  try {
    const jar = readdirSync(libs).find((name) => /^kafka_2\.13-.*\.jar$/.test(name));
    return jar ? jar.replace(/^kafka_2\.13-|\.jar$/g, '') : 'unknown';
  } catch {
    return 'unknown';
  }
}

export async function describeMachine(postgres: pg.Client, clickhouse: ClickHouseClient, root: string): Promise<Machine> {
  const pgVersion = (await postgres.query<{ v: string }>('SELECT version() AS v')).rows[0]?.v ?? 'unknown';
  const chRows = await (await clickhouse.query({ query: 'SELECT version() AS v', format: 'JSONEachRow' })).json<{ v: string }>();
  return {
    cores: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    postgres: pgVersion.split(',')[0] ?? pgVersion,
    kafka: kafkaVersion(process.env.KAFKA_LIBS ?? path.join(root, '.stack-cache', 'kafka-libs')),
    clickhouse: chRows[0]?.v ?? 'unknown',
    kernel: execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim(),
  };
}
