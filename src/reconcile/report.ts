/**
 * What the reconciler tells the rest of the daemon: one typed report per check, and the few
 * other things that happen to links (a release, a problem, records made outside a check). Every
 * output (ledger queue, journal, metrics, API watch, last-seen) reads these same objects, so a
 * field added here, or to the records they carry, reaches all of them.
 */
import type { InterfaceFacts } from '../facts/types';
import type { ChangeIntent } from '../ledger/intents';
import type { NewRecord, Trigger } from '../ledger/record';
import type { Mode } from '../policy/types';
import type { ApplyResult } from './apply';
import type { InterfaceStatus } from './managed-interfaces';

/** One check of a managed interface. */
export interface CheckReport {
  facts: InterfaceFacts;
  rule: string;
  mode: Mode;
  trigger: Trigger;
  /**
   * When the link event that caused the check was received (monotonicMs()), or null
   * when no event did (start-up, sweep, resync, reload, back-off, an operator).
   */
  receivedAt: number | null;
  result: ApplyResult;
  /** The ledger records the check made, in order (possibly none). */
  records: NewRecord[];
  /** The interface's status after the check. */
  status: InterfaceStatus;
}

/** An interface stopped being managed: deleted, or no longer matched by any rule. */
export interface Release {
  ifindex: number;
  name: string;
  why: 'deleted' | 'unmatched';
}

/** A link vanished while being handled (debug), something to know about a link (warning), or a call failed (error). */
export interface Problem {
  level: 'debug' | 'warning' | 'error';
  message: string;
  facts: Partial<InterfaceFacts>;
  error?: unknown;
}

/** Where the reconciler's reports go (the daemon publishes them on its stream). Synchronous. */
export interface ReconcilerReports {
  checked(report: CheckReport): void;
  /** Records made outside a check (a resync's), to make durable and report, in order. */
  recorded(records: NewRecord[]): void;
  /** A batch's changes, just before they are asked of the kernel (the ledger writes a pass's ahead). */
  changing?(changes: ChangeIntent[]): void;
  released(release: Release): void;
  problem(problem: Problem): void;
}
