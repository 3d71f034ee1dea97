/**
 * The core daemon against the real kernel, each test in its own network namespace.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { fakePciDevice, type Netns, waitFor, eachTestInItsOwnNetns } from '../helpers/netns';

const PROBE = path.resolve(__dirname, '..', 'helpers', 'features-probe.js');

const VETH_POLICY = `
mode: enforce
rules:
  - name: managed-veths
    match:
      name: "m*"
      kind: veth
    features:
      gro: off
      gso: off
`;

describe('core daemon (real kernel, own namespace)', function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  it('brings pre-existing matching interfaces into policy at start and leaves others alone', async () => {
    for (const name of ['m0', 'm1', 'other0']) {
      ns.addVeth(name);
      ns.setFeatures(name, 'gro', 'on', 'gso', 'on');
    }
    const daemon = ns.startDaemon(['--policy', ns.file('policy.yaml', VETH_POLICY)]);
    await daemon.ready();
    for (const name of ['m0', 'm1']) {
      const features = ns.features(name);
      assert.equal(features['generic-receive-offload'], false, `${name} gro`);
      assert.equal(features['generic-segmentation-offload'], false, `${name} gso`);
    }
    const other = ns.features('other0');
    assert.equal(other['generic-receive-offload'], true);
    assert.equal(other['generic-segmentation-offload'], true);
    // Logged once the record is on disk, which may be just after the API answers.
    await daemon.waitForLine(/m0: rx-gro on → off/);
  });

  /**
   * A positive signal that the daemon has handled every link event so far: a new matching veth
   * (gso on by default) is enforced only after the events queued before it.
   */
  const eventsHandled = async (marker: string): Promise<void> => {
    ns.addVeth(marker);
    await waitFor(() => ns.features(marker)['generic-segmentation-offload'] === false, `the marker ${marker} enforced`);
  };

  it('enforces on hot-plug, link up, rename into a glob, and re-registration', async () => {
    const daemon = ns.startDaemon(['--policy', ns.file('policy.yaml', VETH_POLICY)]);
    await daemon.ready();

    ns.addVeth('m-hot'); // gso is on by default on veth
    await waitFor(() => ns.features('m-hot')['generic-segmentation-offload'] === false, 'hot-plugged m-hot gso off');

    // Link up: the kernel may re-evaluate features; the policy still holds afterwards.
    ns.ip('link', 'set', 'm-hot', 'up');
    ns.setFeatures('m-hot', 'gro', 'on');
    await waitFor(() => ns.features('m-hot')['generic-receive-offload'] === false, 'm-hot gro off after drift');

    // Rename into the glob.
    ns.addVeth('x-ren');
    ns.setFeatures('x-ren', 'gro', 'on');
    await eventsHandled('m-mark1');
    assert.equal(ns.features('x-ren')['generic-receive-offload'], true, 'not matched before rename');
    ns.ip('link', 'set', 'x-ren', 'name', 'm-ren');
    await waitFor(() => ns.features('m-ren')['generic-receive-offload'] === false, 'renamed m-ren gro off');

    // Rename out of the glob: no longer managed, so a later change is left alone.
    ns.ip('link', 'set', 'm-ren', 'name', 'y-ren');
    await daemon.waitForLine(/y-ren: no longer matches/);
    ns.setFeatures('y-ren', 'gro', 'on');
    await eventsHandled('m-mark2');
    assert.equal(ns.features('y-ren')['generic-receive-offload'], true, 'unmanaged after renaming out');

    // Delete and re-create: a new ifindex with GRO/GSO on again, enforced again.
    ns.ip('link', 'del', 'm-hot');
    ns.addVeth('m-hot');
    ns.setFeatures('m-hot', 'gro', 'on');
    await waitFor(() => {
      const features = ns.features('m-hot');
      return features['generic-receive-offload'] === false && features['generic-segmentation-offload'] === false;
    }, 're-created m-hot in policy');
  });

  it('applies the shipped default policy to a veth presented as a BCM57508 (14e4:1750, bnxt_en)', async () => {
    const sysfs = path.join(ns.tmp, 'sys');
    fakePciDevice(sysfs, 'ens1f0np0', { vendor: '14e4', device: '1750', driver: 'bnxt_en', bus: '0000:3b:00.0' });
    fakePciDevice(sysfs, 'ens2f0', { vendor: '8086', device: '1593', driver: 'ice', bus: '0000:5e:00.0' });
    ns.addVeth('ens1f0np0', 'peer0');
    ns.addVeth('ens2f0', 'peer1');
    for (const name of ['ens1f0np0', 'ens2f0']) ns.setFeatures(name, 'gro', 'on', 'gso', 'on');

    const daemon = ns.startDaemon(['--sysfs-root', sysfs]); // no --policy: the shipped default
    await daemon.ready();
    const broadcom = ns.features('ens1f0np0');
    assert.equal(broadcom['generic-receive-offload'], false);
    assert.equal(broadcom['generic-segmentation-offload'], false);
    const intel = ns.features('ens2f0');
    assert.equal(intel['generic-receive-offload'], true, 'a non-Broadcom NIC is not touched');
    assert.equal(intel['generic-segmentation-offload'], true);

    // A driver reset re-registers the netdev with GRO/GSO on: it must be caught again.
    ns.setFeatures('ens1f0np0', 'gro', 'on');
    await waitFor(() => ns.features('ens1f0np0')['generic-receive-offload'] === false, 'drift undone');
  });

  it('recovers from a netlink receive-buffer overflow by resynchronising', async function () {
    this.timeout(180000);
    const policy = `
rules:
  - name: overflow
    match: { name: "ov*" }
    features: { gso: off }
`;
    const daemon = ns.startDaemon([
      '--policy',
      ns.file('policy.yaml', policy),
      '--netlink-rcvbuf',
      '262144',
      '--log-level',
      'info',
    ]);
    await daemon.ready();
    daemon.signal('SIGSTOP');
    const commands: string[] = [];
    for (let i = 0; i < 3000; i++) commands.push(`link add ov${i} type veth peer name ovp${i}`);
    ns.ipBatch(commands);
    daemon.signal('SIGCONT');
    await daemon.waitForLine(/Resynchronising: netlink receive buffer overflowed/, 120000);

    await waitFor(
      () => {
        const states = JSON.parse(ns.exec(process.execPath, PROBE, 'tx-generic-segmentation')) as Record<
          string,
          Record<string, boolean>
        >;
        const names = Object.keys(states).filter((name) => name.startsWith('ov'));
        return names.length === 6000 && names.every((name) => states[name]?.['tx-generic-segmentation'] === false);
      },
      'all 6000 ov* interfaces with gso off',
      120000,
    );
    assert.equal(daemon.exitCode, null, 'daemon still running');
  });

  it('a start-up pass over more interfaces than the receive buffer holds events for causes no resync', async function () {
    this.timeout(120000);
    // 600 managed veth ends, each written once by the pass: 600 feature events (~2.3 KB of
    // receive buffer each) wait while the pass runs, far more than the 128 KiB granted here.
    const commands: string[] = [];
    for (let i = 0; i < 300; i++) commands.push(`link add m${i} type veth peer name m${i}p`);
    ns.ipBatch(commands);
    const daemon = ns.startDaemon([
      '--policy',
      ns.file('policy.yaml', VETH_POLICY),
      '--netlink-rcvbuf',
      '65536',
      '--log-level',
      'info',
    ]);
    await daemon.ready();
    await eventsHandled('m-mark');
    assert.deepEqual(daemon.linesMatching(/Resynchronising/), []);
  });

  it('survives interfaces deleted while being handled', async function () {
    this.timeout(120000);
    const daemon = ns.startDaemon(['--policy', ns.file('policy.yaml', VETH_POLICY), '--log-level', 'info']);
    await daemon.ready();
    const commands: string[] = [];
    for (let round = 0; round < 300; round++) {
      commands.push(`link add m${round} type veth peer name m${round}p`, `link del m${round}`);
    }
    ns.ipBatch(commands);
    ns.addVeth('m-last');
    await waitFor(
      () => ns.features('m-last')['generic-segmentation-offload'] === false,
      'm-last enforced after the churn',
    );
    assert.equal(daemon.exitCode, null, 'daemon still running');
    assert.deepEqual(daemon.linesMatching(/^(crit|error):/), []);
  });

  it('exits 0 from --once when everything ends compliant', () => {
    ns.addVeth('m0');
    const result = ns.runOffloadd(['--once', '--policy', ns.file('policy.yaml', VETH_POLICY)]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /m0\s+managed-veths\s+yes/);
    assert.equal(ns.features('m0')['generic-segmentation-offload'], false);
    const json = ns.runOffloadd(['--once', '--json', '--policy', ns.file('policy.yaml', VETH_POLICY)]);
    assert.equal(json.status, 0, json.stderr);
    const report = JSON.parse(json.stdout) as { interfaces: Array<{ interface: string; compliant: boolean }> };
    assert.ok(report.interfaces.some((status) => status.interface === 'm0' && status.compliant));
  });

  it('exits 2 with file, line and column for each class of bad policy', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['syntax', 'rules: [\n  - name: x\n', /syntax\.yaml:\d+:\d+: /],
      ['unknown-key', 'mode: enforce\nrulez: []\n', /unknown-key\.yaml:2:1: .*rulez/],
      [
        'unknown-feature',
        'rules:\n  - name: a\n    match: { name: "x*" }\n    features: { grow: off }\n',
        /unknown-feature\.yaml:4:17: .*grow.*did you mean "gro"/,
      ],
      [
        'bad-pci',
        'rules:\n  - name: a\n    match: { pci: "14e4-1750" }\n    features: { gro: off }\n',
        /bad-pci\.yaml:3:19: .*14e4-1750/,
      ],
      [
        'duplicate-rule',
        'rules:\n  - name: a\n    match: { name: "x*" }\n    features: { gro: off }\n  - name: a\n    match: { name: "y*" }\n    features: { gro: off }\n',
        /duplicate-rule\.yaml:5:\d+: .*a/,
      ],
    ];
    for (const [name, text, expected] of cases) {
      const result = ns.runOffloadd(['--once', '--policy', ns.file(`${name}.yaml`, text)]);
      assert.equal(result.status, 2, `${name}: ${result.stderr}`);
      assert.match(result.stderr, expected, name);
    }
  });
});
