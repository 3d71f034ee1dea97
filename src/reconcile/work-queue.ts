/**
 * Links waiting for a check, one entry per ifindex (a burst of events for one link is one
 * check), drained either at once (start-up, reload, enforce: the caller waits for the outcome)
 * or in time slices that yield to the event loop, so one long burst never starves the API or
 * the watchdog.
 */
import type { Trigger } from '../ledger/record';

/** How long one drain may hold the event loop before yielding. */
export const SLICE_MS = 20;

export class WorkQueue {
  private readonly pending = new Map<number, Trigger>();
  private draining = false;
  private drainScheduled = false;
  private stopped = false;

  constructor(
    private readonly check: (ifindex: number, trigger: Trigger) => void,
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
      const deadline = Date.now() + this.sliceMs;
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

  stop(): void {
    this.stopped = true;
    this.pending.clear();
  }

  private checkNext(): void {
    const next = this.pending.entries().next();
    if (next.done) return;
    const [ifindex, trigger] = next.value;
    this.pending.delete(ifindex);
    this.check(ifindex, trigger);
  }
}
