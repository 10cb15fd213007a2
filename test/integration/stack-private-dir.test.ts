/**
 * scripts/stack.sh as root in a directory only root can enter (a clone under
 * /root, or in `mktemp -d`: mode 700), where PostgreSQL, running as the
 * postgres user, cannot reach a data directory inside it: the cluster must
 * start anyway (it lives outside, linked), and `destroy` must remove it all.
 * Only PostgreSQL is started, on a free port of its own.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { freePort } from '../support/ports.js';
import { ownStack } from '../support/own-stack.js';

describe('local stack in a mode-700 directory', { skip: process.getuid?.() !== 0 && 'the stack runs PostgreSQL as postgres only when started by root' }, () => {
  const privateDir = mkdtempSync(path.join(tmpdir(), 'wb-private-'));
  const stackDir = path.join(privateDir, 'clone', '.stack');
  let stack = ownStack({ STACK_DIR: stackDir });
  after(() => {
    stack('destroy');
    rmSync(privateDir, { recursive: true, force: true });
  });

  it('starts PostgreSQL (its cluster outside, linked), and destroy removes both', async () => {
    mkdirSync(path.dirname(stackDir));
    assert.equal(statSync(privateDir).mode & 0o777, 0o700);
    assert.notEqual(spawnSync('runuser', ['-u', 'postgres', '--', 'test', '-x', privateDir]).status, 0, 'postgres must not be able to enter the directory');
    const port = await freePort();
    stack = ownStack({ STACK_DIR: stackDir, STACK_SERVICES: 'postgres', STACK_PG_PORT: String(port) });
    const up = stack('up');
    assert.equal(up.status, 0, `${up.stdout}${up.stderr}`);
    assert.match(up.stdout, /cannot enter .* its cluster lives in \/var\/lib\/walbridge-stack\/pg-/);
    const outside = readlinkSync(path.join(stackDir, 'pg'));
    assert.ok(lstatSync(path.join(stackDir, 'pg')).isSymbolicLink());

    const client = new pg.Client({ connectionString: `postgres://walbridge:walbridge@127.0.0.1:${port}/walbridge` });
    await client.connect();
    try {
      assert.equal((await client.query<{ wal_level: string }>('SHOW wal_level')).rows[0]?.wal_level, 'logical');
    } finally {
      await client.end();
    }

    const destroyed = stack('destroy');
    assert.equal(destroyed.status, 0, `${destroyed.stdout}${destroyed.stderr}`);
    assert.ok(!existsSync(outside), `${outside} left behind`);
    assert.ok(!existsSync(stackDir), `${stackDir} left behind`);
  });
});
