/**
 * scripts/stack.sh run by a test for servers of its own (another directory,
 * its own ports, only the services it names), beside the test stack.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** `stack('up')`, `stack('destroy')`: scripts/stack.sh with the test's environment on top of the process's. */
export function ownStack(env: NodeJS.ProcessEnv): (command: 'up' | 'down' | 'destroy') => SpawnSyncReturns<string> {
  return (command) => spawnSync('bash', [path.join(ROOT, 'scripts/stack.sh'), command], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 180_000 });
}
