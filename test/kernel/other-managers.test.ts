/**
 * `offloadctl check-policy --root` and `offloadctl doctor --root` (issue 19 #3): the other
 * managers' files (fixtures in the real formats) are compared on the interfaces the policy
 * manages in this namespace, a veth presented as a BCM57508 port with the fixtures' MAC.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import type { ManagerOverlap } from '../../src/doctor/managers';
import { eachTestInItsOwnNetns, fakePciDevice, REPO_ROOT, type Netns } from '../helpers/netns';

const OFFLOADCTL = path.join(REPO_ROOT, 'bin', 'offloadctl');
const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'managers', 'host');
const POLICY = 'rules:\n  - name: bcm57508\n    match: { driver: bnxt_en }\n    features: { gro: off, gso: off }\n';

describe('other managers on the interfaces a policy manages (real kernel, own namespace)', function () {
  let ns: Netns;
  let sysfs: string;
  let policy: string;
  eachTestInItsOwnNetns((created) => {
    ns = created;
    ns.ip('link', 'add', 'eth0', 'address', '00:11:22:33:44:55', 'type', 'veth', 'peer', 'name', 'peer-eth0');
    sysfs = path.join(ns.tmp, 'sys');
    fakePciDevice(sysfs, 'eth0', { vendor: '14e4', device: '1750', driver: 'bnxt_en', bus: '0000:3b:00.0' });
    policy = ns.file('p.yaml', POLICY);
  });

  function offloadctl(...args: string[]): string {
    return execFileSync('ip', ['netns', 'exec', ns.name, process.execPath, OFFLOADCTL, ...args], { encoding: 'utf8' });
  }

  function described(overlaps: ManagerOverlap[]): string[] {
    return overlaps.map(
      (overlap) =>
        `${overlap.ifname} ${overlap.tool} ${overlap.file}:${overlap.features.map((f) => `${f.line}:${f.as}:${f.agrees ? 'agrees' : 'conflicts'}`).join(',')}`,
    );
  }

  const EXPECTED = [
    'eth0 NetworkManager /etc/NetworkManager/system-connections/uplink.nmconnection:11:gro:conflicts,12:gso:agrees',
    'eth0 systemd .link /etc/systemd/network/10-bnxt.link:7:gro:conflicts,8:gso:agrees',
    'eth0 wicked/ifcfg /etc/sysconfig/network/ifcfg-eth0:3:gro:conflicts',
    'eth0 ifupdown /etc/network/interfaces:10:gro:conflicts,11:gso:conflicts',
    'eth0 udev /etc/udev/rules.d/70-offload.rules:2:gro:conflicts',
    'eth0 tuned /etc/tuned/offload-net/tuned.conf:7:gro:conflicts',
    'eth0 tuned /usr/lib/tuned/latency-lab/tuned.conf:7:gro:agrees,7:gso:agrees',
  ];

  it('check-policy --root names each format, file and line, and stays quiet about other interfaces', () => {
    const result = JSON.parse(
      offloadctl('check-policy', policy, '--root', FIXTURES, '--sysfs-root', sysfs, '--json'),
    ) as { valid: boolean; managers: ManagerOverlap[] };
    assert.equal(result.valid, true);
    assert.deepEqual(described(result.managers), EXPECTED);
    const text = offloadctl('check-policy', policy, '--root', FIXTURES, '--sysfs-root', sysfs);
    assert.match(
      text,
      /^other manager: \/etc\/systemd\/network\/10-bnxt\.link:7 \(systemd \.link\) turns gro on \(conflicts with the policy\), turns gso off \(agrees with the policy\) on eth0$/m,
    );
    assert.doesNotMatch(text, /storage/, 'the storage files target eth9');
  });

  it('doctor --root does the same for the managed interfaces', () => {
    // Exit 1: the doctor also finds gro and gso on where the policy wants them off.
    const doctor = spawnSync(
      'ip',
      [
        'netns',
        'exec',
        ns.name,
        process.execPath,
        OFFLOADCTL,
        'doctor',
        '--policy',
        policy,
        '--root',
        FIXTURES,
        '--sysfs-root',
        sysfs,
        '--window',
        '0.1',
        '--socket',
        path.join(ns.tmp, 'no-daemon.sock'),
        '--json',
      ],
      { encoding: 'utf8' },
    );
    assert.ok(doctor.status === 0 || doctor.status === 1, doctor.stderr);
    const report = JSON.parse(doctor.stdout) as { managers: ManagerOverlap[] };
    // The doctor compares what it looks at (gro, gso, tso, lro, gro-hw): here gro and gso.
    assert.deepEqual(described(report.managers), EXPECTED);
  });
});
