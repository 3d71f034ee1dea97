/**
 * Keeps the daemon from fighting another tool forever. Per interface and feature: after
 * `maxCorrections` corrections within `windowSec`, corrections pause for an exponentially
 * growing back-off (1 s, 2 s, 4 s ... up to `maxBackoffSec`); once no drift has been seen for a
 * whole window, corrections are immediate again. Measured on the monotonic clock: a step of the
 * wall clock neither lengthens nor ends a back-off.
 */
import { monotonicMs } from '../clock';
import type { FlappingLimits } from '../policy/types';

interface FlapState {
  corrections: number[];
  backoffSec: number;
  until: number;
  /** Drift seen (corrected or held back) last, monotonic ms. */
  lastDrift: number;
  heldBack: number;
}

export interface BackoffStarted {
  backoffSec: number;
  /** Drifts seen since the previous back-off decision, corrected or held back. */
  count: number;
  until: number;
}

export class FlapGuard {
  private readonly states = new Map<string, FlapState>();

  constructor(
    private limits: FlappingLimits,
    private readonly now: () => number = monotonicMs,
  ) {}

  setLimits(limits: FlappingLimits): void {
    this.limits = limits;
  }

  /** Whether a drift of this feature may be corrected now; counts it as held back otherwise. */
  mayCorrect(ifindex: number, feature: string): boolean {
    const state = this.states.get(key(ifindex, feature));
    const now = this.now();
    if (!state || now >= state.until) return true;
    state.lastDrift = now;
    state.heldBack++;
    return false;
  }

  /** When the current back-off of this interface ends (monotonic ms), or null when none is running. */
  backoffEnd(ifindex: number, feature: string): number | null {
    const state = this.states.get(key(ifindex, feature));
    return state && state.until > this.now() ? state.until : null;
  }

  /** Notes a correction; returns the back-off it starts, if this correction crossed the limit. */
  noteCorrection(ifindex: number, feature: string): BackoffStarted | null {
    const now = this.now();
    const windowMs = this.limits.windowSec * 1000;
    let state = this.states.get(key(ifindex, feature));
    if (!state || now - state.lastDrift > windowMs) {
      state = { corrections: [], backoffSec: 0, until: 0, lastDrift: now, heldBack: 0 };
      this.states.set(key(ifindex, feature), state);
    }
    state.lastDrift = now;
    state.corrections.push(now);
    while ((state.corrections[0] ?? now) < now - windowMs) state.corrections.shift();
    if (state.corrections.length < this.limits.maxCorrections) return null;

    state.backoffSec = Math.min(state.backoffSec === 0 ? 1 : state.backoffSec * 2, this.limits.maxBackoffSec);
    state.until = now + state.backoffSec * 1000;
    const count = state.corrections.length + state.heldBack;
    state.corrections = [];
    state.heldBack = 0;
    return { backoffSec: state.backoffSec, count, until: state.until };
  }

  forget(ifindex: number): void {
    const prefix = `${ifindex}/`;
    for (const name of this.states.keys()) if (name.startsWith(prefix)) this.states.delete(name);
  }
}

function key(ifindex: number, feature: string): string {
  return `${ifindex}/${feature}`;
}
