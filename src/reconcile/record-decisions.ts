/**
 * Which ledger records one check of one interface makes. Pure: the outcome of the check and
 * what the daemon remembers of the interface in, records and the facts to remember out; the
 * caller applies them (memory, flapping guard, back-off re-checks). Its tests need no kernel.
 */
import { NO_USER_SPACE_REQUEST, type ActorAnswer } from '../attribution/actor';
import type { CheckedInterfaceFields, FeatureFields, NewRecord } from '../ledger/record';
import type { FeatureOutcome } from './apply';
import type { BackoffStarted } from './flapping';
import { onOff } from '../policy/types';

/** What the daemon remembers of one managed interface between checks. */
export interface FeatureMemory {
  /** Active state per feature after the last check: drift = it was as wanted and no longer is. */
  readonly lastActive: ReadonlyMap<string, boolean>;
  /** Features already recorded as unenforceable on this ifindex (one record, no retry loop). */
  readonly unenforceable: ReadonlySet<string>;
  /** `lastActive` came from an earlier run (last-seen.json), not from this one. */
  readonly seenBefore: boolean;
}

/** Who and why, copied into every record. */
export interface CheckContext extends CheckedInterfaceFields {
  /** Duration of the check that made the records, µs. */
  durationUs: number;
}

export interface RecordDecision {
  records: NewRecord[];
  /** To remember as unenforceable (recorded now, never again on this ifindex). */
  newlyUnenforceable: string[];
  /** Corrected (or corrected and raced): each counts toward the flapping guard. */
  corrected: string[];
  /** Held back by a back-off: each needs a re-check when it ends. */
  deferred: string[];
  /** Drift records among `records`. */
  drifts: number;
}

/**
 * `firstCheck`: the first check of this interface under this rule in this run. A difference
 * found then is `initial` unless the interface was seen as wanted in an earlier run (then it was
 * changed while the daemon was not looking: `drift`).
 */
export function decideRecords(
  outcomes: readonly FeatureOutcome[],
  memory: FeatureMemory,
  firstCheck: boolean,
  context: CheckContext,
): RecordDecision {
  const decision: RecordDecision = { records: [], newlyUnenforceable: [], corrected: [], deferred: [], drifts: 0 };
  const fresh = firstCheck && !memory.seenBefore;
  for (let i = 0; i < outcomes.length; i++) {
    const outcome = outcomes[i] as FeatureOutcome;
    const { feature, wanted, active } = outcome;
    if (outcome.action === 'deferred') decision.deferred.push(feature);
    if (outcome.action === 'none' || outcome.action === 'ignored' || active === null) continue;
    const shared = recordBase(context, feature, wanted, active);
    if (outcome.action === 'unenforceable') {
      if (!memory.unenforceable.has(feature)) {
        decision.newlyUnenforceable.push(feature);
        decision.records.push({
          ...shared,
          event: 'unenforceable',
          action: 'unenforceable',
          reason: outcome.reason ?? undefined,
        });
      }
      continue;
    }
    const corrected = outcome.action === 'enforced' || outcome.action === 'contended';
    if (corrected) decision.corrected.push(feature);
    // A correction (or an attempt someone raced) is always a record; a difference left in
    // place only when it is new.
    const wasAsWanted = memory.lastActive.get(feature) === wanted;
    if (!corrected && !fresh && !wasAsWanted) continue;
    // Known from an earlier run but not as wanted then: not a drift either.
    const event = fresh || (memory.seenBefore && !wasAsWanted) ? 'initial' : 'drift';
    const whileAway =
      memory.seenBefore && wasAsWanted ? `changed while offloadd was not running (last seen ${onOff(wanted)})` : null;
    decision.records.push({
      ...shared,
      event,
      action: outcome.action,
      correctionUs: outcome.action === 'enforced' ? Math.round(context.durationUs) : undefined,
      reason: joinReasons(whileAway, outcome.reason),
    });
    if (event === 'drift') decision.drifts++;
  }
  return decision;
}

/** Both reasons, either, or none (undefined: the record has no reason). */
function joinReasons(first: string | null, second: string | null | undefined): string | undefined {
  if (first && second) return `${first}; ${second}`;
  return first || second || undefined;
}

/** The part of every record about one feature that a check makes. */
function recordBase(context: CheckContext, feature: string, wanted: boolean, active: boolean): NewRecordBase {
  return {
    trigger: context.trigger,
    interface: context.interface,
    ifindex: context.ifindex,
    driver: context.driver,
    pci: context.pci,
    rule: context.rule,
    feature,
    wanted: onOff(wanted),
    active: onOff(active),
  };
}

type NewRecordBase = CheckedInterfaceFields & FeatureFields;

/** The record of a back-off the flapping guard started after a correction. */
export function flappingRecord(
  context: CheckContext,
  outcome: FeatureOutcome,
  backoff: BackoffStarted,
  windowSec: number,
): NewRecord {
  return {
    ...recordBase(context, outcome.feature, outcome.wanted, outcome.active ?? !outcome.wanted),
    event: 'flapping',
    action: 'backoff',
    corrections: backoff.count,
    backoffSec: backoff.backoffSec,
    reason: `corrected ${backoff.count} times within ${windowSec} s; holding corrections back for ${backoff.backoffSec} s`,
  };
}

/** The actor fields of a drift or flapping record (see LedgerRecord.actor). */
export type RecordActors = Pick<NewRecord, 'actor' | 'actors'>;

/**
 * What the records of a check say about who changed the interface, from attribution's answer:
 * the latest actor, and all of them when there were several. With none, a check that answers a
 * link event says so precisely; a check without one (sweep, resync, start-up) cannot tell when
 * the change happened, so it claims nothing. Null: nothing to add.
 */
export function recordActors(answer: ActorAnswer, answersEvent: boolean): RecordActors | null {
  const [latest] = answer.actors;
  if (latest === undefined) return answersEvent ? { actor: { none: NO_USER_SPACE_REQUEST } } : null;
  return answer.actors.length > 1 ? { actor: latest, actors: answer.actors } : { actor: latest };
}

/** Adds the actor to every drift and flapping record of a check, in place. */
export function attachActors(records: NewRecord[], actors: RecordActors): void {
  for (const record of records)
    if (record.event === 'drift' || record.event === 'flapping') Object.assign(record, actors);
}

/** True when the check made a record that names its actor (attribution is asked only then). */
export function wantsActor(records: readonly NewRecord[]): boolean {
  return records.some((record) => record.event === 'drift' || record.event === 'flapping');
}
