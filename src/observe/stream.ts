/**
 * The daemon's one outward stream. Every output the daemon has (the ledger queue, the journal,
 * metrics, the API's watch clients, sd_notify status, last-seen) is a sink: a set of handlers
 * for the events it cares about, subscribed in one place (src/run-daemon.ts) and called in the
 * order subscribed, synchronously. What happens is published once, as typed data; no output
 * rebuilds it from another's notifications.
 */
import type { LedgerHealth } from '../ledger/ledger';
import type { LedgerRecord, NewRecord } from '../ledger/record';
import type { PolicyError } from '../errors';
import type { Policy } from '../policy/types';
import type { CheckReport, Problem, Release } from '../reconcile/report';

export type { CheckReport, Problem, Release } from '../reconcile/report';

/** A policy came into force, or a reload was refused (the running one stays). */
export type PolicyReport =
  | { result: 'loaded' | 'reloaded'; policy: Policy }
  | { result: 'rejected'; error: PolicyError }
  | { result: 'failed'; error: Error };

/** The ledger stopped or started being writable again, or has something to say. */
export type LedgerReport =
  | { health: 'unwritable'; status: LedgerHealth }
  | { health: 'writable'; status: LedgerHealth; since: string; written: number }
  | { health: 'warning'; message: string };

export interface StreamEvents {
  /** One check of a managed interface. */
  checked: CheckReport;
  /** Records made outside a check (a resync's): for the ledger queue. */
  recorded: NewRecord[];
  released: Release;
  problem: Problem;
  /** A pass over the links ended (start-up, sweep, resync), even one that checked nothing managed. */
  passCompleted: { trigger: 'start' | 'sweep' | 'resync' };
  /** Records on disk (or held while the ledger cannot be written), in order. */
  durable: LedgerRecord[];
  policy: PolicyReport;
  ledger: LedgerReport;
}

export type StreamEvent = keyof StreamEvents;

/** What one output wants of the stream: a handler per event it cares about. */
export type Sink = { [E in StreamEvent]?: (event: StreamEvents[E]) => void };

export class ReportStream {
  private readonly handlers: { [E in StreamEvent]: Array<(event: StreamEvents[E]) => void> } = {
    checked: [],
    recorded: [],
    released: [],
    problem: [],
    passCompleted: [],
    durable: [],
    policy: [],
    ledger: [],
  };

  /** Adds the sinks, in order: for every event, earlier sinks are called first. */
  subscribe(...sinks: Sink[]): void {
    for (const sink of sinks)
      for (const event of Object.keys(this.handlers) as StreamEvent[]) {
        const handler = sink[event];
        if (handler) (this.handlers[event] as Array<typeof handler>).push(handler.bind(sink));
      }
  }

  publish<E extends StreamEvent>(event: E, data: StreamEvents[E]): void {
    // Indexed, not for-of: this runs a few times per check in code V8 rarely optimises, where
    // each for-of allocates an iterator and a result object per handler.
    const handlers = this.handlers[event];
    for (let i = 0; i < handlers.length; i++) (handlers[i] as (event: StreamEvents[E]) => void)(data);
  }
}
