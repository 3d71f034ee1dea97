import { strict as assert } from 'node:assert';
import { findingsFor, sortFindings } from '../../src/doctor/findings';
import type { Finding, InterfaceEvidence, OffloadEvidence, TrafficEvidence } from '../../src/doctor/types';

const BCM57508 = {
  member: true,
  pattern: '14e4:1750',
  label: 'BCM57508',
  source: 'rule bcm57508-gro-gso-off in the shipped policy',
};
const NOT_FAMILY = { member: false, pattern: null, label: null, source: null };

function offloads(active: Record<string, boolean>, wanted: Record<string, boolean> = {}): OffloadEvidence[] {
  const as: Record<string, string> = {
    'rx-gro': 'gro',
    'rx-gro-hw': 'gro-hw',
    'rx-lro': 'lro',
    'tx-generic-segmentation': 'gso',
    'tx-tcp-segmentation': 'tso',
    'tx-tcp6-segmentation': 'tso',
  };
  return Object.keys(as).map((feature) => ({
    feature,
    as: as[feature] as string,
    active: active[feature] ?? false,
    fixed: false,
    requested: active[feature] ?? false,
    wanted: wanted[feature] ?? null,
  }));
}

function traffic(
  verdict: TrafficEvidence['verdict'],
  rx: { pps: number; avg: number | null } = { pps: 80000, avg: 96 },
  loss: Partial<TrafficEvidence> = {},
): TrafficEvidence {
  const packets = Math.round(rx.pps * 5);
  return {
    windowSec: 5,
    rx: {
      packets,
      bytes: packets * (rx.avg ?? 0),
      pps: rx.pps,
      bps: rx.pps * (rx.avg ?? 0) * 8,
      avgPacketBytes: rx.avg,
    },
    tx: { packets: 0, bytes: 0, pps: 0, bps: 0, avgPacketBytes: null },
    rxDropped: 0,
    rxErrors: 0,
    rxMissed: 0,
    txDropped: 0,
    txErrors: 0,
    driverCounters: { exposed: true, lossCounters: [] },
    verdict,
    note: '',
    ...loss,
  };
}

type Overrides = Partial<Omit<InterfaceEvidence, 'identity'>> & { identity?: Partial<InterfaceEvidence['identity']> };

function nic(overrides: Overrides = {}): InterfaceEvidence {
  const { identity, ...rest } = overrides;
  return {
    name: 'ens1f0np0',
    ifindex: 3,
    identity: {
      driver: 'bnxt_en',
      driverVersion: '1.10.3-231.0.162.0',
      firmwareVersion: '231.0.154.0/pkg 231.1.162.1',
      busInfo: '0000:3b:00.0',
      pci: '14e4:1750',
      kind: null,
      mtu: 1500,
      family: BCM57508,
      uppers: [],
      ...identity,
    },
    policy: { rule: 'bcm57508-gro-gso-off', mode: 'enforce', gaps: [] },
    offloads: offloads({
      'rx-gro': false,
      'tx-generic-segmentation': false,
      'tx-tcp-segmentation': true,
      'tx-tcp6-segmentation': true,
    }),
    traffic: traffic('healthy', { pps: 80000, avg: 1448 }),
    ...rest,
  };
}

const ids = (findings: Finding[]): string[] => findings.map((finding) => finding.id);
const gapsOn = [
  { feature: 'rx-gro', as: 'gro', wanted: false, active: true, fixed: false },
  { feature: 'tx-generic-segmentation', as: 'gso', wanted: false, active: true, fixed: false },
];

describe('doctor: findings from evidence', () => {
  it('names the BCM57508 symptom with its numbers, evidence, reason and fix', () => {
    const evidence = nic({
      offloads: offloads(
        { 'rx-gro': true, 'tx-generic-segmentation': true },
        { 'rx-gro': false, 'tx-generic-segmentation': false },
      ),
      policy: { rule: 'bcm57508-gro-gso-off', mode: 'enforce', gaps: gapsOn },
      traffic: traffic('small-packets'),
    });
    const findings = findingsFor(evidence, { daemon: false });
    assert.deepEqual(ids(findings), ['gro-gso-symptom', 'offloads-not-as-wanted']);
    const symptom = findings[0] as Finding;
    assert.equal(symptom.severity, 'critical');
    assert.equal(
      symptom.summary,
      'average received packet 96 B at 80.0 kpps on a 1500-MTU NIC with rx-gro and tx-generic-segmentation on: this is the BCM57508 GRO/GSO symptom',
    );
    assert.deepEqual(
      { ...symptom.evidence, family: undefined },
      {
        avgRxPacketBytes: 96,
        rxPps: 80000,
        rxBps: 61440000,
        mtu: 1500,
        on: ['rx-gro', 'tx-generic-segmentation'],
        pci: '14e4:1750',
        family: undefined,
        windowSec: 5,
      },
    );
    assert.match(symptom.reason, /BCM57508, per the rule bcm57508-gro-gso-off in the shipped policy/);
    assert.match(
      symptom.fix,
      /offloadd is not running: `systemctl enable --now offloadd`.*`ethtool -K ens1f0np0 gro off gso off`/,
    );
  });

  it('fits the fix to who can act: a running daemon enforces, a report-mode rule must be switched', () => {
    const base = {
      offloads: offloads({ 'rx-gro': true }, { 'rx-gro': false }),
      policy: { rule: 'bcm57508-gro-gso-off', mode: 'enforce' as const, gaps: [gapsOn[0] as (typeof gapsOn)[number]] },
      traffic: traffic('small-packets'),
    };
    assert.match((findingsFor(nic(base), { daemon: true })[0] as Finding).fix, /^`offloadctl enforce ens1f0np0`/);
    const report = findingsFor(nic({ ...base, policy: { ...base.policy, mode: 'report' } }), { daemon: true });
    assert.match((report[0] as Finding).fix, /is in report mode: set `mode: enforce`/);
    assert.match((report[1] as Finding).reason, /report mode: offloadd records the difference and leaves it/);
  });

  it('says nothing about a family NIC whose GRO and GSO are off, however small its packets', () => {
    assert.deepEqual(findingsFor(nic({ traffic: traffic('small-packets') }), { daemon: true }), []);
  });

  it('never guesses: no symptom without enough traffic, while a host that mostly sends, or outside the family', () => {
    const on = offloads({ 'rx-gro': true }, { 'rx-gro': false });
    assert.deepEqual(
      ids(findingsFor(nic({ offloads: on, traffic: traffic('quiet', { pps: 3, avg: 90 }) }), { daemon: true })),
      [],
    );
    assert.deepEqual(ids(findingsFor(nic({ offloads: on, traffic: traffic('mostly-sending') }), { daemon: true })), []);
    assert.deepEqual(
      ids(
        findingsFor(
          nic({
            offloads: on,
            identity: { pci: '8086:1572', family: NOT_FAMILY, driver: 'i40e' },
            policy: { rule: null, mode: null, gaps: [] },
            traffic: traffic('small-packets'),
          }),
          { daemon: true },
        ),
      ),
      [],
    );
  });

  it('points at a family member the policy does not cover', () => {
    const findings = findingsFor(
      nic({
        identity: {
          pci: '14e4:1751',
          family: {
            member: true,
            pattern: '14e4:1751',
            label: 'BCM57504',
            source: 'commented-out rule bnxt-thor-family-gro-gso-off in the shipped policy',
          },
        },
        policy: { rule: null, mode: null, gaps: [] },
        offloads: offloads({ 'rx-gro': true, 'tx-generic-segmentation': true }),
        traffic: traffic('small-packets'),
      }),
      { daemon: true },
    );
    assert.deepEqual(ids(findings), ['gro-gso-symptom', 'family-not-covered']);
    assert.match(
      (findings[0] as Finding).fix,
      /no policy rule covers ens1f0np0: uncomment the shipped policy's family rule/,
    );
    assert.match(
      (findings[1] as Finding).summary,
      /14e4:1751 \(BCM57504\) has rx-gro and tx-generic-segmentation on and no policy rule covers it/,
    );
  });

  it('reports a fixed feature as not enforceable rather than asking to enforce it', () => {
    const finding = findingsFor(
      nic({
        policy: {
          rule: 'r',
          mode: 'enforce',
          gaps: [{ feature: 'rx-lro', as: 'lro', wanted: false, active: true, fixed: true }],
        },
      }),
      { daemon: true },
    )[0] as Finding;
    assert.equal(finding.id, 'offloads-not-as-wanted');
    assert.match(finding.summary, /rx-lro on \(wanted off, fixed\)/);
    assert.match(finding.fix, /^nothing to enforce/);
  });

  it('compares the MTU with every bond and bridge above the NIC', () => {
    const findings = findingsFor(
      nic({
        identity: {
          mtu: 9000,
          uppers: [
            { name: 'mgmt-bo', kind: 'bond', mtu: 9000, gro: true },
            { name: 'mgmt-br', kind: 'bridge', mtu: 1500, gro: true },
          ],
        },
      }),
      { daemon: true },
    );
    assert.deepEqual(ids(findings), ['mtu-differs']);
    assert.equal(
      (findings[0] as Finding).summary,
      'MTU differs between ens1f0np0 (9000) and its bridge mgmt-br (1500)',
    );
    assert.deepEqual((findings[0] as Finding).evidence, {
      mtu: 9000,
      upper: 'mgmt-br',
      upperKind: 'bridge',
      upperMtu: 1500,
    });
  });

  it('warns about TSO off on a tap, not on a physical NIC', () => {
    const tap = nic({
      name: 'tap100i0',
      identity: { kind: 'tun', driver: 'tun', pci: null, family: NOT_FAMILY, mtu: 1500 },
      policy: { rule: null, mode: null, gaps: [] },
      offloads: offloads({ 'tx-tcp-segmentation': false, 'tx-tcp6-segmentation': true }),
    });
    const findings = findingsFor(tap, { daemon: true });
    assert.deepEqual(ids(findings), ['tso-off-on-guest-device']);
    assert.equal(
      (findings[0] as Finding).summary,
      'TSO off on a tap (tx-tcp-segmentation): virtio receive-segment coalescing needs it',
    );
    assert.deepEqual(findingsFor(nic({ offloads: offloads({}) }), { daemon: true }), []);
    // A tap nothing has attached to yet: TSO off but requested on (the VM's process offers it).
    const unattached = tap.offloads.map((offload) =>
      offload.as === 'tso' ? { ...offload, active: false, requested: true } : offload,
    );
    assert.deepEqual(findingsFor({ ...tap, offloads: unattached }, { daemon: true }), []);
  });

  it('says GRO off on a bridge only has no effect while the port still has it on', () => {
    const findings = findingsFor(
      nic({
        identity: {
          uppers: [
            { name: 'mgmt-bo', kind: 'bond', mtu: 1500, gro: true },
            { name: 'mgmt-br', kind: 'bridge', mtu: 1500, gro: false },
          ],
        },
        offloads: offloads({ 'rx-gro': true }),
        policy: { rule: null, mode: null, gaps: [] },
      }),
      { daemon: true },
    );
    assert.ok(ids(findings).includes('gro-off-on-upper-only'));
    const finding = findings.find((entry) => entry.id === 'gro-off-on-upper-only') as Finding;
    assert.equal(finding.summary, 'GRO off on bridge mgmt-br only, still on on ens1f0np0: it has no effect there');
  });

  it('reports loss above one in a thousand packets, with the driver counters that moved', () => {
    const lossy = traffic(
      'healthy',
      { pps: 10000, avg: 1448 },
      { rxMissed: 200, driverCounters: { exposed: true, lossCounters: [{ name: 'rx_discards', delta: 200 }] } },
    );
    const findings = findingsFor(nic({ traffic: lossy }), { daemon: true });
    assert.deepEqual(ids(findings), ['packet-loss']);
    assert.deepEqual((findings[0] as Finding).evidence['driverLossCounters'], [{ name: 'rx_discards', delta: 200 }]);
    assert.deepEqual(
      findingsFor(nic({ traffic: traffic('healthy', { pps: 10000, avg: 1448 }, { rxDropped: 10 }) }), { daemon: true }),
      [],
    );
  });

  it('sorts the most severe first', () => {
    const warning = { id: 'mtu-differs', severity: 'warning', interface: 'a' } as Finding;
    const critical = { id: 'gro-gso-symptom', severity: 'critical', interface: 'b' } as Finding;
    assert.deepEqual(sortFindings([warning, critical]), [critical, warning]);
  });
});
