/**
 * Desired × current → what to do, per feature. Pure: no I/O, so its tests need no kernel.
 */
import { onOff, type WantedFeature } from '../policy/types';
import type { FeatureSnapshot } from './feature-state';

export type FeatureStatus =
  /** Active state already as wanted. */
  | 'compliant'
  /** Differs and can be changed. */
  | 'differs'
  /** Differs and cannot be changed on this device (fixed / not changeable). */
  | 'unenforceable'
  /** Came from an alias (e.g. `tso`) and this device cannot change it: skipped, as ethtool does. */
  | 'ignored'
  /** This kernel has no such feature. */
  | 'absent';

export interface FeaturePlan {
  feature: string;
  /** The policy's name for it ("gro"). */
  as: string;
  wanted: boolean;
  /** Active before any change; null when absent. */
  active: boolean | null;
  status: FeatureStatus;
  reason: string | null;
}

export function planFeatures(wanted: readonly WantedFeature[], snapshot: FeatureSnapshot): FeaturePlan[] {
  return wanted.map(({ feature, on, as, explicit }): FeaturePlan => {
    const state = snapshot.get(feature);
    if (!state)
      return { feature, as, wanted: on, active: null, status: 'absent', reason: 'this kernel has no such feature' };
    if (state.active === on)
      return { feature, as, wanted: on, active: state.active, status: 'compliant', reason: null };
    if (!state.changeable || state.neverChanges) {
      return {
        feature,
        as,
        wanted: on,
        active: state.active,
        status: explicit ? 'unenforceable' : 'ignored',
        reason: `fixed ${onOff(state.active)} on this device (the driver does not let it change)`,
      };
    }
    return { feature, as, wanted: on, active: state.active, status: 'differs', reason: null };
  });
}

/** What SFEATURES should change: only what differs and can change. */
export function changesOf(plan: readonly FeaturePlan[]): Array<{ feature: string; on: boolean }> {
  const changes: Array<{ feature: string; on: boolean }> = [];
  // One loop, no filter-then-map: this runs on every check (see reconciler.ts on allocation).
  for (let i = 0; i < plan.length; i++) {
    const entry = plan[i] as FeaturePlan;
    if (entry.status === 'differs') changes.push({ feature: entry.feature, on: entry.wanted });
  }
  return changes;
}

/**
 * After a write, why a feature is still not as wanted. The kernel takes the request but keeps
 * the active state when a dependency or the driver's fix_features overrides it (ethtool shows
 * "[requested on]"); retrying would loop forever.
 */
export function whyNotApplied(feature: string, wanted: boolean, after: FeatureSnapshot): string {
  const state = after.get(feature);
  if (!state) return 'the feature disappeared from the device';
  if (state.requested === wanted) {
    return `the kernel keeps it ${onOff(state.active)} although ${onOff(wanted)} is requested (a feature dependency or the driver overrides it)`;
  }
  return `the kernel did not accept ${onOff(wanted)} (still requested ${onOff(state.requested)})`;
}
