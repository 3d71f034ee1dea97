/**
 * The daemon names who caused each drift (issue 19): in the ledger, the log line, `offloadctl
 * drift` and `status`; or says precisely that no user-space request did; and, with attribution
 * off or unavailable, still enforces and says why. Real kernel, own namespaces. The programs are
 * global, but the daemon only keeps requests from its own network namespace, and each actor here
 * is a process of this test, found by its pid.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import type { Actor } from '../../src/attribution/actor';
import type { StatusResult } from '../../src/api/protocol';
import type { LedgerRecord } from '../../src/ledger/record';
import { cgroupHierarchies, removeCgroupTree, runInCgroup } from '../helpers/cgroup';
import { IOCTL_CALLER, renamedEthtool as renamedEthtoolIn, SENDMSG_CALLER } from '../helpers/feature-callers';
import {
  eachTestInItsOwnNetns,
  fakePciDevice,
  REPO_ROOT,
  waitFor,
  type DaemonProcess,
  type Netns,
} from '../helpers/netns';
import { activeLedgerRecords } from '../helpers/ledger-file';

const OFFLOADCTL = path.join(REPO_ROOT, 'bin', 'offloadctl');
const NO_REQUEST = /^no request from user space: the kernel or the driver changed it/;

function ledger(daemon: DaemonProcess): LedgerRecord[] {
  return activeLedgerRecords(daemon.stateDir);
}

function offloadctl(daemon: DaemonProcess, ...args: string[]): string {
  return execFileSync(process.execPath, [OFFLOADCTL, ...args, '--socket', daemon.socketPath], { encoding: 'utf8' });
}

function status(daemon: DaemonProcess): StatusResult {
  return JSON.parse(offloadctl(daemon, 'status', '--json')) as StatusResult;
}

/** Drift records whose actor is the process `pid` (the ledger line is written before it is counted). */
function driftBy(daemon: DaemonProcess, pid: number): Promise<LedgerRecord> {
  return waitFor(
    () =>
      ledger(daemon).find(
        (record) => record.event === 'drift' && record.actor && 'pid' in record.actor && record.actor.pid === pid,
      ),
    `a drift record naming pid ${pid}`,
  );
}

const POLICY = `flapping: { max_corrections: 50, window: 60, max_backoff: 8 }
rules:
  - name: bcm57508
    match: { driver: bnxt_en }
    features: { gro: off }
`;

describe('drift attribution (real kernel, own namespace)', function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  /** A veth presented as a BCM57508 port (bnxt_en, 14e4:1750) through --sysfs-root. */
  function bcmPort(name: string): string[] {
    ns.addVeth(name);
    const sysfs = path.join(ns.tmp, 'sys');
    fakePciDevice(sysfs, name, { vendor: '14e4', device: '1750', driver: 'bnxt_en', bus: '0000:3b:00.0' });
    return ['--sysfs-root', sysfs];
  }

  /** A copy of ethtool whose file name (its comm) is unique to the test. */
  const renamedEthtool = (): string => renamedEthtoolIn(ns.tmp, 'ethtool-d');

  it('names a renamed ethtool that turns gro on: ledger, log line, offloadctl drift and status', async () => {
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', POLICY), ...bcmPort('ens1f0np0')]);
    await daemon.ready();
    await daemon.waitForLine(/Attribution on \((raw_tracepoint|tracepoint)\)/);
    const ethtool = renamedEthtool();
    const comm = path.basename(ethtool);
    const pid = await ns.execAsync(ethtool, '-K', 'ens1f0np0', 'gro', 'on');
    const record = await driftBy(daemon, pid);
    const actor = record.actor as Actor;
    assert.equal(actor.comm, comm);
    // A short-lived process is often gone before its record is read: then only the kernel's facts.
    if (actor.exe !== null) assert.equal(actor.exe, ethtool);
    else assert.ok(actor.partial, 'a missing executable is explained');
    assert.equal(actor.request, 'ethtool-netlink FEATURES_SET');
    assert.equal(record.action, 'enforced');
    assert.equal(record.trigger, 'features');
    await waitFor(() => ns.features('ens1f0np0')['generic-receive-offload'] === false, 'gro off again');

    const line = await daemon.waitForLine(new RegExp(`ens1f0np0: rx-gro drifted off → on .*by ${comm} \\(pid ${pid}`));
    process.stdout.write(`      log: ${line}\n`);

    const drifts = JSON.parse(offloadctl(daemon, 'drift', '--json')) as { records: LedgerRecord[] };
    const listed = drifts.records.find((candidate) => candidate.seq === record.seq);
    assert.deepEqual(listed?.actor, actor, '--json carries the actor object');
    const text = offloadctl(daemon, 'drift');
    assert.match(text, /\bBY\b/);
    assert.ok(text.includes(`${comm} (pid ${pid})`), text);
    process.stdout.write(`      offloadctl drift:\n${text.replace(/^/gm, '        ')}`);

    const show = offloadctl(daemon, 'show', 'ens1f0np0');
    assert.match(show, new RegExp(`last by +${comm} \\(pid ${pid}`));
    const explain = offloadctl(daemon, 'explain', 'ens1f0np0');
    assert.match(explain, new RegExp(`last drift by ${comm} \\(pid ${pid}`));

    const attribution = status(daemon).attribution;
    assert.equal(attribution.enabled, true);
    assert.ok(attribution.attributed >= 1);
    assert.match(offloadctl(daemon, 'status'), /^attribution on \((raw_)?tracepoint\), \d+ attributed, \d+ dropped$/m);
  });

  it('names a SIOCETHTOOL caller (the ioctl path)', async () => {
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', POLICY), ...bcmPort('ens1f0np0')]);
    await daemon.ready();
    const source = ns.file('ioctl-caller.c', IOCTL_CALLER);
    const caller = path.join(ns.tmp, 'sgro-drifter');
    execFileSync('cc', ['-O2', '-o', caller, source]);
    const pid = await ns.execAsync(caller, 'ens1f0np0', 'on');
    const actor = (await driftBy(daemon, pid)).actor as Actor;
    assert.equal(actor.comm, 'sgro-drifter');
    assert.equal(actor.syscall, 'ioctl');
    assert.equal(actor.request, 'ioctl ETHTOOL_SGRO');
  });

  it('names a raw generic-netlink sender that uses sendmsg', async () => {
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', POLICY), ...bcmPort('ens1f0np0')]);
    await daemon.ready();
    const script = ns.file('features-set.py', SENDMSG_CALLER);
    const [link] = JSON.parse(ns.ip('-j', 'link', 'show', 'dev', 'ens1f0np0')) as Array<{ ifindex: number }>;
    const pid = await ns.execAsync('python3', script, String(link?.ifindex), 'on');
    const actor = (await driftBy(daemon, pid)).actor as Actor;
    assert.equal(actor.syscall, 'sendmsg');
    assert.equal(actor.request, 'ethtool-netlink FEATURES_SET');
    assert.match(actor.comm, /^python3/);
  });

  it('names the unit of a process in a cgroup the test creates', async function () {
    const unified = cgroupHierarchies().unified;
    if (!unified) this.skip();
    const mountCgroup2 =
      unified === '/sys/fs/cgroup'
        ? 'mount -t cgroup2 cgroup2 /sys/fs/cgroup'
        : `mount -t tmpfs tmpfs /sys/fs/cgroup && mkdir -p ${unified} && mount -t cgroup2 cgroup2 ${unified}`;
    // ip netns exec mounts a fresh sysfs without the cgroup file system the daemon resolves an
    // exited process's cgroup id in; a host's daemon has it.
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', POLICY), ...bcmPort('ens1f0np0')], {}, undefined, {
      inner: ['sh', '-c', `${mountCgroup2} && exec "$@"`, 'sh'],
    });
    await daemon.ready();
    const ethtool = renamedEthtool();
    const unit = `drifter-${randomBytes(3).toString('hex')}.service`;
    const slice = path.join(unified, `${ns.name}.slice`);
    try {
      const child = runInCgroup(path.join(slice, unit), ns.commandLine(ethtool, '-K', 'ens1f0np0', 'gro', 'on'));
      assert.equal(child.status, 0, child.stderr.toString());
      const record = await driftBy(daemon, child.pid);
      const actor = record.actor as Actor;
      assert.equal(actor.unit, unit);
      assert.equal(actor.cgroup.path, `/${ns.name}.slice/${unit}`);
      await daemon.waitForLine(new RegExp(`rx-gro drifted .*by ${unit.replace('.', '\\.')} \\(pid ${child.pid}`));
    } finally {
      removeCgroupTree(slice);
    }
  });

  it('says when no user-space request changed it: a macvlan following its lower device', async () => {
    // A macvlan's GSO follows its lower device's (netdev_update_features on NETDEV_FEAT_CHANGE):
    // turning GSO off on the lower veth turns it off on the macvlan, and no request names the
    // macvlan. Report mode: enforcing would find it unenforceable (the kernel keeps it off).
    ns.addVeth('low0');
    ns.ip('link', 'add', 'mv0', 'link', 'low0', 'type', 'macvlan');
    const policy = ns.file(
      'p.yaml',
      `mode: report\nrules:\n  - name: macvlans\n    match: { name: "mv*" }\n    features: { gso: on }\n`,
    );
    const daemon = ns.startDaemon(['--policy', policy]);
    await daemon.ready();
    const ethtool = renamedEthtool();
    await ns.execAsync(ethtool, '-K', 'low0', 'gso', 'off');
    const record = await waitFor(
      () => ledger(daemon).find((candidate) => candidate.event === 'drift' && candidate.interface === 'mv0'),
      'the macvlan drift record',
    ).catch((error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify(ledger(daemon))}\n${daemon.lines.join('\n')}`);
    });
    assert.ok(record.actor && 'none' in record.actor, JSON.stringify(record));
    assert.match(record.actor.none, NO_REQUEST);
    assert.equal(record.actors, undefined);
    assert.equal(record.action, 'reported');
    assert.match(offloadctl(daemon, 'drift'), / kernel\b/);
  });

  it('--attribution=off: still enforces; status and the log say why; records carry no actor', async () => {
    const daemon = ns.startDaemon([
      '--policy',
      ns.file('p.yaml', POLICY),
      '--attribution=off',
      ...bcmPort('ens1f0np0'),
    ]);
    await daemon.ready();
    await daemon.waitForLine(/Attribution off: turned off \(--attribution=off\)/);
    ns.setFeatures('ens1f0np0', 'gro', 'on');
    const record = await waitFor(
      () => ledger(daemon).find((candidate) => candidate.event === 'drift'),
      'the drift record',
    );
    assert.equal(record.action, 'enforced');
    assert.equal(record.actor, undefined);
    assert.equal(status(daemon).attribution.reason, 'turned off (--attribution=off)');
    assert.match(offloadctl(daemon, 'status'), /^attribution off \(turned off \(--attribution=off\)\)$/m);
  });

  it("the policy's attribution: off turns it off", async () => {
    const daemon = ns.startDaemon([
      '--policy',
      ns.file('p.yaml', `attribution: off\n${POLICY}`),
      ...bcmPort('ens1f0np0'),
    ]);
    await daemon.ready();
    assert.equal(status(daemon).attribution.reason, 'turned off by the policy (attribution: off)');
  });

  it('unavailable (no CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN): still enforces and says why, once', async () => {
    const dropped = '-bpf,-perfmon,-sys_admin';
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', POLICY), ...bcmPort('ens1f0np0')], {}, undefined, {
      inner: ['setpriv', `--bounding-set=${dropped}`, `--inh-caps=${dropped}`, '--'],
    });
    await daemon.ready();
    await daemon.waitForLine(/Attribution off: .*CAP_BPF and CAP_PERFMON/);
    ns.setFeatures('ens1f0np0', 'gro', 'on');
    const record = await waitFor(
      () => ledger(daemon).find((candidate) => candidate.event === 'drift'),
      'the drift record',
    );
    assert.equal(record.action, 'enforced');
    assert.equal(record.actor, undefined, 'never a per-record error');
    const attribution = status(daemon).attribution;
    assert.equal(attribution.enabled, false);
    assert.match(attribution.reason ?? '', /CAP_BPF and CAP_PERFMON/);
    assert.equal(daemon.linesMatching(/Attribution off/).length, 1, 'said once');
  });
});
