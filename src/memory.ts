/**
 * Giving back what a burst of work left resident. Reconciling thousands of interfaces at start
 * grows V8's young generation to its maximum (16 MiB of semi-spaces on Node 24) and glibc's
 * per-thread malloc arenas, and neither shrinks by itself afterwards: V8's memory reducer only
 * starts after a full (mark-compact) collection, which a start-up made of short-lived garbage
 * never needs, and malloc keeps freed arena pages. Measured with 1,000 interfaces, that is
 * ~20 MiB of a ~92 MiB RSS held for the daemon's whole life for nothing.
 *
 * V8 flags (--max-semi-space-size) cannot do it from inside: the heap is sized when the isolate
 * is created, before any script runs, and the daemon is started as `node ENTRY` by the unit, the
 * packages' launchers and the image alike (and capping the young generation for the daemon's
 * whole life costs every burst more scavenges: docs/METRICS.md). V8's documented low-memory
 * notification (`Isolate::LowMemoryNotification()`, through the addon: full collections that
 * shrink the young generation to its minimum and release empty pages) followed by malloc_trim
 * does it after the burst, once, when the daemon is quiet (the caller waits for that); the young
 * generation grows back only under a new burst. A plain forced major GC is cheaper but shrinks
 * the young generation only when V8 finds the recent allocation rate low, which it did in the
 * daemon and did not in a test: not something to rely on.
 */
import { addon } from './addon/binding';

/** Shrinks V8's heap and the native heap to what is live now. Synchronous: call when idle. */
export function releaseBurstMemory(): void {
  addon.releaseHeap();
  addon.trimNativeHeap();
}
