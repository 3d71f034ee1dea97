/**
 * What the running daemon keeps resident (issue 22 #4): node's modules that cost megabytes for
 * one small use each are never loaded. node:crypto initialises OpenSSL (~3.5 MiB, for the policy
 * checksum and a temporary name), fs.promises brings readline, the REPL history and the file
 * watchers (~1 MiB), perf_hooks ten more modules (~1 MiB, for performance.now()). Real kernel,
 * own namespace: the daemon starts, reconciles, builds its history index, serves the API and
 * the metrics textfile, then stops; a preloaded hook records node's module list at exit.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { eachTestInItsOwnNetns, waitFor, type Netns } from '../helpers/netns';

/** Never loaded by the daemon: the module and what it costs are above. */
const NEVER_LOADED = ['crypto', 'internal/fs/promises', 'readline', 'internal/readline/interface', 'perf_hooks'];

const POLICY = `rules:
  - name: managed
    match: { name: "m*" }
    features: { gso: off }
`;

describe('modules the daemon keeps resident (real kernel, own namespace)', function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  it('never loads node:crypto, fs.promises (readline) or perf_hooks', async () => {
    ns.addVeth('m0');
    const listFile = path.join(ns.tmp, 'modules.txt');
    const hook = ns.file(
      'hook.js',
      `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(listFile)}, process.moduleLoadList.join('\\n')));\n`,
    );
    const textfile = path.join(ns.tmp, 'offloadd.prom');
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', POLICY), '--metrics-textfile', textfile], {
      NODE_OPTIONS: `--require ${hook}`,
    });
    await daemon.ready();
    ns.setFeatures('m0', 'gso', 'on'); // a drift: a correction, a record, a journal line, a textfile write
    await waitFor(() => ns.features('m0')['generic-segmentation-offload'] === false, 'the drift corrected');
    await waitFor(() => fs.existsSync(textfile), 'the metrics textfile written');
    assert.equal(await daemon.stop(), 0);
    const loaded = new Set(
      fs
        .readFileSync(listFile, 'utf8')
        .split('\n')
        .filter((entry) => entry.startsWith('NativeModule '))
        .map((entry) => entry.slice('NativeModule '.length)),
    );
    assert.ok(loaded.has('net'), 'the hook saw the daemon (it serves the API)');
    assert.deepEqual(
      NEVER_LOADED.filter((name) => loaded.has(name)),
      [],
    );
  });
});
