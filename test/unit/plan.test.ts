import { strict as assert } from 'node:assert';
import type { FeatureSnapshot, FeatureState } from '../../src/reconcile/feature-state';
import { changesOf, planFeatures, whyNotApplied } from '../../src/reconcile/plan';
import type { WantedFeature } from '../../src/policy/types';

function snapshot(states: Record<string, Partial<FeatureState>>): FeatureSnapshot {
  return {
    get: (feature) => {
      const state = states[feature];
      return state ? { changeable: true, requested: false, active: false, neverChanges: false, ...state } : undefined;
    },
  };
}

const off = (feature: string, explicit = true, as = feature): WantedFeature => ({ feature, on: false, as, explicit });

describe('plan (desired × current)', () => {
  const cases: Array<{
    name: string;
    wanted: WantedFeature[];
    current: Record<string, Partial<FeatureState>>;
    statuses: string[];
  }> = [
    {
      name: 'already as wanted',
      wanted: [off('rx-gro')],
      current: { 'rx-gro': { active: false } },
      statuses: ['compliant'],
    },
    {
      name: 'differs and changeable',
      wanted: [off('rx-gro')],
      current: { 'rx-gro': { active: true } },
      statuses: ['differs'],
    },
    {
      name: 'fixed, named explicitly',
      wanted: [off('rx-lro')],
      current: { 'rx-lro': { active: true, changeable: false } },
      statuses: ['unenforceable'],
    },
    {
      name: 'fixed, from an alias',
      wanted: [off('tx-tcp-mangleid-segmentation', false, 'tso')],
      current: { 'tx-tcp-mangleid-segmentation': { active: true, changeable: false } },
      statuses: ['ignored'],
    },
    {
      name: 'never changes',
      wanted: [off('netns-local')],
      current: { 'netns-local': { active: true, neverChanges: true } },
      statuses: ['unenforceable'],
    },
    { name: 'unknown to this kernel', wanted: [off('tx-udp-fragmentation')], current: {}, statuses: ['absent'] },
    {
      name: 'several at once',
      wanted: [off('rx-gro', true, 'gro'), off('tx-generic-segmentation', true, 'gso')],
      current: { 'rx-gro': { active: true }, 'tx-generic-segmentation': { active: false } },
      statuses: ['differs', 'compliant'],
    },
  ];
  for (const { name, wanted, current, statuses } of cases) {
    it(name, () => {
      assert.deepEqual(
        planFeatures(wanted, snapshot(current)).map((entry) => entry.status),
        statuses,
      );
    });
  }

  it('changes only what differs and can change', () => {
    const plan = planFeatures(
      [off('rx-gro'), off('rx-lro'), off('tx-generic-segmentation')],
      snapshot({
        'rx-gro': { active: true },
        'rx-lro': { active: true, changeable: false },
        'tx-generic-segmentation': { active: false },
      }),
    );
    assert.deepEqual(changesOf(plan), [{ feature: 'rx-gro', on: false }]);
  });

  it('explains a feature the kernel keeps despite the request', () => {
    assert.match(
      whyNotApplied('rx-gro-hw', true, snapshot({ 'rx-gro-hw': { requested: true, active: false } })),
      /keeps it off although on is requested/,
    );
    assert.match(
      whyNotApplied('rx-gro', false, snapshot({ 'rx-gro': { requested: true, active: true } })),
      /did not accept off/,
    );
  });
});
