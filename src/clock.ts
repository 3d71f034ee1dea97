/**
 * The daemon's two clocks. Every timer, deadline and rate limit measures with `monotonicMs`, which
 * a step of the wall clock (NTP, an operator, a VM resumed) cannot move; records and messages for
 * people carry wall time, and sequence numbers say their order.
 */

/**
 * Milliseconds on CLOCK_MONOTONIC (since an arbitrary start): for durations and deadlines only.
 * From process.hrtime rather than performance.now(): the first use of `performance` loads
 * perf_hooks and ten internal modules, ~1 MiB resident for the daemon's whole life.
 */
export function monotonicMs(): number {
  return monotonicMsOf(process.hrtime.bigint());
}

const NS_PER_MS = 1e6;
const MS_PER_S = 1e3;

/** A process.hrtime.bigint() reading (CLOCK_MONOTONIC, ns) as monotonicMs() would give it. */
export function monotonicMsOf(ns: bigint): number {
  return Number(ns) / NS_PER_MS;
}

/** When this process started, in wall-clock milliseconds since the epoch (process_start_time_seconds). */
export function processStartedAtMs(): number {
  return Date.now() - process.uptime() * MS_PER_S;
}
