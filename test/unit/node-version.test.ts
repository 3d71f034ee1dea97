/**
 * The runtime guard (bin/node-version.js): the entry points and the test runner stop at once on
 * an unsupported Node, naming both versions; npm's scripts run on the pinned runtime.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '..', '..', '..');
const GUARD = path.join(REPO, 'bin', 'node-version.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports -- plain CommonJS, outside the TypeScript tree
const guard = require(GUARD) as { MINIMUM_NODE_MAJOR: number };

/** The guard as an entry point meets it, with `version` standing in for process.version. */
function guarded(program: string, version: string): ReturnType<typeof spawnSync> {
  const script = `require(${JSON.stringify(GUARD)}).requireSupportedNode(${JSON.stringify(program)}, ${JSON.stringify(version)}); console.log('went on')`;
  return spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
}

describe('supported Node runtime', () => {
  it("keeps the guard's minimum equal to package.json's engines", () => {
    const engines = (
      JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { engines: { node: string } }
    ).engines.node;
    assert.equal(engines, `>=${guard.MINIMUM_NODE_MAJOR}`);
  });

  it('stops an entry point on an older Node with exit status 2, naming the version found and the one needed', () => {
    const result = guarded('offloadctl', 'v20.20.2');
    assert.equal(result.status, 2);
    assert.equal(result.stdout, '');
    assert.match(
      String(result.stderr),
      /^offloadctl: Node v20\.20\.2 \(.+\) is not supported: offloadd needs Node >= 22 \(the pinned runtime is \d+\.\d+\.\d+\)/,
    );
    assert.match(String(result.stderr), /scripts\/setup\.sh/);
  });

  it('lets a supported Node through, and treats a version it cannot read as unsupported', () => {
    assert.equal(guarded('offloadd', `v${guard.MINIMUM_NODE_MAJOR}.0.0`).stdout, 'went on\n');
    assert.equal(guarded('offloadd', 'v99.1.2').status, 0);
    assert.equal(guarded('offloadd', 'nonsense').status, 2);
  });

  it("runs npm's scripts on the pinned runtime (.node-version), whatever node came first on PATH", function () {
    if (!process.env['npm_lifecycle_event']) {
      process.stdout.write('      skipped: not started by an npm script\n');
      this.skip();
    }
    const pinned = fs.readFileSync(path.join(REPO, '.node-version'), 'utf8').trim();
    assert.equal(process.version, `v${pinned}`);
  });
});
