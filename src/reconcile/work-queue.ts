/**
 * Links waiting for a check, one entry per ifindex (a burst of events for one link is one
 * check), drained either at once (start-up, reload, enforce: the caller waits for the outcome)
 * or in time slices that yield to the event loop, so one long burst never starves the API or
 * the watchdog. When more than one link waits, they are handed over as one batch (up to
 * BATCH_MAX), so the kernel requests for all of them can be pipelined.
 */
import { monotonicMs } from '../clock';
import type { Trigger } from '../ledger/record';

/** How long one drain may hold the event loop before yielding. */
export const SLICE_MS = 20;
/**
 * The most checks handed over at once: enough to amortise a batch's fixed costs, few enough that
 * one batch stays well inside a time slice (~40 µs per interface).
 */
export const BATCH_MAX = 256;

export type QueuedCheck = [ifindex: number, trigger: Trigger];

export class WorkQueue {
  private readonly pending = new Map<number, Trigger>();
  private draining = false;
  private drainScheduled = false;
  private stopped = false;

  constructor(
    private readonly check: (ifindex: number, trigger: Trigger) => void,
    /** Several checks at once; without it, each is checked alone. */
    private readonly checkBatch: ((checks: QueuedCheck[]) => void) | null = null,
    private readonly sliceMs = SLICE_MS,
  ) {}

  get size(): number {
    return this.pending.size;
  }

  /** The first reason wins: a `new` followed by `features` is still a new interface. */
  enqueue(ifindex: number, trigger: Trigger): void {
    if (!this.stopped && !this.pending.has(ifindex)) this.pending.set(ifindex, trigger);
  }

  remove(ifindex: number): void {
    this.pending.delete(ifindex);
  }

  /** Checks everything queued before returning. */
  drainAll(): void {
    while (this.pending.size > 0 && !this.stopped) this.checkNext();
  }

  /** Checks for one time slice, then continues from the event loop. */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      const deadline = monotonicMs() + this.sliceMs;
      while (this.pending.size > 0 && !this.stopped && monotonicMs() < deadline) this.checkNext();
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

  stop(): void {
    this.stopped = true;
    this.pending.clear();
  }

  private checkNext(): void {
    if (this.checkBatch && this.pending.size > 1) {
      const batch: QueuedCheck[] = [];
      for (const entry of this.pending) {
        batch.push(entry);
        if (batch.length === BATCH_MAX) break;
      }
      // Indexed, tuples read by position: an array destructuring allocates an iterator in the
      // code V8 leaves unoptimised, and this runs once per link of a burst.
      for (let i = 0; i < batch.length; i++) this.pending.delete((batch[i] as QueuedCheck)[0]);
      this.checkBatch(batch);
      return;
    }
    const next = this.pending.entries().next();
    if (next.done) return;
    const ifindex = next.value[0];
    this.pending.delete(ifindex);
    this.check(ifindex, next.value[1]);
  }
}
