/**
 * A correction held back by the flapping guard must still happen once the back-off ends, even
 * if no event ever comes: one timer per interface re-queues it then.
 */

import { monotonicMs } from '../clock';

/** Past the back-off's end, so the guard lets the correction through. */
const RECHECK_MARGIN_MS = 5;

export class BackoffRechecks {
  private readonly timers = new Map<number, NodeJS.Timeout>();

  constructor(
    private readonly onDue: (ifindex: number) => void,
    private readonly now: () => number = monotonicMs,
  ) {}

  /** At most one pending re-check per interface: the earliest back-off end (monotonic ms) wins. */
  schedule(ifindex: number, endMs: number): void {
    if (this.timers.has(ifindex)) return;
    const timer = setTimeout(
      () => {
        this.timers.delete(ifindex);
        this.onDue(ifindex);
      },
      Math.max(0, endMs - this.now()) + RECHECK_MARGIN_MS,
    );
    timer.unref();
    this.timers.set(ifindex, timer);
  }

  cancel(ifindex: number): void {
    const timer = this.timers.get(ifindex);
    if (timer) clearTimeout(timer);
    this.timers.delete(ifindex);
  }

  cancelAll(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
