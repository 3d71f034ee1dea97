/**
 * Interface names as the kernel takes them (bytes, at most 15, anything but NUL, '/', ':' and
 * whitespace): names that are not ASCII are managed like any other, and so are names whose bytes
 * are no UTF-8, by ifindex, shown C-escaped. Real daemon, own namespace.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { eachTestInItsOwnNetns, type Netns, REPO_ROOT, waitFor } from '../helpers/netns';

const GSO = 'generic-segmentation-offload';
const OFFLOADCTL = path.join(REPO_ROOT, 'bin', 'offloadctl');
const WRITER = path.resolve(__dirname, '..', 'helpers', 'features-write.js');
const DIST_SRC = path.resolve(__dirname, '..', '..', 'src');

/**
 * Run in the namespace: the device facts of the link shown as argv[1], read through sysfs (a
 * root given as `/sys/`, so it is looked at although the kernel names no parent) and GDRVINFO.
 */
const READ_FACTS = `const { dumpLinks } = require(${JSON.stringify(path.join(DIST_SRC, 'events', 'link-events'))});
const { InterfaceFactsSource } = require(${JSON.stringify(path.join(DIST_SRC, 'facts', 'interface-facts'))});
const link = dumpLinks().find((candidate) => candidate.name === process.argv[1]);
const problems = [];
const source = new InterfaceFactsSource('/sys/', (message, _link, error) => problems.push(message + ': ' + error.message));
const device = source.device(link);
const present = [source.stillPresent(link), source.stillPresent({ ...link, name: 'other' }), source.stillPresent({ ...link, ifindex: 999999 })];
process.stdout.write(JSON.stringify({ driver: device.driver, problems, present }));`;

/**
 * A command run in the namespace by bash, so that a name can be written as bash's $'...' (the
 * exact bytes; a JavaScript string argument would reach the command as its UTF-8 encoding).
 */
function shell(ns: Netns, script: string): string {
  return ns.exec('bash', '-c', script);
}

/** gso's active state on the interface whose name is the bash word `nameWord` (e.g. $'m\xe9'). */
function gsoOf(ns: Netns, nameWord: string): boolean {
  return /^generic-segmentation-offload: on/m.test(shell(ns, `ethtool -k ${nameWord}`));
}

function ctlJson<T>(socket: string, args: string[]): T {
  const result = spawnSync(process.execPath, [OFFLOADCTL, ...args, '--json', '--socket', socket], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as T;
}

interface Listed {
  interfaces: Array<{ interface: string; ifindex: number; compliant: boolean }>;
}

describe('interface names that are not ASCII (real daemon, own namespace)', function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  for (const [name, pattern] of [
    ['mé', 'm*'],
    ['uplink-ü', 'uplink-*'],
    ['端口0', '端口*'],
    ['é', '[!a-z]*'],
  ] as const) {
    it(`interface names that are not ASCII are managed: a veth named ${name} gets gso off (issue 20 #11)`, async () => {
      ns.addVeth(name);
      assert.equal(ns.features(name)[GSO], true, 'gso starts on');
      const policy = `rules:\n  - name: by-name\n    match: { name: ${JSON.stringify(pattern)}, kind: veth }\n    features: { gso: off }\n`;
      const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', policy)]);
      await daemon.ready();
      await waitFor(() => ns.features(name)[GSO] === false, `gso off on ${name}`);
      ns.setFeatures(name, 'gso', 'on');
      await waitFor(() => ns.features(name)[GSO] === false, `drift on ${name} corrected`);
    });
  }

  it('interface names that are not UTF-8 are managed by ifindex, shown C-escaped (m\\xe9), with one warning (issue 20 #11)', async () => {
    ns.addVeth('nu0');
    shell(ns, `ip link set nu0 name $'m\\xe9'`);
    assert.equal(gsoOf(ns, `$'m\\xe9'`), true, 'gso starts on');
    const textfile = path.join(ns.tmp, 'metrics', 'offloadd.prom');
    fs.mkdirSync(path.dirname(textfile));
    // The display name is what globs see: `m\xe9` matches `m\\x*` (a backslash escapes in a glob).
    const policy = `rules:\n  - name: escaped\n    match: { name: 'm\\\\x*', kind: veth }\n    features: { gso: off }\n`;
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', policy), '--metrics-textfile', textfile]);
    await daemon.ready();
    await waitFor(() => !gsoOf(ns, `$'m\\xe9'`), 'gso off on m\\xe9');
    shell(ns, `ethtool -K $'m\\xe9' gso on`);
    await waitFor(() => !gsoOf(ns, `$'m\\xe9'`), 'drift on m\\xe9 corrected');

    const listed = ctlJson<Listed>(daemon.socketPath, ['list']);
    assert.deepEqual(
      listed.interfaces.map((entry) => [entry.interface, entry.compliant]),
      [['m\\xe9', true]],
    );
    const shown = ctlJson<{ interface: { interface: string } }>(daemon.socketPath, ['show', 'm\\xe9']);
    assert.equal(shown.interface.interface, 'm\\xe9');
    const drift = ctlJson<{ records: Array<{ interface: string }> }>(daemon.socketPath, ['drift']);
    assert.ok(drift.records.length > 0 && drift.records.every((record) => record.interface === 'm\\xe9'));
    await waitFor(
      () => fs.existsSync(textfile) && fs.readFileSync(textfile, 'utf8').includes('interface="m\\\\xe9"'),
      'the textfile names m\\xe9 (label-escaped)',
    );
    await daemon.waitForLine(/m\\xe9: tx-generic-segmentation drifted/);
    const warnings = daemon.linesMatching(/not UTF-8/);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0] as string, /warning.*m\\xe9/);
    assert.ok(!daemon.lines.some((line) => line.includes('\ufffd')), 'no replacement character anywhere');
  });

  it('every call that addresses an interface by name reaches one whose name is not UTF-8: the ioctls, GDRVINFO, sysfs (issue 20 #11)', () => {
    ns.addVeth('nu1');
    shell(ns, `ip link set nu1 name $'n\\xe9\\x1b'`);
    const ifindex = Number(/^(\d+):/.exec(shell(ns, `ip -o link show dev $'n\\xe9\\x1b'`))?.[1]);
    const shown = 'n\\xe9\\x1b';
    const written = JSON.parse(
      ns.exec(process.execPath, WRITER, 'ioctl', shown, String(ifindex), 'tx-generic-segmentation', 'off'),
    ) as {
      ok: boolean;
      active?: boolean;
      message?: string;
    };
    assert.equal(written.ok, true, written.message);
    assert.equal(written.active, false);
    assert.equal(gsoOf(ns, `$'n\\xe9\\x1b'`), false, 'ethtool agrees');
    const facts = JSON.parse(ns.exec(process.execPath, '-e', READ_FACTS, shown)) as {
      driver: string;
      problems: string[];
      present: boolean[];
    };
    // Still there under its name and ifindex; not under another name, nor another ifindex.
    assert.deepEqual(facts, { driver: 'veth', problems: [], present: [true, false, false] });
  });

  it('a port renamed to a name that is not UTF-8 stays in enforcement (issue 20 #11)', async () => {
    ns.addVeth('rn0');
    const policy = `rules:\n  - name: ports\n    match: { name: 'r*', kind: veth }\n    features: { gso: off }\n`;
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', policy)]);
    await daemon.ready();
    await waitFor(() => ns.features('rn0')[GSO] === false, 'gso off on rn0');
    shell(ns, `ip link set rn0 name $'r\\xff\\xfe'`);
    await daemon.waitForLine(/warning: r\\xff\\xfe: interface name is not UTF-8/);
    for (let drift = 0; drift < 2; drift++) {
      shell(ns, `ethtool -K $'r\\xff\\xfe' gso on`);
      await waitFor(() => !gsoOf(ns, `$'r\\xff\\xfe'`), 'drift after the rename corrected');
    }
    const listed = ctlJson<Listed>(daemon.socketPath, ['list']);
    assert.deepEqual(
      listed.interfaces.map((entry) => [entry.interface, entry.compliant]),
      [['r\\xff\\xfe', true]],
    );
    await waitFor(
      () => daemon.linesMatching(/r\\xff\\xfe: tx-generic-segmentation drifted/).length === 2,
      'both drifts logged',
    );
    const drift = ctlJson<{ records: Array<{ interface: string }> }>(daemon.socketPath, ['drift']);
    assert.equal(drift.records.filter((record) => record.interface === 'r\\xff\\xfe').length, 2);
    assert.equal(daemon.linesMatching(/not UTF-8/).length, 1, 'one warning per link');
  });
});
