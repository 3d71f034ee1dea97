/**
 * Read → plan → set only what differs (one SFEATURES) → read back → verify, for one interface.
 * Never retries by itself: what the kernel refuses is reported as unenforceable, and the caller
 * decides about timing (flapping back-off). A vanished interface surfaces as KernelError.vanished.
 */
import { KernelError } from '../errors';
import type { WantedFeature } from '../policy/types';
import type { FeatureAccess, FeatureSnapshot } from './feature-state';
import { changesOf, planFeatures, whyNotApplied, type FeaturePlan } from './plan';

export type FeatureAction =
  /** Nothing to do: already as wanted. */
  | 'none'
  /** Was different; set and verified. */
  | 'enforced'
  /** Was different; left alone (report mode). */
  | 'reported'
  /** Was different; held back (flapping back-off), will be retried when the back-off ends. */
  | 'deferred'
  /** Setting it failed (EPERM, EBUSY, ...). */
  | 'failed'
  /**
   * Set, but another writer changed it back before the read-back (its own event follows and
   * is handled then). Counts as a correction for the flapping back-off; never `unenforceable`.
   */
  | 'contended'
  /** Cannot be made as wanted on this device. */
  | 'unenforceable'
  /** Skipped: alias member this device cannot change, or unknown to this kernel. */
  | 'ignored';

export interface FeatureOutcome extends FeaturePlan {
  action: FeatureAction;
  /** Active state after the operation (null when absent). */
  after: boolean | null;
}

export interface ApplyResult {
  outcomes: FeatureOutcome[];
  /** At least one feature was changed. */
  changed: boolean;
  /** Every enforceable wanted feature is now active as wanted. */
  compliant: boolean;
  /** Time from the first read to the verified read-back. */
  durationUs: number;
}

export interface ApplyOptions {
  /** false = report mode: read and compare only. */
  enforce: boolean;
  /**
   * Per feature that differs: correct it now, hold it back (`deferred`, flapping back-off), or
   * leave it as already known to be unenforceable on this interface (no retry loop).
   */
  gate(feature: string): 'correct' | 'defer' | 'unenforceable';
}

export function applyWanted(
  table: FeatureAccess,
  ifname: string,
  ifindex: number,
  wanted: readonly WantedFeature[],
  options: ApplyOptions,
): ApplyResult {
  const started = process.hrtime.bigint();
  const plan = planFeatures(wanted, table.read(ifname, ifindex));
  const gates = new Map<string, 'correct' | 'defer' | 'unenforceable'>();
  const toChange = options.enforce
    ? changesOf(plan).filter((change) => {
        const gate = options.gate(change.feature);
        gates.set(change.feature, gate);
        return gate === 'correct';
      })
    : [];

  let writeError: KernelError | null = null;
  let after: FeatureSnapshot | null = null;
  if (toChange.length > 0) {
    try {
      table.write(ifname, ifindex, toChange);
    } catch (error) {
      if (!(error instanceof KernelError) || error.vanished) throw error;
      writeError = error;
    }
    after = table.read(ifname, ifindex);
  }
  const changing = new Set(toChange.map((change) => change.feature));

  const outcomes = plan.map((entry): FeatureOutcome => {
    const afterActive = after?.get(entry.feature)?.active ?? entry.active;
    switch (entry.status) {
      case 'compliant':
        return { ...entry, action: 'none', after: afterActive };
      case 'absent':
      case 'ignored':
        return { ...entry, action: 'ignored', after: afterActive };
      case 'unenforceable':
        return { ...entry, action: 'unenforceable', after: afterActive };
      case 'differs': {
        if (!options.enforce) return { ...entry, action: 'reported', after: afterActive };
        if (gates.get(entry.feature) === 'unenforceable')
          return {
            ...entry,
            action: 'unenforceable',
            after: afterActive,
            reason: 'known to be unenforceable on this interface',
          };
        if (!changing.has(entry.feature)) return { ...entry, action: 'deferred', after: afterActive };
        if (afterActive === entry.wanted) return { ...entry, action: 'enforced', after: afterActive };
        if (writeError)
          return {
            ...entry,
            action: 'failed',
            after: afterActive,
            reason: `${writeError.message}${writeError.hint ? ` (${writeError.hint})` : ''}`,
          };
        const state = after?.get(entry.feature);
        if (state && state.requested !== entry.wanted) {
          // Our request is no longer the requested state: someone else wrote after us.
          return {
            ...entry,
            action: 'contended',
            after: afterActive,
            reason: 'another writer changed it back during the correction',
          };
        }
        return {
          ...entry,
          action: 'unenforceable',
          after: afterActive,
          reason: whyNotApplied(entry.feature, entry.wanted, after!),
        };
      }
    }
  });

  return {
    outcomes,
    changed: outcomes.some((outcome) => outcome.action === 'enforced'),
    compliant: outcomes.every(
      (outcome) =>
        outcome.action === 'ignored' || outcome.action === 'unenforceable' || outcome.after === outcome.wanted,
    ),
    durationUs: Number(process.hrtime.bigint() - started) / 1000,
  };
}
