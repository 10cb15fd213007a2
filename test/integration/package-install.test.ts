/**
 * The package as a user installs it: `npm pack`, then `npm install -g` of the
 * tarball from an empty directory (into a throw-away prefix, so the machine's
 * global packages are left alone), and the three commands answer --help.
 * Needs the npm registry for the dependencies; dist/ is built by scripts/test.sh.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function run(command: string, args: string[], cwd: string): string {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 300_000 });
  assert.equal(result.status, 0, `${command} ${args.join(' ')}:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

describe('npm pack and a global install', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'wb-pack-'));
  after(() => rmSync(work, { recursive: true, force: true }));

  it('installs from the tarball, and cdc, sink and migrate answer --help', () => {
    // --ignore-scripts: dist/ is already built; prepare would rebuild it under running tests.
    run('npm', ['pack', '--ignore-scripts', '--pack-destination', work], ROOT);
    const tarball = readdirSync(work).find((name) => /^walbridge-.*\.tgz$/.test(name));
    assert.ok(tarball, 'npm pack made no walbridge-*.tgz');
    const empty = mkdtempSync(path.join(work, 'empty-'));
    const prefix = path.join(work, 'global');
    run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', path.join(work, tarball)], empty);
    for (const [command, usage] of [['cdc', /cdc <command>/], ['sink', /sink <command>/], ['migrate', /migrate \[--only postgres\|clickhouse\]/]] as const) {
      const help = run(path.join(prefix, 'bin', command), ['--help'], empty);
      assert.match(help, usage);
    }
  });
});
