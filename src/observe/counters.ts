/**
 * What the daemon has done since it started, as `offloadctl status` (and metrics) report it. One
 * place decides which record counts as what, so the counts and the journal agree: `drifts` is
 * the number of drift records, i.e. of `MESSAGE_ID=<drift>` entries.
 */
import type { LedgerRecord } from '../ledger/record';
import type { Sink } from './stream';

export interface EventCounts {
  resyncs: number;
  drifts: number;
  corrections: number;
  unenforceable: number;
  /** Writes the kernel refused and checks that failed for another reason than a vanished link. */
  failures: number;
  reloads: number;
}

export class EventCounters {
  private readonly counts: EventCounts = {
    resyncs: 0,
    drifts: 0,
    corrections: 0,
    unenforceable: 0,
    failures: 0,
    reloads: 0,
  };
  /** Not in EventCounts (the API's `counters`): kept apart so `offloadctl status` stays as it is. */
  private rejected = 0;

  /** A record made durable. */
  countRecord(record: LedgerRecord): void {
    if (record.event === 'drift') this.counts.drifts++;
    if (record.event === 'unenforceable') this.counts.unenforceable++;
    if (record.event === 'resync') this.counts.resyncs++;
    if (record.action === 'enforced') this.counts.corrections++;
    // A refused write (EPERM, EBUSY) comes back as an outcome, not an exception: count it too.
    if (record.action === 'failed') this.counts.failures++;
  }

  /** A check that failed outside any record (reading the interface, an unexpected error). */
  countFailure(): void {
    this.counts.failures++;
  }

  countReload(): void {
    this.counts.reloads++;
  }

  /** A reload that was refused (the running policy stayed): for metrics; status shows it in the log. */
  countRejectedReload(): void {
    this.rejected++;
  }

  get rejectedReloads(): number {
    return this.rejected;
  }

  get drifts(): number {
    return this.counts.drifts;
  }

  snapshot(): EventCounts {
    return { ...this.counts };
  }
}

/** The counters as a sink of the daemon's stream: records once durable, failures, reloads. */
export function countersSink(counters: EventCounters): Sink {
  return {
    durable: (records) => {
      for (const record of records) counters.countRecord(record);
    },
    problem: (problem) => {
      if (problem.level === 'error') counters.countFailure();
    },
    policy: (report) => {
      if (report.result === 'reloaded') counters.countReload();
      else if (report.result !== 'loaded') counters.countRejectedReload();
    },
  };
}
