/**
 * Keeps every matching interface in policy. Fed link messages (events, dumps), it queues a check
 * per ifindex and, for each check, matches the policy, applies the wanted features and turns the
 * outcome into ledger records and a status. The jobs live in their own modules:
 *
 *   link-table.ts          every known link, and why a message about it is worth a check
 *   work-queue.ts          one pending check per ifindex, drained at once or in time slices
 *   apply.ts               read → set what differs → verify: the steps, for a batch of interfaces
 *   record-decisions.ts    which records a check makes (pure)
 *   managed-interfaces.ts  status and memory of the matched interfaces, the counts
 *   backoff-rechecks.ts    re-checks when a flapping back-off ends
 *   receipts.ts            when each link's latest event was received, until its check takes it
 *   own-feature-events.ts  the feature events our own writes cause, skipped once
 *
 * This class only connects them, in `check()`.
 */
import { KernelError } from '../errors';
import type { LinkMessage } from '../events/link-message';
import { describeNameEscape } from '../events/link-name';
import { linkFactsOf, UNKNOWN_DEVICE, type FactsSource } from '../facts/interface-facts';
import { vendorDevice } from '../facts/pci';
import type { DeviceFacts, InterfaceFacts } from '../facts/types';
import type { ChangeIntent } from '../ledger/intents';
import type { SeenInterface } from '../ledger/last-seen';
import type { Trigger } from '../ledger/record';
import { findRule, matchPolicy, NEEDS_DEVICE, type RuleEvaluation } from '../policy/match';
import type { Mode, Policy, Rule } from '../policy/types';
import { changeIntents } from './change-intents';
import {
  finishApply,
  prepareApply,
  readAll,
  stateAfterWrite,
  writeAll,
  type ApplyOptions,
  type ApplyResult,
  type FeatureWrite,
  type PreparedApply,
} from './apply';
import { BackoffRechecks } from './backoff-rechecks';
import type { FeatureAccess, FeatureSnapshot, FeatureTarget } from './feature-state';
import { FlapGuard } from './flapping';
import { LinkTable } from './link-table';
import { ManagedInterfaces, type InterfaceStatus, type ManagedInterface } from './managed-interfaces';
import { OwnFeatureEvents } from './own-feature-events';
import { planFeatures, type FeaturePlan } from './plan';
import {
  attachActors,
  decideRecords,
  flappingRecord,
  wantsActor,
  type CheckContext,
  type RecordActors,
} from './record-decisions';
import { Receipts } from './receipts';
import type { ReconcilerReports } from './report';
import { WorkQueue, type QueuedCheck } from './work-queue';

export type { InterfaceStatus } from './managed-interfaces';
export type { OwnFeatureEventFilter } from './own-feature-events';

export type { CheckReport, Problem, ReconcilerReports, Release } from './report';

/** What an earlier run last saw of the interface now called `name` with this MAC, if anything. */
export type PreviouslySeen = (name: string, mac: string | null) => Map<string, boolean> | null;

/**
 * Who asked to change an interface within the attribution window before `receivedAtNs` (the link
 * event's receipt, CLOCK_MONOTONIC ns), or before now when no event caused the check; null when
 * there is nothing to say (attribution off). Asked only for checks that record a drift.
 */
export type ActorLookup = (ifindex: number, receivedAtNs: bigint | null) => RecordActors | null;

/** A check matched and ready to apply: who, under which rule, and what is remembered of it. */
interface StartedCheck {
  ifindex: number;
  trigger: Trigger;
  facts: InterfaceFacts;
  rule: Rule;
  mode: Mode;
  state: ManagedInterface;
  firstCheck: boolean;
  /** When the link event that caused it was received (monotonicMs()), if one did. */
  receivedAt: number | null;
  /** The same receipt on CLOCK_MONOTONIC (process.hrtime.bigint(), ns), the clock of attribution. */
  receivedAtNs: bigint | null;
}

export interface Explanation {
  facts: InterfaceFacts;
  evaluations: RuleEvaluation[];
  rule: string | null;
  mode: Mode | null;
  plan: FeaturePlan[];
}

export class Reconciler {
  private readonly links = new LinkTable();
  private readonly managed = new ManagedInterfaces();
  private readonly queue = new WorkQueue(
    (ifindex, trigger) => this.check(ifindex, trigger),
    (checks) => this.checkBatch(checks),
  );
  private readonly rechecks = new BackoffRechecks((ifindex) => {
    this.queue.enqueue(ifindex, 'backoff');
    this.queue.drain();
  });
  private readonly flap: FlapGuard;
  /** The feature events our own writes cause; its `filter` is set by the daemon. */
  readonly ownFeatureEvents = new OwnFeatureEvents();
  private readonly receipts = new Receipts();
  /** The escaped name each link was last warned about (one warning per link and name). */
  private readonly escapedNamesWarned = new Map<number, string>();
  /** Names who changed an interface when a check records a drift (set by the daemon), or null. */
  actorLookup: ActorLookup | null = null;
  /** The time of the check or batch under way (see now()). */
  private stamp: string | null = null;
  /**
   * Every rule that matches on `driver` also matches on `pci`, so a link without a device (no
   * PCI id) can be matched without asking for its (virtual) driver: no GDRVINFO for the taps a
   * hypervisor churns under the shipped BCM57508 rule.
   */
  private driverRulesNeedPci: boolean;

  constructor(
    private policy: Policy,
    private readonly table: FeatureAccess,
    private readonly facts: FactsSource,
    private readonly reports: ReconcilerReports,
    private readonly previouslySeen: PreviouslySeen = () => null,
  ) {
    this.flap = new FlapGuard(policy.flapping);
    this.driverRulesNeedPci = driverRulesNeedPci(policy);
  }

  get currentPolicy(): Policy {
    return this.policy;
  }

  /** No rule can match a link without a device: every rule needs a PCI id. */
  get devicelessLinksCannotMatch(): boolean {
    return this.policy.rules.every((rule) => rule.match.pci !== undefined);
  }

  /** Initial state from a full dump: every link is checked before this returns. */
  loadAll(links: LinkMessage[], trigger: Trigger): void {
    this.replaceLinks(links, trigger);
    this.queue.drainAll();
  }

  /** Link events, in kernel order, received at `receivedAtNs` (process.hrtime.bigint()). */
  handleLinks(links: LinkMessage[], receivedAtNs = process.hrtime.bigint()): void {
    for (const link of links) {
      if (link.type === 'del') {
        this.forget(link.ifindex, 'deleted');
        continue;
      }
      this.receipts.note(link.ifindex, receivedAtNs);
      this.noteEscapedName(link);
      const trigger = this.links.update(link);
      if (trigger === 'features' && this.ownFeatureEvents.consume(link.ifindex)) continue;
      this.queue.enqueue(link.ifindex, trigger);
    }
    this.queue.drain();
  }

  /** After lost events: the dump is the truth; returns how many links it held. */
  resync(links: LinkMessage[], reason: string, notices = 1): number {
    this.reports.recorded([
      { event: 'resync', trigger: 'resync', action: 'resynced', reason, interfaces: links.length, notices },
    ]);
    this.replaceLinks(links, 'resync');
    this.queue.drain();
    return links.length;
  }

  /** Periodic safety sweep over a fresh dump. */
  sweep(links: LinkMessage[]): void {
    this.replaceLinks(links, 'sweep');
    this.queue.drain();
  }

  setPolicy(policy: Policy): void {
    this.policy = policy;
    this.driverRulesNeedPci = driverRulesNeedPci(policy);
    this.flap.setLimits(policy.flapping);
    this.managed.forgetUnenforceable(null);
    for (const ifindex of this.links.ifindexes()) this.queue.enqueue(ifindex, 'reload');
    this.queue.drainAll();
  }

  /**
   * An operator's explicit request: retries even what was found unenforceable, and corrects now
   * what a flapping back-off holds back (the operator has presumably dealt with the other writer).
   */
  enforce(ifindex: number | null): void {
    this.managed.forgetUnenforceable(ifindex);
    for (const index of this.links.ifindexes()) {
      if (ifindex !== null && ifindex !== index) continue;
      this.flap.forget(index);
      this.rechecks.cancel(index);
    }
    for (const index of this.links.ifindexes())
      if (ifindex === null || ifindex === index) this.queue.enqueue(index, 'manual');
    this.queue.drainAll();
  }

  statuses(): InterfaceStatus[] {
    return this.managed.statuses();
  }

  /** Each managed interface's last seen features, for the next run (see LastSeenStore). */
  lastSeen(): SeenInterface[] {
    return this.managed.lastSeen();
  }

  counts(): { managed: number; compliant: number } {
    return this.managed.counts();
  }

  status(ifindex: number): InterfaceStatus | null {
    return this.managed.get(ifindex)?.status ?? null;
  }

  /** Every known link (managed or not), for name look-ups. */
  findLink(nameOrIndex: string): LinkMessage | null {
    return this.links.find(nameOrIndex);
  }

  /** Why an interface does (not) match, and what enforcing it would do now. Reads, never writes. */
  explain(link: LinkMessage): Explanation {
    const facts = { ...linkFactsOf(link), ...this.deviceOrUnknown(link) };
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
    this.queue.stop();
    this.rechecks.cancelAll();
  }

  private replaceLinks(links: LinkMessage[], trigger: Trigger): void {
    this.ownFeatureEvents.forget(null);
    for (const link of links) this.noteEscapedName(link);
    const { gone, present } = this.links.replace(links, trigger);
    for (const ifindex of gone) this.forget(ifindex, 'deleted');
    for (let i = 0; i < present.length; i++) {
      const check = present[i] as QueuedCheck; // no array destructuring per link (see checkBatch)
      this.queue.enqueue(check[0], check[1]);
    }
  }

  private forget(ifindex: number, why: 'deleted' | 'unmatched'): void {
    const link = this.links.get(ifindex);
    if (why === 'deleted') {
      this.links.delete(ifindex);
      this.queue.remove(ifindex);
      this.facts.forget(ifindex);
      this.receipts.forget(ifindex);
      this.escapedNamesWarned.delete(ifindex);
    }
    this.flap.forget(ifindex);
    this.ownFeatureEvents.forget(ifindex);
    this.rechecks.cancel(ifindex);
    if (this.managed.release(ifindex)) this.reports.released({ ifindex, name: link?.name ?? String(ifindex), why });
  }

  /** A name shown escaped (not UTF-8, ...) is worth one warning per link and name, saying how it is shown. */
  private noteEscapedName(link: LinkMessage): void {
    if (link.nameEscaped === undefined || this.escapedNamesWarned.get(link.ifindex) === link.name) return;
    this.escapedNamesWarned.set(link.ifindex, link.name);
    const facts = { ifindex: link.ifindex, name: link.name };
    this.reports.problem({ level: 'warning', message: describeNameEscape(link.name, link.nameEscaped), facts });
  }

  private modeOf(rule: Rule): Mode {
    return rule.mode ?? this.policy.mode;
  }

  /** Match → apply → decide records → remember → report, for one link: a batch of one. */
  private check(ifindex: number, trigger: Trigger): void {
    this.checkBatch([[ifindex, trigger]]);
  }

  /**
   * Match → apply → decide records → remember → report, for each link. Every read is made, then
   * every write that is needed: pipelined in one request each when there are several (start-up,
   * resync, bursts), one by one otherwise (see readAll). One timestamp for all.
   */
  private checkBatch(checks: QueuedCheck[]): void {
    this.stamp = null;
    const starts: StartedCheck[] = [];
    // Indexed loops and tuple reads over a check's arrays: this code runs a few times per event
    // and is rarely optimised, and there a for-of or an array destructuring allocates an
    // iterator and a result object per element.
    for (let c = 0; c < checks.length; c++) {
      const check = checks[c] as QueuedCheck;
      const started = this.start(check[0], check[1]);
      if (started) starts.push(started);
    }
    if (starts.length === 0) return;
    const table = this.table;
    const begun = process.hrtime.bigint();
    const targets: FeatureTarget[] = starts.map((started) => ({ name: started.facts.name, ifindex: started.ifindex }));
    const befores = readAll(table, targets);
    const prepared = new Array<PreparedApply | null>(starts.length).fill(null);
    const writes: FeatureWrite[] = [];
    const writers: number[] = [];
    for (let i = 0; i < starts.length; i++) {
      const started = starts[i] as StartedCheck;
      const before = befores[i] as FeatureSnapshot | Error;
      if (before instanceof Error) {
        this.reportFailure(before, started.facts, 'enforcing the policy');
        continue;
      }
      const plan = prepareApply(before, started.rule.features, this.applyOptions(started), begun);
      prepared[i] = plan;
      if (plan.changes.length > 0) {
        writes.push({ target: targets[i] as FeatureTarget, changes: plan.changes, before });
        writers.push(i);
      }
    }
    const afters = new Array<FeatureSnapshot | null>(starts.length).fill(null);
    const writeErrors = new Array<KernelError | null>(starts.length).fill(null);
    if (writes.length > 0 && this.reports.changing) {
      const intents: ChangeIntent[] = [];
      for (let w = 0; w < writes.length; w++)
        changeIntents(starts[writers[w] as number] as StartedCheck, (writes[w] as FeatureWrite).changes, intents);
      this.reports.changing(intents);
    }
    const answers = writes.length > 0 ? writeAll(table, writes) : [];
    for (let w = 0; w < answers.length; w++) {
      const i = writers[w] as number;
      const started = starts[i] as StartedCheck;
      const answer = answers[w];
      try {
        if (answer instanceof Error) {
          // A refused write is an outcome (read back what is now); a vanished link or a bug is not.
          if (!(answer instanceof KernelError) || answer.vanished) throw answer;
          writeErrors[i] = answer;
          afters[i] = table.read(started.facts.name, started.ifindex);
        } else {
          afters[i] = stateAfterWrite(table, started.facts.name, started.ifindex, answer ?? null, (error) =>
            this.reportUnparsed(error, started.facts),
          );
        }
      } catch (error) {
        prepared[i] = null;
        this.reportFailure(error, started.facts, 'enforcing the policy');
      }
    }
    const ended = process.hrtime.bigint();
    for (let i = 0; i < starts.length; i++) {
      const plan = prepared[i];
      if (plan)
        this.finish(
          starts[i] as StartedCheck,
          finishApply(plan, afters[i] ?? null, writeErrors[i] ?? null, ended, starts.length),
        );
    }
  }

  /** The current check's (or batch's) time, ISO: made once, and only when a managed interface needs it. */
  private now(): string {
    return (this.stamp ??= new Date().toISOString());
  }

  /** Match and adopt: null when no rule matches (or the facts could not be read). */
  private start(ifindex: number, trigger: Trigger): StartedCheck | null {
    const link = this.links.get(ifindex);
    if (!link) return null;
    const { receivedAt, receivedAtNs } = this.receipts.take(ifindex);
    // The link message is the link facts: matching needs no copy of it, and most links (a
    // hypervisor's taps) match no rule and end here.
    let device: DeviceFacts | null = null;
    let rule: Rule | null | typeof NEEDS_DEVICE;
    try {
      rule = findRule(this.policy, link);
      if (rule === NEEDS_DEVICE && this.driverRulesNeedPci && this.facts.hasNoDevice?.(link)) {
        // No PCI id, so no device rule can match: decided from the message, no I/O.
        rule = findRule(this.policy, link, UNKNOWN_DEVICE);
      }
      if (rule === NEEDS_DEVICE) {
        device = this.facts.device(link);
        rule = findRule(this.policy, link, device);
      }
      // A managed interface's status and records name its device: read once per ifindex.
      if (rule) device ??= this.facts.device(link);
    } catch (error) {
      this.reportFailure(error, { ifindex, name: link.name }, 'reading interface facts');
      return null;
    }
    if (!rule || !device) {
      // No rule matches (the device is known whenever one does).
      if (this.managed.get(ifindex)) this.forget(ifindex, 'unmatched');
      return null;
    }
    const facts: InterfaceFacts = { ...linkFactsOf(link), ...device };
    let managed = this.managed.get(ifindex);
    const mode = this.modeOf(rule);
    const firstCheck = !managed || managed.ruleName !== rule.name;
    if (!managed || firstCheck)
      managed = this.managed.adopt(
        facts,
        rule,
        mode,
        managed ? null : this.previouslySeen(facts.name, facts.mac),
        this.now(),
      );
    return { ifindex, trigger, facts, rule, mode, state: managed, firstCheck, receivedAt, receivedAtNs };
  }

  private applyOptions(started: StartedCheck): ApplyOptions {
    const { state, ifindex, mode } = started;
    return {
      enforce: mode === 'enforce',
      gate: (feature) => {
        if (state.unenforceable.has(feature)) return 'unenforceable';
        return this.flap.mayCorrect(ifindex, feature) ? 'correct' : 'defer';
      },
    };
  }

  /** Decide records → remember → report. */
  private finish(started: StartedCheck, result: ApplyResult): void {
    const { ifindex, trigger, facts, rule, mode, state, firstCheck, receivedAt, receivedAtNs } = started;
    if (result.changed) this.ownFeatureEvents.expectAfterWrite(ifindex);

    const context: CheckContext = {
      trigger,
      interface: facts.name,
      ifindex,
      driver: facts.driver,
      pci: facts.pci ? vendorDevice(facts.pci) : null,
      rule: rule.name,
      durationUs: result.durationUs,
    };
    const decision = decideRecords(result.outcomes, state, firstCheck, context);
    const records = decision.records;
    for (let c = 0; c < decision.corrected.length; c++) {
      const feature = decision.corrected[c] as string;
      const backoff = this.flap.noteCorrection(ifindex, feature);
      if (!backoff) continue;
      const outcome = result.outcomes.find((candidate) => candidate.feature === feature);
      if (outcome) records.push(flappingRecord(context, outcome, backoff, this.policy.flapping.windowSec));
    }
    if (this.actorLookup && wantsActor(records)) {
      const actors = this.actorLookup(ifindex, receivedAtNs);
      if (actors) attachActors(records, actors);
    }
    for (let d = 0; d < decision.deferred.length; d++) {
      const feature = decision.deferred[d] as string;
      const end = this.flap.backoffEnd(ifindex, feature);
      if (end !== null) this.rechecks.schedule(ifindex, end);
    }
    this.managed.noteCheck(state, facts, mode, result, decision.drifts, decision.newlyUnenforceable, this.now());
    this.reports.checked({ facts, rule: rule.name, mode, trigger, receivedAt, result, records, status: state.status });
  }

  /** A write's reply did not parse: the state was read back instead; worth an error in the log. */
  private reportUnparsed(error: KernelError, facts: Partial<InterfaceFacts>): void {
    this.reports.problem({ level: 'error', message: `${error.message}; read the features back instead`, facts, error });
  }

  /** For explain: a device that vanished meanwhile is shown as unknown. */
  private deviceOrUnknown(link: LinkMessage): DeviceFacts {
    try {
      return this.facts.device(link);
    } catch (error) {
      if (error instanceof KernelError && error.vanished) return UNKNOWN_DEVICE;
      throw error;
    }
  }

  private reportFailure(error: unknown, facts: Partial<InterfaceFacts>, doing: string): void {
    if (error instanceof KernelError && error.vanished) {
      // A link the kernel still has under this ifindex and name did not vanish: it is left
      // unhandled until its next event, which is worth a warning, never a debug line.
      const link = facts.ifindex === undefined ? undefined : this.links.get(facts.ifindex);
      if (link && this.facts.stillPresent?.(link)) {
        const message = `Failed ${doing}: ${error.message}, although the kernel still has this link; left as it is until its next event`;
        this.reports.problem({ level: 'warning', message, facts, error });
        return;
      }
      this.reports.problem({ level: 'debug', message: `Link vanished while ${doing}, ignoring`, facts });
      return;
    }
    this.reports.problem({ level: 'error', message: `Failed ${doing}: ${(error as Error).message}`, facts, error });
  }
}

function driverRulesNeedPci(policy: Policy): boolean {
  return policy.rules.every((rule) => rule.match.driver === undefined || rule.match.pci !== undefined);
}
