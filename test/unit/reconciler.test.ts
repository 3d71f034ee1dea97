/**
 * The reconciler without a kernel: a fake feature table and facts source behind the interfaces
 * the real ones implement (FeatureAccess, FactsSource). The kernel suites (test/kernel/) run the
 * same decisions against real interfaces; this one pins the decisions themselves.
 */
import { strict as assert } from 'node:assert';
import { KernelError } from '../../src/errors';
import { LinkEventReason, type LinkMessage } from '../../src/events/link-message';
import type { FactsSource } from '../../src/facts/interface-facts';
import type { DeviceFacts } from '../../src/facts/types';
import type { NewRecord } from '../../src/ledger/record';
import { parsePolicy } from '../../src/policy/load';
import type {
  FeatureAccess,
  FeatureChange,
  FeatureSnapshot,
  FeatureState,
  FeatureTarget,
} from '../../src/reconcile/feature-state';
import { Reconciler } from '../../src/reconcile/reconciler';
import { waitFor } from '../helpers/wait';

const FEATURES = ['rx-gro', 'tx-generic-segmentation', 'rx-lro'];

/** Features per ifindex, changed only by write(); `stubborn` features ignore writes. */
class FakeFeatures implements FeatureAccess {
  readonly devices = new Map<number, Map<string, FeatureState>>();
  readonly stubborn = new Set<string>();
  writes = 0;
  refuseWith: string | null = null;

  add(ifindex: number, active: Record<string, boolean>, fixed: string[] = []): void {
    const states = new Map<string, FeatureState>();
    for (const feature of FEATURES) {
      const on = active[feature] ?? false;
      states.set(feature, { changeable: !fixed.includes(feature), requested: on, active: on, neverChanges: false });
    }
    this.devices.set(ifindex, states);
  }

  set(ifindex: number, feature: string, on: boolean): void {
    const state = this.device(ifindex).get(feature) as FeatureState;
    state.active = on;
    state.requested = on;
  }

  active(ifindex: number, feature: string): boolean {
    return (this.device(ifindex).get(feature) as FeatureState).active;
  }

  read(ifname: string, ifindex: number): FeatureSnapshot {
    const states = this.device(ifindex, ifname);
    return { get: (feature) => (states.get(feature) ? { ...(states.get(feature) as FeatureState) } : undefined) };
  }

  /** Says nothing about the state after the write (as the ioctl): the reconciler reads back. */
  write(ifname: string, ifindex: number, changes: ReadonlyArray<{ feature: string; on: boolean }>): null {
    const states = this.device(ifindex, ifname);
    if (this.refuseWith) throw new KernelError(this.refuseWith, 1, 'SIOCETHTOOL', 'Operation not permitted', ifname);
    this.writes++;
    for (const { feature, on } of changes) {
      const state = states.get(feature) as FeatureState;
      state.requested = on;
      if (!this.stubborn.has(feature)) state.active = on;
    }
    return null;
  }

  /** Batches, as the kernel's table pipelines them: counted, each entry as read()/write() would. */
  readBatches = 0;
  writeBatches = 0;

  readMany(targets: readonly FeatureTarget[]): Array<FeatureSnapshot | KernelError> {
    this.readBatches++;
    return targets.map((target) => orError(() => this.read(target.name, target.ifindex)));
  }

  writeMany(
    writes: ReadonlyArray<{ target: FeatureTarget; changes: readonly FeatureChange[]; before: FeatureSnapshot }>,
  ): Array<null | KernelError> {
    this.writeBatches++;
    return writes.map(({ target, changes }) => orError(() => this.write(target.name, target.ifindex, changes)));
  }

  private device(ifindex: number, ifname = String(ifindex)): Map<string, FeatureState> {
    const states = this.devices.get(ifindex);
    if (!states) throw new KernelError('ENODEV', 19, 'SIOCETHTOOL', 'No such device', ifname);
    return states;
  }
}

function orError<T>(call: () => T): T | KernelError {
  try {
    return call();
  } catch (error) {
    if (error instanceof KernelError) return error;
    throw error;
  }
}

class FakeFacts implements FactsSource {
  readonly drivers = new Map<number, string>();
  forgotten: number[] = [];

  readonly deviceReads: number[] = [];
  /** As with the real /sys on 5.13+: a link without IFLA_PARENT_DEV_NAME has no device. */
  trustParent = false;

  hasNoDevice(link: LinkMessage): boolean {
    return this.trustParent && link.parentDevice === null;
  }

  device(link: LinkMessage): DeviceFacts {
    this.deviceReads.push(link.ifindex);
    return { driver: this.drivers.get(link.ifindex) ?? link.kind, busInfo: null, pci: null };
  }

  forget(ifindex: number): void {
    this.forgotten.push(ifindex);
  }

  /** The ifindexes the kernel still has although calls about them fail with ENODEV. */
  readonly present = new Set<number>();

  stillPresent(link: LinkMessage): boolean {
    return this.present.has(link.ifindex);
  }
}

function link(ifindex: number, name: string, extra: Partial<LinkMessage> = {}): LinkMessage {
  return {
    type: 'new',
    ifindex,
    name,
    up: false,
    operstate: 'down',
    kind: 'veth',
    mac: `02:00:00:00:00:${ifindex.toString(16).padStart(2, '0')}`,
    master: null,
    event: null,
    parentDevice: null,
    parentBus: null,
    ...extra,
  };
}

const POLICY = (extra = ''): string => `${extra}
flapping: { max_corrections: 3, window: 60, max_backoff: 1 }
rules:
  - name: uplinks
    match: { name: "up*" }
    features: { gro: off, gso: off }
  - name: fixed-lro
    match: { name: "lro*" }
    features: { lro: off }
`;

interface Harness {
  reconciler: Reconciler;
  kernel: FakeFeatures;
  facts: FakeFacts;
  records: NewRecord[];
  released: Array<[number, string, string]>;
  problems: Array<[string, string]>;
}

function harness(policyText = POLICY(), seen: Record<string, Map<string, boolean>> = {}): Harness {
  const kernel = new FakeFeatures();
  const facts = new FakeFacts();
  const records: NewRecord[] = [];
  const released: Array<[number, string, string]> = [];
  const problems: Array<[string, string]> = [];
  const reconciler = new Reconciler(
    parsePolicy(policyText, 'test.yaml', FEATURES),
    kernel,
    facts,
    {
      checked: (report) => records.push(...report.records),
      recorded: (batch) => records.push(...batch),
      released: ({ ifindex, name, why }) => released.push([ifindex, name, why]),
      problem: ({ level, message }) => problems.push([level, message]),
    },
    (name) => seen[name] ?? null,
  );
  return { reconciler, kernel, facts, records, released, problems };
}

describe('reconciler (no kernel: fake features and facts)', () => {
  let h: Harness;
  afterEach(() => h.reconciler.stop());

  it('brings a matching link into policy at start, one initial record per changed feature', () => {
    h = harness();
    h.kernel.add(1, { 'rx-gro': true, 'tx-generic-segmentation': true });
    h.kernel.add(2, { 'rx-gro': true });
    h.reconciler.loadAll([link(1, 'up0'), link(2, 'other0')], 'start');
    assert.equal(h.kernel.active(1, 'rx-gro'), false);
    assert.equal(h.kernel.active(1, 'tx-generic-segmentation'), false);
    assert.equal(h.kernel.active(2, 'rx-gro'), true, 'no rule, not touched');
    assert.deepEqual(
      h.records.map((record) => [record.event, record.interface, record.feature, record.action]),
      [
        ['initial', 'up0', 'rx-gro', 'enforced'],
        ['initial', 'up0', 'tx-generic-segmentation', 'enforced'],
      ],
    );
    assert.deepEqual(h.reconciler.counts(), { managed: 1, compliant: 1 });
  });

  it('a link any call said ENODEV about while the kernel still has it is a warning, never a debug line (issue 20 #11)', () => {
    h = harness();
    for (const i of [1, 2]) h.kernel.add(i, { 'rx-gro': true });
    h.kernel.devices.delete(1);
    h.kernel.devices.delete(2);
    h.facts.present.add(2); // say, a name the calls could not address
    h.reconciler.loadAll([link(1, 'up1'), link(2, 'up2')], 'start');
    assert.deepEqual(
      h.problems.map(([level, message]) => [level, message.replace(/: .*/, '')]),
      [
        ['debug', 'Link vanished while enforcing the policy, ignoring'],
        ['warning', 'Failed enforcing the policy'],
      ],
    );
    assert.match(
      h.problems[1]?.[1] ?? '',
      /although the kernel still has this link; left as it is until its next event$/,
    );
  });

  it('checks many queued links as one batch: one pipelined read, one pipelined write, a vanished one alone reported', () => {
    h = harness();
    for (let i = 1; i <= 5; i++) h.kernel.add(i, { 'rx-gro': true });
    const links = [1, 2, 3, 4, 5].map((i) => link(i, `up${i}`));
    h.kernel.devices.delete(3); // gone between the dump and the read
    h.reconciler.loadAll(links, 'start');
    assert.equal(h.kernel.readBatches, 1);
    assert.equal(h.kernel.writeBatches, 1);
    for (const i of [1, 2, 4, 5]) assert.equal(h.kernel.active(i, 'rx-gro'), false);
    assert.deepEqual(
      h.records.filter((record) => record.feature === 'rx-gro').map((record) => record.interface),
      ['up1', 'up2', 'up4', 'up5'],
    );
    assert.deepEqual(h.problems, [['debug', 'Link vanished while enforcing the policy, ignoring']]);
    assert.deepEqual(h.reconciler.counts(), { managed: 5, compliant: 4 });
    const stamps = new Set(h.reconciler.statuses().map((status) => status.lastCheck));
    assert.equal(stamps.size, 1, 'one timestamp for the batch');
  });

  it('decides from the link message alone that a deviceless link cannot match a driver/PCI rule', () => {
    const policy = `rules:
  - name: bcm
    match: { driver: bnxt_en, pci: "14e4:1750" }
    features: { gro: off }
`;
    h = harness(policy);
    h.facts.trustParent = true;
    h.kernel.add(1, { 'rx-gro': true });
    h.kernel.add(2, { 'rx-gro': true });
    h.reconciler.handleLinks([link(1, 'tap0', { kind: 'tun' })]);
    assert.deepEqual(h.facts.deviceReads, [], 'no device read for a link without a parent device');
    h.reconciler.handleLinks([link(2, 'eth0', { kind: null, parentDevice: '0000:3b:00.0', parentBus: 'pci' })]);
    assert.deepEqual(h.facts.deviceReads, [2], 'a link with a device is looked at');
    h.reconciler.stop();

    h = harness(policy.replace(', pci: "14e4:1750"', ''));
    h.facts.trustParent = true;
    h.kernel.add(1, { 'rx-gro': true });
    h.reconciler.handleLinks([link(1, 'tap0', { kind: 'tun' })]);
    assert.deepEqual(h.facts.deviceReads, [1], 'a driver-only rule may match a virtual driver: it must ask');
  });

  it('records drift when a compliant feature is turned back on, and corrects it', () => {
    h = harness();
    h.kernel.add(1, {});
    h.reconciler.loadAll([link(1, 'up0')], 'start');
    assert.equal(h.records.length, 0, 'compliant from the start: nothing to record');
    h.kernel.set(1, 'rx-gro', true);
    h.reconciler.handleLinks([link(1, 'up0', { event: LinkEventReason.features })]);
    assert.deepEqual(
      h.records.map((record) => [record.event, record.trigger, record.feature, record.wanted, record.active]),
      [['drift', 'features', 'rx-gro', 'off', 'on']],
    );
    assert.equal(h.kernel.active(1, 'rx-gro'), false);
    assert.equal(h.reconciler.status(1)?.driftCount, 1);
  });

  it('records an unenforceable feature once per interface, and does not retry it until asked', () => {
    h = harness();
    h.kernel.add(1, { 'rx-lro': true }, ['rx-lro']);
    h.reconciler.loadAll([link(1, 'lro0')], 'start');
    h.reconciler.handleLinks([link(1, 'lro0')]);
    h.reconciler.handleLinks([link(1, 'lro0', { up: true })]);
    assert.deepEqual(
      h.records.map((record) => [record.event, record.feature]),
      [['unenforceable', 'rx-lro']],
    );
    h.reconciler.enforce(1);
    assert.equal(
      h.records.filter((record) => record.event === 'unenforceable').length,
      2,
      'enforce retries and records again',
    );
  });

  it('in report mode records a difference once and changes nothing', () => {
    h = harness(POLICY('mode: report'));
    h.kernel.add(1, { 'rx-gro': true });
    h.reconciler.loadAll([link(1, 'up0')], 'start');
    h.reconciler.handleLinks([link(1, 'up0', { up: true })]);
    assert.equal(h.kernel.writes, 0);
    assert.deepEqual(
      h.records.map((record) => [record.event, record.action]),
      [['initial', 'reported']],
    );
    assert.equal(h.reconciler.counts().compliant, 0);
  });

  it('records a refused write (EPERM) as failed, not compliant', () => {
    h = harness();
    h.kernel.add(1, { 'rx-gro': true });
    h.kernel.refuseWith = 'EPERM';
    h.reconciler.loadAll([link(1, 'up0')], 'start');
    assert.deepEqual(
      h.records.map((record) => [record.feature, record.action]),
      [['rx-gro', 'failed']],
    );
    assert.match(h.records[0]?.reason ?? '', /not permitted/);
    assert.equal(h.reconciler.counts().compliant, 0);
  });

  it('backs off a feature that keeps being flipped, with one flapping record, and corrects it when the back-off ends', async () => {
    h = harness();
    h.kernel.add(1, {});
    h.reconciler.loadAll([link(1, 'up0')], 'start');
    // Flips reported as plain changes: this fake kernel sends no event for the daemon's own writes.
    for (let flip = 0; flip < 5; flip++) {
      h.kernel.set(1, 'rx-gro', true);
      h.reconciler.handleLinks([link(1, 'up0')]);
    }
    assert.equal(h.records.filter((record) => record.event === 'flapping').length, 1);
    assert.ok(
      h.records.some((record) => record.action === 'deferred'),
      'held back during the back-off',
    );
    assert.equal(h.kernel.active(1, 'rx-gro'), true, 'not corrected while backing off');
    // No event comes: the re-check when the back-off (1 s) ends must correct it by itself.
    await waitFor(() => h.kernel.active(1, 'rx-gro') === false, 'the correction after the back-off', 5000);
  });

  it('a held-back feature is re-checked at the back-off end even when its check makes no new record', async () => {
    h = harness();
    h.kernel.add(1, {});
    h.reconciler.loadAll([link(1, 'up0')], 'start');
    for (let flip = 0; flip < 3; flip++) {
      h.kernel.set(1, 'rx-gro', true);
      h.reconciler.handleLinks([link(1, 'up0')]);
    }
    // In the back-off: a flip is held back (a drift record), a second event finds it still off-policy
    // (no new record: not new) — the re-check must still be scheduled.
    h.kernel.set(1, 'rx-gro', true);
    h.reconciler.handleLinks([link(1, 'up0')]);
    h.reconciler.handleLinks([link(1, 'up0', { up: true })]);
    await waitFor(() => h.kernel.active(1, 'rx-gro') === false, 'the correction after the back-off', 5000);
  });

  it('asks for device facts only for links a rule matches, never for links no rule can match by name', () => {
    h = harness();
    h.kernel.add(1, {});
    h.kernel.add(2, {});
    h.reconciler.loadAll([link(1, 'up0'), link(2, 'tap100i0')], 'start');
    h.reconciler.handleLinks([link(1, 'up0', { up: true }), link(2, 'tap100i0', { up: true })]);
    assert.deepEqual(
      h.facts.deviceReads,
      [1, 1],
      'up0 at each check (the real source caches it per ifindex); tap100i0 never',
    );
  });

  it('forgets a deleted link and releases one renamed out of every rule', () => {
    h = harness();
    h.kernel.add(1, {});
    h.kernel.add(2, {});
    h.reconciler.loadAll([link(1, 'up0'), link(2, 'up1')], 'start');
    h.reconciler.handleLinks([{ ...link(1, 'up0'), type: 'del' }, link(2, 'down1')]);
    assert.deepEqual(h.released, [
      [1, 'up0', 'deleted'],
      [2, 'down1', 'unmatched'],
    ]);
    assert.deepEqual(h.facts.forgotten, [1]);
    assert.deepEqual(h.reconciler.counts(), { managed: 0, compliant: 0 });
  });

  it('treats a link that vanishes mid-check as an outcome (debug), not a failure', () => {
    h = harness();
    h.reconciler.loadAll([link(9, 'up9')], 'start'); // no such device in the fake kernel
    assert.deepEqual(
      h.problems.map(([level]) => level),
      ['debug'],
    );
    assert.equal(h.records.length, 0);
  });

  it('calls a difference found at start drift when an earlier run saw the feature as wanted', () => {
    const seen = {
      up0: new Map([
        ['rx-gro', false],
        ['tx-generic-segmentation', true],
      ]),
    };
    h = harness(POLICY(), seen);
    h.kernel.add(1, { 'rx-gro': true, 'tx-generic-segmentation': true });
    h.reconciler.loadAll([link(1, 'up0')], 'start');
    const events = Object.fromEntries(h.records.map((record) => [record.feature, record.event]));
    assert.deepEqual(
      events,
      { 'rx-gro': 'drift', 'tx-generic-segmentation': 'initial' },
      'gso was already wrong last time: not a drift',
    );
    assert.match(
      h.records.find((record) => record.feature === 'rx-gro')?.reason ?? '',
      /while offloadd was not running/,
    );
  });

  it('skips exactly one feature event per own write, and never one after a resync', () => {
    h = harness();
    h.kernel.add(1, { 'rx-gro': true });
    h.reconciler.loadAll([link(1, 'up0')], 'start');
    const before = h.records.length;
    h.reconciler.handleLinks([link(1, 'up0', { event: LinkEventReason.features })]); // the event our own write caused
    h.kernel.set(1, 'rx-gro', true);
    h.reconciler.resync([link(1, 'up0')], 'test');
    assert.deepEqual(
      h.records.slice(before).map((record) => record.event),
      ['resync', 'drift'],
    );
  });

  it('with an own-event filter (the addon drops them) counts nothing itself, and tells it when a link goes or events may be lost', () => {
    h = harness();
    const calls: string[] = [];
    h.reconciler.ownFeatureEvents.filter = {
      expect: (ifindex) => (calls.push(`expect ${ifindex}`), true),
      forget: (ifindex) => calls.push(`forget ${ifindex ?? 'all'}`),
    };
    h.kernel.add(1, { 'rx-gro': true });
    h.reconciler.loadAll([link(1, 'up0')], 'start');
    assert.deepEqual(calls, ['forget all', 'expect 1']);
    // The filter took the own event: a feature event that does reach us is someone else's.
    h.kernel.set(1, 'rx-gro', true);
    h.reconciler.handleLinks([link(1, 'up0', { event: LinkEventReason.features })]);
    assert.equal(h.records.at(-1)?.event, 'drift');
    h.reconciler.handleLinks([{ ...link(1, 'up0'), type: 'del' }]);
    assert.deepEqual(calls.slice(-1), ['forget 1']);
  });
});
