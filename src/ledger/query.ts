/**
 * What a ledger query asks for and how a record is judged against it: the filters, `since` with
 * its tolerance for a wall clock stepped back, and the raw text a line must hold to be worth
 * parsing. Pure: the Ledger walks memory and files (file-set.ts) and asks these.
 */
import type { LedgerRecord, RecordEvent } from './record';

/**
 * How far back a wall clock may have been stepped for `since` to still find what was written
 * after the step: records stamped up to this long before `since` are looked through.
 */
export const SINCE_CLOCK_STEP_MS = 24 * 60 * 60 * 1000;

export interface LedgerQuery {
  /**
   * Records from the first one stamped at or after it, by sequence number: a record stamped
   * earlier because the wall clock was stepped back after `since` is still in the answer. The
   * search ends at a record stamped more than SINCE_CLOCK_STEP_MS before `since`.
   */
  since?: Date;
  interface?: string;
  feature?: string;
  event?: RecordEvent;
  /** Newest N (after filtering). */
  limit?: number;
}

export interface LedgerQueryResult {
  /** Newest first. */
  records: LedgerRecord[];
  /** Files that could not be read: the answer may be missing older records. */
  warnings: string[];
}

/**
 * `since` over records met newest first (by sequence number). A record stamped before `since` is
 * held back: it is in the answer only if an older record (lower number) is stamped at or after
 * `since`, which means the clock was stepped back in between.
 */
export class SinceScan {
  private heldBack: LedgerRecord[] = [];
  private readonly sinceMs: number | undefined;

  constructor(since: Date | undefined) {
    this.sinceMs = since?.getTime();
  }

  get active(): boolean {
    return this.sinceMs !== undefined;
  }

  judge(record: LedgerRecord): 'take' | 'maybe' | 'end' {
    if (this.sinceMs === undefined) return 'take';
    const stamped = Date.parse(record.time);
    if (stamped >= this.sinceMs) return 'take';
    return stamped < this.sinceMs - SINCE_CLOCK_STEP_MS ? 'end' : 'maybe';
  }

  holdBack(record: LedgerRecord): void {
    this.heldBack.push(record);
  }

  /** A record stamped at or after `since` was met: those held back (newer than it) are in the answer. */
  release(): LedgerRecord[] {
    const released = this.heldBack;
    this.heldBack = [];
    return released;
  }
}

export function matches(record: LedgerRecord, query: LedgerQuery): boolean {
  return (
    (query.interface === undefined || record.interface === query.interface) &&
    (query.feature === undefined || record.feature === query.feature) &&
    (query.event === undefined || record.event === query.event)
  );
}

/**
 * `"interface":"up0"` and the like, as JSON.stringify writes them, for the query's filters: a
 * line must hold one of each group. (Lines from before API v1 say "kind" for "event".)
 */
export function rawNeedles(query: LedgerQuery): string[][] {
  const needles: string[][] = [];
  for (const key of ['interface', 'feature', 'event'] as const) {
    const value = query[key];
    if (value === undefined) continue;
    const names = key === 'event' ? ['event', 'kind'] : [key];
    needles.push(names.map((name) => `${JSON.stringify(name)}:${JSON.stringify(value)}`));
  }
  return needles;
}
