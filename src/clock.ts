/**
 * The daemon's two clocks. Every timer, deadline and rate limit measures with `monotonicMs`, which
 * a step of the wall clock (NTP, an operator, a VM resumed) cannot move; records and messages for
 * people carry wall time, and sequence numbers say their order.
 */

/** Milliseconds on CLOCK_MONOTONIC (since an arbitrary start): for durations and deadlines only. */
export function monotonicMs(): number {
  return performance.now();
}
