/**
 * One ledger record: something an operator may later ask about ("was this NIC ever out of
 * policy, when, what changed it back, for how long?"). One record per feature that differed.
 */
import type { Actor, RecordActor } from '../attribution/actor';

/** What made the daemon look at the interface. */
export type Trigger =
  | 'start' // initial reconcile at daemon start
  | 'new' // a link appeared (hot-plug, re-registration with a new ifindex)
  | 'up' // administratively brought up
  | 'rename'
  | 'features' // the kernel said features changed (IFLA_EVENT_FEATURES)
  | 'change' // any other link change (carrier, master, MAC)
  | 'resync' // link events were lost; everything re-read
  | 'sweep' // periodic safety sweep
  | 'reload' // policy reloaded
  | 'manual' // an operator asked (offloadctl enforce)
  | 'backoff'; // a flapping back-off ended

/** What happened: the record's `event` (journal field OFFLOADD_EVENT). */
export type RecordEvent =
  /** First enforcement of an interface this daemon had not yet brought into policy. */
  | 'initial'
  /** An interface that had been compliant was found out of policy. */
  | 'drift'
  /** A wanted state cannot be enforced on this device (recorded once per interface and feature). */
  | 'unenforceable'
  /** Corrections are backing off because something keeps flipping the feature. */
  | 'flapping'
  /** Link events were lost; every interface was re-read (covers changes no event reported). */
  | 'resync';

export type RecordAction =
  'enforced' | 'contended' | 'reported' | 'failed' | 'unenforceable' | 'deferred' | 'backoff' | 'resynced';

export interface LedgerRecord {
  /** Monotonic across restarts (continues from the last loaded record). */
  seq: number;
  /** ISO 8601, UTC. */
  time: string;
  event: RecordEvent;
  trigger: Trigger;
  action: RecordAction;
  interface?: string;
  ifindex?: number;
  driver?: string | null;
  /** "vvvv:dddd" */
  pci?: string | null;
  rule?: string;
  /** The kernel's name (rx-gro), as `ethtool -k` prints it. */
  feature?: string;
  /** What the policy wants. */
  wanted?: 'on' | 'off';
  /** What the kernel had in effect when the event was found (before any correction). */
  active?: 'on' | 'off';
  /** From the first read to the verified read-back, µs. */
  correctionUs?: number;
  reason?: string;
  /** resync: interfaces re-read. */
  interfaces?: number;
  /** flapping: corrections (and held-back drifts) within the window that started the back-off. */
  corrections?: number;
  /** resync: lost-event notices this one re-read covers (coalesced within an interval). */
  notices?: number;
  /** flapping: the back-off now in force, seconds. */
  backoffSec?: number;
  /**
   * drift, flapping: who asked for the change (the latest request within the attribution window
   * before the kernel's event, never the daemon itself), or `{ none }` when no request came from
   * user space. Absent when attribution is off, or nobody was seen for a drift no event reported.
   */
  actor?: RecordActor;
  /** drift, flapping: when several processes asked within the window, all of them, latest first. */
  actors?: Actor[];
}

/** A record before the ledger stamps `seq` and `time`. */
export type NewRecord = Omit<LedgerRecord, 'seq' | 'time'>;

/** Which check of which interface, under which rule, made a record (every record about one interface has them). */
export type CheckedInterfaceFields = Required<
  Pick<LedgerRecord, 'trigger' | 'interface' | 'ifindex' | 'driver' | 'pci' | 'rule'>
>;

/** Which feature a record is about: as the policy wants it and as the kernel had it. */
export type FeatureFields = Required<Pick<LedgerRecord, 'feature' | 'wanted' | 'active'>>;

const EVENTS: ReadonlySet<string> = new Set<RecordEvent>(['initial', 'drift', 'unenforceable', 'flapping', 'resync']);

/**
 * Records written before API v1 (offloadd 0.1) named the event `kind`, the states `expected` and
 * `observed`, and both counts `count`: read them under today's names, so history survives the
 * upgrade.
 */
function fromLegacyNames(record: Record<string, unknown>): Record<string, unknown> {
  if (!('kind' in record) || 'event' in record) return record;
  const { kind, expected, observed, count, ...rest } = record;
  const renamed: Record<string, unknown> = { ...rest, event: kind };
  if (expected !== undefined) renamed['wanted'] = expected;
  if (observed !== undefined) renamed['active'] = observed;
  if (count !== undefined) renamed[kind === 'resync' ? 'interfaces' : 'corrections'] = count;
  return renamed;
}

/**
 * One ledger line as a record, or why it is not one. Valid JSON is not enough: `null`, `{}` or a
 * record without a positive integer `seq`, a parseable `time` and a known `event` would break
 * history queries and sequence numbering, so such lines are skipped (with a warning) like a torn one.
 */
export function parseRecord(line: string): { record: LedgerRecord } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { problem: 'not JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { problem: 'not a JSON object' };
  const record = fromLegacyNames(value as Record<string, unknown>) as Partial<Record<keyof LedgerRecord, unknown>>;
  if (typeof record.seq !== 'number' || !Number.isSafeInteger(record.seq) || record.seq < 1)
    return { problem: 'no positive integer "seq"' };
  if (typeof record.time !== 'string' || Number.isNaN(Date.parse(record.time))) return { problem: 'no valid "time"' };
  if (typeof record.event !== 'string' || !EVENTS.has(record.event)) return { problem: 'no known "event"' };
  if (typeof record.trigger !== 'string' || typeof record.action !== 'string')
    return { problem: 'no "trigger" or "action"' };
  for (const key of ['interface', 'feature', 'rule'] as const) {
    if (record[key] !== undefined && typeof record[key] !== 'string') return { problem: `"${key}" is not a string` };
  }
  return { record: record as LedgerRecord };
}
