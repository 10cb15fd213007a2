/**
 * The faults a chaos run injects, each as a real operator or a real outage
 * would cause it, through scripts/stack.sh on the run's own stack:
 * processes killed with SIGKILL, PostgreSQL restarted fast or crashed
 * (immediate), the Kafka broker leading a captured partition killed and
 * started again, ClickHouse frozen (SIGSTOP) or killed and started again.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import path from 'node:path';
import kafkajs from 'kafkajs';

const STACK_SH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../scripts/stack.sh');
const run = promisify(execFile);

export const FAULT_KINDS = [
  'cdc-kill', 'sink-kill', 'postgres-restart-fast', 'postgres-restart-immediate',
  'kafka-leader-kill', 'clickhouse-pause', 'clickhouse-restart',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface StackControl {
  stackDir: string;
  kafkaBrokers: string;
  /** How long ClickHouse stays frozen (the issue: 30 s). */
  pauseMs: number;
  /** How long a killed broker stays down before it is started again. */
  brokerDownMs: number;
}

async function stack(args: string[], services?: string): Promise<void> {
  await run('bash', [STACK_SH, ...args], {
    env: { ...process.env, STACK_DIR: process.env.STACK_DIR, ...(services ? { STACK_SERVICES: services } : {}) },
    maxBuffer: 1 << 20,
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts services again, trying a few times: the stack's ports lie in
 * Linux's ephemeral range, so a client's outgoing connection can hold one
 * for a moment ("Address already in use: 127.0.0.1:49000", seen when
 * ClickHouse came back in a 30-minute run). A fault that cannot be undone is
 * the harness's failure, not walbridge's.
 */
async function startAgain(services: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await stack(['up'], services);
    } catch (error) {
      if (attempt === 5) throw error;
      await sleep(2_000 * attempt);
    }
  }
}

export async function restartPostgres(mode: 'fast' | 'immediate'): Promise<void> {
  if (mode === 'fast') await stack(['down'], 'postgres');
  else await stack(['kill', 'postgres']);
  await startAgain('postgres');
}

/** Kills the broker leading partition 0 of `topic` (its node number = its node.id), waits, starts it again; returns the node. */
export async function killKafkaLeader(control: StackControl, topic: string): Promise<number> {
  const admin = new kafkajs.Kafka({ brokers: control.kafkaBrokers.split(','), logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  let leader: number;
  try {
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    leader = metadata.topics[0]?.partitions.find((p) => p.partitionId === 0)?.leader ?? 1;
  } finally {
    await admin.disconnect();
  }
  await stack(['kill', `kafka:${leader}`]);
  await sleep(control.brokerDownMs);
  await startAgain('kafka');
  return leader;
}

export async function pauseClickHouse(control: StackControl): Promise<void> {
  const pid = Number(readFileSync(path.join(control.stackDir, 'clickhouse', 'clickhouse.pid'), 'utf8'));
  process.kill(pid, 'SIGSTOP');
  try {
    await sleep(control.pauseMs);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
}

export async function restartClickHouse(): Promise<void> {
  await stack(['kill', 'clickhouse']);
  await startAgain('clickhouse');
}
