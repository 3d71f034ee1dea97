/**
 * offloadd --watch-policy against a directory laid out like kubelet's ConfigMap volume: the policy
 * reloads by itself when kubelet swaps the `..data` symbolic link, a bad policy is rejected and the
 * running one stays in force, and the daemon survives the directory vanishing and coming back.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigMapDir } from '../helpers/configmap';
import { type DaemonProcess, eachTestInItsOwnNetns, type Netns, REPO_ROOT, waitFor } from '../helpers/netns';

const OFFLOADCTL = path.join(REPO_ROOT, 'bin', 'offloadctl');

const policy = (extra = ''): string => `
mode: enforce
rules:
  - name: managed-veths
    match: { name: "m*", kind: veth }
    features: { gro: off, gso: off }
${extra}`;
const WITH_N = policy(`  - name: n-veths\n    match: { name: "n*", kind: veth }\n    features: { gso: off }\n`);
const INVALID = policy(`  - name: broken\n    match: { name: "x*" }\n    features: { grow: off }\n`);

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

function runningSha256(daemon: DaemonProcess): string {
  const result = spawnSync(process.execPath, [OFFLOADCTL, 'status', '--json', '--socket', daemon.socketPath], {
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, result.stderr);
  return (JSON.parse(result.stdout) as { policy: { sha256: string } }).policy.sha256;
}

/** Waits for the n-th line matching `pattern` (1-based): each reload logs one. */
function nthLine(daemon: DaemonProcess, pattern: RegExp, n: number): Promise<string> {
  return waitFor(
    () => daemon.linesMatching(pattern)[n - 1],
    `line ${n} matching ${pattern}:\n${daemon.lines.slice(-15).join('\n')}`,
  );
}

const LOADED = /Policy reloaded from .* sha256 /;
const REJECTED = /Policy rejected, keeping the running one: .*grow/;

describe('offloadd --watch-policy (ConfigMap-style reload, real kernel, own namespace)', function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  it('loads a valid update kubelet swaps in, rejects an invalid one keeping the running policy, loads the next', async () => {
    const volume = ConfigMapDir.create(path.join(ns.tmp, 'offloadd-config'), policy());
    ns.addVeth('m0');
    const daemon = ns.startDaemon(['--policy', volume.policyPath, '--watch-policy']);
    await daemon.ready();
    assert.equal(runningSha256(daemon), sha256(policy()));

    // The same content again: the directory changes, the policy does not; nothing reloads.
    volume.swap(policy());
    await daemon.waitForLine(/content did not; nothing to reload/);

    volume.swap(WITH_N);
    const loaded = await nthLine(daemon, LOADED, 1);
    assert.match(loaded, new RegExp(`sha256 ${sha256(WITH_N).slice(0, 12)}`));
    assert.equal(runningSha256(daemon), sha256(WITH_N));
    ns.addVeth('n0'); // gso is on by default on a veth: the new rule turns it off
    await waitFor(() => ns.features('n0')['generic-segmentation-offload'] === false, 'n0 gso off by the new rule');

    volume.swap(INVALID);
    await daemon.waitForLine(REJECTED);
    assert.equal(runningSha256(daemon), sha256(WITH_N), 'the running policy stays');
    ns.setFeatures('m0', 'gro', 'on');
    await waitFor(() => ns.features('m0')['generic-receive-offload'] === false, 'm0 still enforced');

    const next = policy(`  - name: o-veths\n    match: { name: "o*", kind: veth }\n    features: { gro: off }\n`);
    volume.swap(next);
    await nthLine(daemon, LOADED, 2);
    assert.equal(runningSha256(daemon), sha256(next));
    assert.equal(daemon.linesMatching(LOADED).length, 2, 'one reload per real change');
    assert.equal(await daemon.stop(), 0);
  });

  it('keeps the running policy while the directory is gone, and loads it when it is back', async () => {
    const volume = ConfigMapDir.create(path.join(ns.tmp, 'mounted', 'offloadd-config'), policy());
    const daemon = ns.startDaemon(['--policy', volume.policyPath, '--watch-policy']);
    await daemon.ready();

    fs.rmSync(volume.dir, { recursive: true });
    await daemon.waitForLine(/is missing; keeping the running policy/);
    assert.equal(runningSha256(daemon), sha256(policy()));

    ConfigMapDir.create(volume.dir, WITH_N);
    await nthLine(daemon, LOADED, 1);
    assert.equal(runningSha256(daemon), sha256(WITH_N));

    // Watched again after coming back: an update is seen.
    volume.swap(policy());
    await nthLine(daemon, LOADED, 2);
    assert.equal(runningSha256(daemon), sha256(policy()));
    assert.equal(await daemon.stop(), 0);
  });

  it('reloads a plain file rewritten in place or renamed over, and the target of a link edited in another directory', async () => {
    const file = ns.file('etc/policy.yaml', policy());
    const elsewhere = ns.file('checkout/policy.yaml', policy());
    const link = path.join(ns.tmp, 'etc', 'linked.yaml');
    fs.symlinkSync(elsewhere, link);
    const plain = ns.startDaemon(['--policy', file, '--watch-policy']);
    const linked = ns.startDaemon(['--policy', link, '--watch-policy']);
    await Promise.all([plain.ready(), linked.ready()]);

    fs.writeFileSync(file, WITH_N); // in place, as an editor or a template module without backup does
    await nthLine(plain, LOADED, 1);
    assert.equal(runningSha256(plain), sha256(WITH_N));
    const temporary = path.join(ns.tmp, 'etc', '.policy.yaml.tmp');
    fs.writeFileSync(temporary, policy());
    fs.renameSync(temporary, file); // as configuration tools replace files atomically
    await nthLine(plain, LOADED, 2);
    assert.equal(runningSha256(plain), sha256(policy()));

    fs.writeFileSync(elsewhere, WITH_N);
    await nthLine(linked, LOADED, 1);
    assert.equal(runningSha256(linked), sha256(WITH_N));
    assert.equal(await plain.stop(), 0);
    assert.equal(await linked.stop(), 0);
  });

  it('refuses --watch-policy without --policy, and with --once (usage, exit 2)', () => {
    for (const args of [['--watch-policy'], ['--watch-policy', '--once', '--policy', ns.file('p.yaml', policy())]]) {
      const result = ns.runOffloadd(args);
      assert.equal(result.status, 2, JSON.stringify(result));
      assert.match(result.stderr, /--watch-policy/);
    }
  });
});
