/**
 * Keeps every matching interface in policy. Fed link messages (events, dumps), it decides which
 * interfaces to look at, runs apply for each, and turns what it found into ledger records and a
 * status per interface. State is keyed by ifindex: names are reused and renames carry no old name.
 *
 * Work is queued per ifindex and coalesced (a burst of events for one link is one check), and
 * drained in time slices so one long burst never starves the API or the watchdog.
 */
import { KernelError } from '../errors';
import type { LinkMessage } from '../events/link-message';
import { LinkEventReason } from '../events/link-message';
import { knownDevice, type InterfaceFactsSource } from '../facts/interface-facts';
import { vendorDevice } from '../facts/pci';
import type { InterfaceFacts } from '../facts/types';
import type { SeenInterface } from '../ledger/last-seen';
import type { NewRecord, Trigger } from '../ledger/record';
import { findRule, matchPolicy, type RuleEvaluation } from '../policy/match';
import type { Mode, Policy, Rule } from '../policy/types';
import { applyWanted, type ApplyResult, type FeatureOutcome } from './apply';
import type { FeatureTable } from './feature-state';
import { FlapGuard } from './flapping';
import { onOff, planFeatures, type FeaturePlan } from './plan';

/** How long one drain may hold the event loop before yielding. */
const SLICE_MS = 20;

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

export interface ReconcilerObserver {
  /** Records to make durable and report, in order. Called synchronously. */
  onRecords(records: NewRecord[]): void;
  /** After every check of a managed interface. */
  onChecked(status: InterfaceStatus, trigger: Trigger, result: ApplyResult): void;
  /** An interface stopped being managed (deleted, or no longer matches). */
  onReleased(ifindex: number, name: string, why: 'deleted' | 'unmatched'): void;
  /** A link vanished while being handled, or a call failed: for logs. */
  onProblem(level: 'debug' | 'error', message: string, facts: Partial<InterfaceFacts>, error?: unknown): void;
}

interface Managed {
  status: InterfaceStatus;
  ruleName: string;
  /** Active state per feature after the last check: drift = it was as wanted and no longer is. */
  lastActive: Map<string, boolean>;
  /** Features already recorded as unenforceable on this ifindex (no retry loop, one record). */
  unenforceable: Set<string>;
  /**
   * `lastActive` came from an earlier run (LastSeen): a difference found at this first check is
   * a change made while the daemon was not looking, i.e. drift, not a first enforcement.
   */
  seenBefore: boolean;
}

/** What an earlier run last saw of the interface now called `name` with this MAC, if anything. */
export type PreviouslySeen = (name: string, mac: string | null) => Map<string, boolean> | null;

export interface Explanation {
  facts: InterfaceFacts;
  evaluations: RuleEvaluation[];
  rule: string | null;
  mode: Mode | null;
  plan: FeaturePlan[];
}

export class Reconciler {
  private readonly links = new Map<number, LinkMessage>();
  private readonly managed = new Map<number, Managed>();
  private readonly pending = new Map<number, Trigger>();
  private readonly backoffTimers = new Map<number, NodeJS.Timeout>();
  private readonly flap: FlapGuard;
  /**
   * Feature-change events our own writes are about to cause, per ifindex. The kernel sends
   * exactly one RTM_NEWLINK (IFLA_EVENT_FEATURES) per ETHTOOL_SFEATURES that changes active
   * features, and the read-back after the write has already verified the result, so each is
   * skipped once. Cleared whenever events may have been lost (resync) or the link went away, so a
   * lost event can never make us skip someone else's change.
   */
  private readonly ownFeatureEvents = new Map<number, number>();
  /** Kept incrementally: status and sd_notify STATUS= ask for it after every batch. */
  private compliantCount = 0;
  private draining = false;
  private drainScheduled = false;
  private stopped = false;

  constructor(
    private policy: Policy,
    private readonly table: FeatureTable,
    private readonly facts: InterfaceFactsSource,
    private readonly observer: ReconcilerObserver,
    private readonly previouslySeen: PreviouslySeen = () => null,
  ) {
    this.flap = new FlapGuard(policy.flapping);
  }

  get currentPolicy(): Policy {
    return this.policy;
  }

  /** Initial state from a full dump: every link is checked before this returns. */
  loadAll(links: LinkMessage[], trigger: Trigger): void {
    this.replaceLinks(links, trigger);
    this.drainAll();
  }

  /** Link events, in kernel order. */
  handleLinks(links: LinkMessage[]): void {
    for (const link of links) {
      if (link.type === 'del') {
        this.forget(link.ifindex, 'deleted');
        continue;
      }
      const previous = this.links.get(link.ifindex);
      this.links.set(link.ifindex, link);
      const trigger = classify(previous, link);
      if (trigger === 'features' && this.consumeOwnFeatureEvent(link.ifindex)) continue;
      this.enqueue(link.ifindex, trigger);
    }
    this.drain();
  }

  /** After lost events: the dump is the truth; returns how many links it held. */
  resync(links: LinkMessage[], reason: string, notices = 1): number {
    this.observer.onRecords([{ kind: 'resync', trigger: 'resync', action: 'resynced', reason, count: links.length, notices }]);
    this.replaceLinks(links, 'resync');
    this.drain();
    return links.length;
  }

  /** Periodic safety sweep over a fresh dump. */
  sweep(links: LinkMessage[]): void {
    this.replaceLinks(links, 'sweep');
    this.drain();
  }

  setPolicy(policy: Policy): void {
    this.policy = policy;
    this.flap.setLimits(policy.flapping);
    for (const managed of this.managed.values()) managed.unenforceable.clear();
    for (const ifindex of this.links.keys()) this.enqueue(ifindex, 'reload');
    this.drainAll();
  }

  /** An operator's explicit request: retries even what was found unenforceable. */
  enforce(ifindex: number | null): void {
    for (const [index, managed] of this.managed) {
      if (ifindex === null || ifindex === index) managed.unenforceable.clear();
    }
    for (const index of this.links.keys()) if (ifindex === null || ifindex === index) this.enqueue(index, 'manual');
    this.drainAll();
  }

  /** Each managed interface's last seen features, for the next run (see LastSeenStore). */
  lastSeen(): SeenInterface[] {
    return [...this.managed.values()].map((managed) => ({
      name: managed.status.name, mac: managed.status.facts.mac, features: Object.fromEntries(managed.lastActive),
    }));
  }

  statuses(): InterfaceStatus[] {
    return [...this.managed.values()].map((managed) => managed.status);
  }

  counts(): { managed: number; compliant: number } {
    return { managed: this.managed.size, compliant: this.compliantCount };
  }

  status(ifindex: number): InterfaceStatus | null {
    return this.managed.get(ifindex)?.status ?? null;
  }

  /** Every known link (managed or not), for name look-ups. */
  findLink(nameOrIndex: string): LinkMessage | null {
    const index = /^\d+$/.test(nameOrIndex) ? Number(nameOrIndex) : null;
    for (const link of this.links.values()) if (link.name === nameOrIndex || link.ifindex === index) return link;
    return null;
  }

  /** Why an interface does (not) match, and what enforcing it would do now. Reads, never writes. */
  explain(link: LinkMessage): Explanation {
    const facts = this.facts.factsFor(link);
    const { rule, evaluations } = matchPolicy(this.policy, facts);
    return {
      facts,
      evaluations,
      rule: rule?.name ?? null,
      mode: rule ? this.modeOf(rule) : null,
      plan: rule ? planFeatures(rule.features, this.table.read(link.name, link.ifindex)) : [],
    };
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.backoffTimers.values()) clearTimeout(timer);
    this.backoffTimers.clear();
    this.pending.clear();
  }

  private consumeOwnFeatureEvent(ifindex: number): boolean {
    const expected = this.ownFeatureEvents.get(ifindex) ?? 0;
    if (expected === 0) return false;
    if (expected === 1) this.ownFeatureEvents.delete(ifindex);
    else this.ownFeatureEvents.set(ifindex, expected - 1);
    return true;
  }

  private replaceLinks(links: LinkMessage[], trigger: Trigger): void {
    this.ownFeatureEvents.clear();
    const present = new Set(links.map((link) => link.ifindex));
    for (const ifindex of [...this.links.keys()]) if (!present.has(ifindex)) this.forget(ifindex, 'deleted');
    for (const link of links) {
      const previous = this.links.get(link.ifindex);
      this.links.set(link.ifindex, link);
      this.enqueue(link.ifindex, previous && previous.name !== link.name ? 'rename' : trigger);
    }
  }

  private enqueue(ifindex: number, trigger: Trigger): void {
    // The first reason wins: a `new` followed by `features` is still a new interface.
    if (!this.pending.has(ifindex)) this.pending.set(ifindex, trigger);
  }

  private drainAll(): void {
    while (this.pending.size > 0 && !this.stopped) this.checkNext();
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      const deadline = Date.now() + SLICE_MS;
      while (this.pending.size > 0 && !this.stopped && Date.now() < deadline) this.checkNext();
    } finally {
      this.draining = false;
      // Also after an unexpected exception: queued work must never wait for the next event.
      if (this.pending.size > 0 && !this.drainScheduled && !this.stopped) {
        this.drainScheduled = true;
        setImmediate(() => {
          this.drainScheduled = false;
          this.drain();
        });
      }
    }
  }

  private checkNext(): void {
    const next = this.pending.entries().next();
    if (next.done) return;
    const [ifindex, trigger] = next.value;
    this.pending.delete(ifindex);
    this.check(ifindex, trigger);
  }

  private forget(ifindex: number, why: 'deleted' | 'unmatched'): void {
    const link = this.links.get(ifindex);
    if (why === 'deleted') {
      this.links.delete(ifindex);
      this.pending.delete(ifindex);
      this.facts.forget(ifindex);
    }
    this.flap.forget(ifindex);
    this.ownFeatureEvents.delete(ifindex);
    const timer = this.backoffTimers.get(ifindex);
    if (timer) clearTimeout(timer);
    this.backoffTimers.delete(ifindex);
    const managed = this.managed.get(ifindex);
    if (managed) {
      if (managed.status.compliant) this.compliantCount--;
      this.managed.delete(ifindex);
      this.observer.onReleased(ifindex, link?.name ?? String(ifindex), why);
    }
  }

  private modeOf(rule: Rule): Mode {
    return rule.mode ?? this.policy.mode;
  }

  private check(ifindex: number, trigger: Trigger): void {
    const link = this.links.get(ifindex);
    if (!link) return;
    const facts = this.facts.factsFor(link);
    let rule: Rule | null;
    try {
      rule = findRule(this.policy, facts); // may read the device part of the facts
    } catch (error) {
      this.reportFailure(error, { ifindex, name: link.name }, 'reading interface facts');
      return;
    }
    let managed = this.managed.get(ifindex);
    if (!rule) {
      if (managed) this.forget(ifindex, 'unmatched');
      return;
    }
    const mode = this.modeOf(rule);
    const firstCheck = !managed || managed.ruleName !== rule.name;
    if (!managed || firstCheck) {
      if (managed?.status.compliant) this.compliantCount--;
      const seen = managed ? null : this.previouslySeen(facts.name, facts.mac);
      managed = {
        status: newStatus(facts, rule, mode), ruleName: rule.name,
        lastActive: seen ?? new Map(), unenforceable: new Set(), seenBefore: seen !== null,
      };
      this.managed.set(ifindex, managed);
    }
    const state = managed;

    let result: ApplyResult;
    try {
      result = applyWanted(this.table, facts.name, ifindex, rule.features, {
        enforce: mode === 'enforce',
        gate: (feature) => {
          if (state.unenforceable.has(feature)) return 'unenforceable';
          return this.flap.mayCorrect(ifindex, feature) ? 'correct' : 'defer';
        },
      });
    } catch (error) {
      this.reportFailure(error, facts, 'enforcing the policy');
      return;
    }
    if (result.changed) this.ownFeatureEvents.set(ifindex, (this.ownFeatureEvents.get(ifindex) ?? 0) + 1);
    this.observer.onRecords(this.recordsFor(state, facts, rule, trigger, result, firstCheck && !state.seenBefore));
    state.seenBefore = false;
    this.updateStatus(state, facts, mode, result);
    this.observer.onChecked(state.status, trigger, result);
  }

  private recordsFor(
    managed: Managed, facts: InterfaceFacts, rule: Rule, trigger: Trigger, result: ApplyResult, firstCheck: boolean,
  ): NewRecord[] {
    const records: NewRecord[] = [];
    for (const outcome of result.outcomes) {
      const { feature, wanted, active } = outcome;
      if (outcome.action === 'none' || outcome.action === 'ignored' || active === null) continue;
      const { driver, pci } = knownDevice(facts); // read only when there is something to record
      const shared = {
        trigger, interface: facts.name, ifindex: facts.ifindex, driver,
        pci: pci ? vendorDevice(pci) : null, rule: rule.name,
        feature, expected: onOff(wanted), observed: onOff(active),
      };
      if (outcome.action === 'unenforceable') {
        if (managed.unenforceable.has(feature)) continue; // recorded once per interface and feature
        managed.unenforceable.add(feature);
        records.push({ ...shared, kind: 'unenforceable', action: 'unenforceable', reason: outcome.reason ?? undefined });
        continue;
      }
      // A correction (or an attempt someone raced) is always a record; a difference left in
      // place only when it is new.
      const corrected = outcome.action === 'enforced' || outcome.action === 'contended';
      const wasAsWanted = managed.lastActive.get(feature) === wanted;
      if (!corrected && !firstCheck && !wasAsWanted) continue;
      // Known from an earlier run but not as wanted then: still not a drift.
      const kind = firstCheck || (managed.seenBefore && !wasAsWanted) ? 'initial' : 'drift';
      const whileAway = managed.seenBefore && wasAsWanted ? `changed while offloadd was not running (last seen ${onOff(wanted)})` : null;
      records.push({
        ...shared, kind, action: outcome.action,
        correctionUs: outcome.action === 'enforced' ? Math.round(result.durationUs) : undefined,
        reason: [whileAway, outcome.reason].filter(Boolean).join('; ') || undefined,
      });
      if (kind === 'drift') {
        managed.status.driftCount++;
        managed.status.lastDrift = new Date().toISOString();
      }
      if (corrected) {
        const backoff = this.flap.noteCorrection(facts.ifindex, feature);
        if (backoff) {
          records.push({
            ...shared, kind: 'flapping', action: 'backoff', count: backoff.count, backoffSec: backoff.backoffSec,
            reason: `corrected ${backoff.count} times within ${this.policy.flapping.windowSec} s; holding corrections back for ${backoff.backoffSec} s`,
          });
        }
      }
      if (outcome.action === 'deferred') this.scheduleBackoffRecheck(facts.ifindex, feature);
    }
    return records;
  }

  private scheduleBackoffRecheck(ifindex: number, feature: string): void {
    const end = this.flap.backoffEnd(ifindex, feature);
    if (end === null || this.backoffTimers.has(ifindex)) return;
    const timer = setTimeout(() => {
      this.backoffTimers.delete(ifindex);
      this.enqueue(ifindex, 'backoff');
      this.drain();
    }, Math.max(0, end - Date.now()) + 5);
    timer.unref();
    this.backoffTimers.set(ifindex, timer);
  }

  private updateStatus(managed: Managed, facts: InterfaceFacts, mode: Mode, result: ApplyResult): void {
    const now = new Date().toISOString();
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
    for (const outcome of result.outcomes) if (outcome.after !== null) managed.lastActive.set(outcome.feature, outcome.after);
  }

  private reportFailure(error: unknown, facts: Partial<InterfaceFacts>, doing: string): void {
    if (error instanceof KernelError && error.vanished) {
      this.observer.onProblem('debug', `Link vanished while ${doing}, ignoring`, facts);
      return;
    }
    this.observer.onProblem('error', `Failed ${doing}: ${(error as Error).message}`, facts, error);
  }
}

function classify(previous: LinkMessage | undefined, link: LinkMessage): Trigger {
  if (!previous) return 'new';
  if (previous.name !== link.name) return 'rename';
  if (link.event === LinkEventReason.features) return 'features';
  if (!previous.up && link.up) return 'up';
  return 'change';
}

function newStatus(facts: InterfaceFacts, rule: Rule, mode: Mode): InterfaceStatus {
  const now = new Date().toISOString();
  return {
    ifindex: facts.ifindex, name: facts.name, facts, rule: rule.name, mode,
    compliant: false, since: now, lastCheck: now, lastDrift: null, driftCount: 0, features: [],
  };
}
