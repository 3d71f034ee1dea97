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
 * packages' launchers and the image alike. V8's last-resort collection (what it does on a
 * low-memory notification: full collections that shrink the young generation to its minimum and
 * release empty pages) followed by malloc_trim does it after the burst: 40–100 ms with 1,000
 * interfaces, once, when the daemon is quiet (the caller waits for that); the young generation
 * grows back only under a new burst. A plain forced major GC is 4× cheaper but shrinks the young
 * generation only when V8 finds the recent allocation rate low, which it did in the daemon and
 * did not in a test: not something to rely on.
 */
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { addon } from './addon/binding';

/** V8's `gc()` (the --expose-gc extension) with the options of V8 ≥ 10. */
type GcFunction = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

let gcFunction: GcFunction | undefined;

/**
 * V8's gc(), taken from a fresh context created while --expose-gc is set: the flag installs the
 * extension in contexts created after it, so the daemon's own global never gets a `gc`.
 */
function exposedGc(): GcFunction {
  if (!gcFunction) {
    v8.setFlagsFromString('--expose-gc');
    gcFunction = vm.runInNewContext('gc') as GcFunction;
  }
  return gcFunction;
}

/** Shrinks V8's heap and the native heap to what is live now. Synchronous: call when idle. */
export function releaseBurstMemory(): void {
  exposedGc()({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  addon.trimNativeHeap();
}
