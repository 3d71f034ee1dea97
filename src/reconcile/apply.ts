/**
 * Read → plan → set only what differs (one request) → verify, for one interface. Over ethtool
 * netlink the FEATURES_SET reply is the verification (one request and one reply per correction);
 * over the ioctl, and when a reply did not parse, a read-back. Never retries by itself: what the
 * kernel refuses is reported as unenforceable, and the caller decides about timing (flapping
 * back-off). A vanished interface surfaces as KernelError.vanished.
 *
 * The steps are also offered apart (prepareApply, finishApply) so that a batch of interfaces can
 * share pipelined reads and writes (the reconciler's start-up and resync).
 */
import { ENOTSUPP } from '../addon/errno';
import { type KernelError } from '../errors';
import type { WantedFeature } from '../policy/types';
import {
  UnparsedReply,
  type FeatureAccess,
  type FeatureChange,
  type FeatureSnapshot,
  type FeatureTarget,
  type WriteReadBack,
} from './feature-state';
import { changesOf, planFeatures, whyNotApplied, type FeaturePlan } from './plan';
import * as os from 'node:os';

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
  /**
   * Time from the first read to the verification; for a check made in a batch, the batch's time
   * divided among its interfaces (what one correction cost when done together).
   */
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

/** A plan made, its changes chosen, not yet written. */
export interface PreparedApply {
  plan: FeaturePlan[];
  /** What to write (empty: nothing to write). */
  changes: FeatureChange[];
  /** The gate's answer per feature that differs (enforce mode only). */
  gates: Map<string, 'correct' | 'defer' | 'unenforceable'> | null;
  enforce: boolean;
  /** process.hrtime.bigint() when the read started. */
  started: bigint;
}

export function prepareApply(
  before: FeatureSnapshot,
  wanted: readonly WantedFeature[],
  options: ApplyOptions,
  started: bigint,
): PreparedApply {
  const plan = planFeatures(wanted, before);
  let gates: Map<string, 'correct' | 'defer' | 'unenforceable'> | null = null;
  const changes: FeatureChange[] = [];
  if (options.enforce) {
    const differing = changesOf(plan);
    for (let i = 0; i < differing.length; i++) {
      const change = differing[i] as FeatureChange;
      const gate = options.gate(change.feature);
      (gates ??= new Map()).set(change.feature, gate);
      if (gate === 'correct') changes.push(change);
    }
  }
  return { plan, changes, gates, enforce: options.enforce, started };
}

/** The write's errno classes: a device that cannot do it vs. a failure worth retrying. */
const NOT_SUPPORTED = new Set([os.constants.errno.EOPNOTSUPP, os.constants.errno.ENOTSUP, ENOTSUPP]);

/**
 * Outcomes from the plan and the state after the write (`after`: the reply or a read-back; null
 * when nothing was written). `writeError`: the kernel refused the write (not vanished).
 */
export function finishApply(
  prepared: PreparedApply,
  after: FeatureSnapshot | null,
  writeError: KernelError | null,
  ended: bigint,
  /** How many interfaces shared the time from `started` to `ended` (a batch). */
  sharedBy = 1,
): ApplyResult {
  const { plan, gates, enforce } = prepared;
  const outcomes = new Array<FeatureOutcome>(plan.length);
  let changed = false;
  let compliant = true;
  for (let i = 0; i < plan.length; i++) {
    const entry = plan[i] as FeaturePlan;
    const state = after?.get(entry.feature);
    const afterActive = state ? state.active : entry.active;
    let action: FeatureAction;
    let reason = entry.reason;
    switch (entry.status) {
      case 'compliant':
        action = 'none';
        break;
      case 'absent':
      case 'ignored':
        action = 'ignored';
        break;
      case 'unenforceable':
        action = 'unenforceable';
        break;
      case 'differs': {
        const gate = gates?.get(entry.feature);
        if (!enforce) action = 'reported';
        else if (gate === 'unenforceable') {
          action = 'unenforceable';
          reason = 'known to be unenforceable on this interface';
        } else if (gate !== 'correct') action = 'deferred';
        else if (afterActive === entry.wanted) action = 'enforced';
        else if (writeError) {
          // EOPNOTSUPP: the device cannot do it (retrying would loop); anything else may pass.
          action = NOT_SUPPORTED.has(writeError.errno) ? 'unenforceable' : 'failed';
          reason = `${writeError.message}${writeError.hint ? ` (${writeError.hint})` : ''}`;
        } else if (state && state.requested !== entry.wanted) {
          // Our request is no longer the requested state: someone else wrote after us.
          action = 'contended';
          reason = 'another writer changed it back during the correction';
        } else {
          action = 'unenforceable';
          reason = after ? whyNotApplied(entry.feature, entry.wanted, after) : 'no state after the write';
        }
        break;
      }
    }
    if (action === 'enforced') changed = true;
    if (action !== 'ignored' && action !== 'unenforceable' && afterActive !== entry.wanted) compliant = false;
    outcomes[i] = {
      feature: entry.feature,
      as: entry.as,
      wanted: entry.wanted,
      active: entry.active,
      status: entry.status,
      reason,
      action,
      after: afterActive,
    };
  }
  return { outcomes, changed, compliant, durationUs: Number(ended - prepared.started) / 1000 / sharedBy };
}

/**
 * What a write's answer leaves to do: the state after it, or a read-back when it gave none
 * (ioctl) or one that did not parse (`onUnparsed` is told, for the logs).
 */
export function stateAfterWrite(
  table: FeatureAccess,
  ifname: string,
  ifindex: number,
  readBack: WriteReadBack,
  onUnparsed: (error: KernelError) => void,
): FeatureSnapshot {
  if (readBack instanceof UnparsedReply) onUnparsed(readBack.error);
  else if (readBack !== null) return readBack;
  return table.read(ifname, ifindex);
}

/**
 * Reads every target's features: pipelined in one request when there are several and the table
 * can, else one by one. A failure (thrown or answered) is returned in the target's place.
 */
export function readAll(table: FeatureAccess, targets: readonly FeatureTarget[]): Array<FeatureSnapshot | Error> {
  if (targets.length > 1 && table.readMany) return table.readMany(targets);
  return targets.map((target) => {
    try {
      return table.read(target.name, target.ifindex);
    } catch (error) {
      return error as Error;
    }
  });
}

/** A write: the changes planned for a target from the snapshot `before`. */
export interface FeatureWrite {
  target: FeatureTarget;
  changes: readonly FeatureChange[];
  before: FeatureSnapshot;
}

/** As readAll, for writes: each answer (the reply, or a failure) in its write's place. */
export function writeAll(table: FeatureAccess, writes: readonly FeatureWrite[]): Array<WriteReadBack | Error> {
  if (writes.length > 1 && table.writeMany) return table.writeMany(writes);
  return writes.map(({ target, changes, before }) => {
    try {
      return table.write(target.name, target.ifindex, changes, before);
    } catch (error) {
      return error as Error;
    }
  });
}
