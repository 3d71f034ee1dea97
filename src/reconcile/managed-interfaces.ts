/**
 * The interfaces a rule matches: their status as the API shows it, what the daemon remembers
 * of each between checks, and the managed/compliant counts (kept incrementally: status and
 * sd_notify STATUS= ask for them after every batch).
 */
import type { InterfaceFacts } from '../facts/types';
import type { SeenInterface } from '../ledger/last-seen';
import type { Mode, Rule } from '../policy/types';
import type { ApplyResult, FeatureOutcome } from './apply';
import type { FeatureMemory } from './record-decisions';

export interface InterfaceStatus {
  ifindex: number;
  name: string;
  facts: InterfaceFacts;
  rule: string;
  mode: Mode;
  compliant: boolean;
  /** When `compliant` last changed (ISO). */
  since: string;
  lastCheck: string;
  lastDrift: string | null;
  driftCount: number;
  features: FeatureOutcome[];
}

export interface ManagedInterface extends FeatureMemory {
  status: InterfaceStatus;
  ruleName: string;
  lastActive: Map<string, boolean>;
  unenforceable: Set<string>;
  seenBefore: boolean;
}

export class ManagedInterfaces {
  private readonly byIfindex = new Map<number, ManagedInterface>();
  private compliantCount = 0;

  get(ifindex: number): ManagedInterface | undefined {
    return this.byIfindex.get(ifindex);
  }

  /**
   * Starts managing an interface, or starts over when another rule now matches it.
   * `seen`: its features as an earlier run last saw them, if known.
   */
  adopt(
    facts: InterfaceFacts,
    rule: Rule,
    mode: Mode,
    seen: Map<string, boolean> | null,
    now = new Date().toISOString(),
  ): ManagedInterface {
    this.release(facts.ifindex);
    const managed: ManagedInterface = {
      status: {
        ifindex: facts.ifindex,
        name: facts.name,
        facts,
        rule: rule.name,
        mode,
        compliant: false,
        since: now,
        lastCheck: now,
        lastDrift: null,
        driftCount: 0,
        features: [],
      },
      ruleName: rule.name,
      lastActive: seen ?? new Map<string, boolean>(),
      unenforceable: new Set(),
      seenBefore: seen !== null,
    };
    this.byIfindex.set(facts.ifindex, managed);
    return managed;
  }

  release(ifindex: number): ManagedInterface | undefined {
    const managed = this.byIfindex.get(ifindex);
    if (!managed) return undefined;
    if (managed.status.compliant) this.compliantCount--;
    this.byIfindex.delete(ifindex);
    return managed;
  }

  /** After a check: the new status, and what to compare the next check with. */
  noteCheck(
    managed: ManagedInterface,
    facts: InterfaceFacts,
    mode: Mode,
    result: ApplyResult,
    drifts: number,
    newlyUnenforceable: readonly string[],
    /** The check's time (ISO); one for a whole batch. */
    now = new Date().toISOString(),
  ): void {
    const status = managed.status;
    if (status.compliant !== result.compliant) {
      status.since = now;
      this.compliantCount += result.compliant ? 1 : -1;
    }
    status.compliant = result.compliant;
    status.name = facts.name;
    status.facts = facts;
    status.mode = mode;
    status.lastCheck = now;
    status.features = result.outcomes;
    if (drifts > 0) {
      status.driftCount += drifts;
      status.lastDrift = now;
    }
    for (const feature of newlyUnenforceable) managed.unenforceable.add(feature);
    for (const outcome of result.outcomes)
      if (outcome.after !== null) managed.lastActive.set(outcome.feature, outcome.after);
    managed.seenBefore = false;
  }

  /** An operator asked to retry: forget what was found unenforceable. */
  forgetUnenforceable(ifindex: number | null): void {
    for (const [index, managed] of this.byIfindex)
      if (ifindex === null || ifindex === index) managed.unenforceable.clear();
  }

  counts(): { managed: number; compliant: number } {
    return { managed: this.byIfindex.size, compliant: this.compliantCount };
  }

  statuses(): InterfaceStatus[] {
    return [...this.byIfindex.values()].map((managed) => managed.status);
  }

  /** Each managed interface's features as last seen, for the next run. */
  lastSeen(): SeenInterface[] {
    return [...this.byIfindex.values()].map((managed) => ({
      name: managed.status.name,
      mac: managed.status.facts.mac,
      features: Object.fromEntries(managed.lastActive),
    }));
  }
}
