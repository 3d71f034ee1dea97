/**
 * npm run package and npm run image refuse, saying what to do, to build from a tree that is not a
 * clean, built commit.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from '../helpers/nspawn';

describe('npm run package and npm run image on a tree they must not ship', () => {
  let clone = '';
  const SCRIPTS = ['package.sh', 'image.sh'];
  const runScript = (script: string): { status: number | null; stderr: string } =>
    spawnSync('bash', [path.join(clone, 'scripts', script), 'x64'], { cwd: clone, encoding: 'utf8' });

  before(() => {
    clone = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-refusal-')), 'src');
    const head = spawnSync('git', ['-C', REPO_ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
    assert.equal(spawnSync('git', ['clone', '--quiet', '--shared', '--no-checkout', REPO_ROOT, clone]).status, 0);
    assert.equal(spawnSync('git', ['-C', clone, 'checkout', '--quiet', '--detach', head]).status, 0);
  });
  after(() => {
    fs.rmSync(path.dirname(clone), { recursive: true, force: true });
  });

  it('refuses an unbuilt tree: run npm ci first', () => {
    for (const script of SCRIPTS) {
      const result = runScript(script);
      assert.equal(result.status, 2, script);
      assert.match(result.stderr, /the tree is not built: run 'npm ci' first/, script);
    }
  });

  it('refuses a tree with uncommitted changes', () => {
    fs.appendFileSync(path.join(clone, 'README.md'), '\nlocal change\n');
    for (const script of SCRIPTS) {
      const result = runScript(script);
      assert.equal(result.status, 2, script);
      assert.match(result.stderr, /uncommitted changes .*packages are built from a commit/, script);
    }
  });
});
