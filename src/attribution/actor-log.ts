/**
 * The recent feature-changing requests per interface, to answer "who did it?" when a drift is
 * seen: every actor within a window before the kernel's event, latest first. Bounded: at most
 * ACTOR_LOG_PER_INTERFACE actors per ifindex and ACTOR_LOG_INTERFACES interfaces (the least
 * recently written one goes first), and nothing older than the longest window anyone asks for
 * matters.
 */
import { NO_USER_SPACE_REQUEST, type Actor, type ActorAnswer } from './actor';

export const ACTOR_LOG_PER_INTERFACE = 32;
export const ACTOR_LOG_INTERFACES = 4096;
const NS_PER_MS = 1_000_000n;

/** Where a window of `windowMs` ending at `endNs` (CLOCK_MONOTONIC nanoseconds) starts. */
export function windowStartNs(endNs: bigint, windowMs: number): bigint {
  return endNs - BigInt(Math.round(windowMs)) * NS_PER_MS;
}

export class ActorLog {
  /** ifindex → actors, oldest first; Map order is the order of the latest write. */
  private readonly byIfindex = new Map<number, Actor[]>();

  constructor(
    private readonly perInterface = ACTOR_LOG_PER_INTERFACE,
    private readonly interfaces = ACTOR_LOG_INTERFACES,
  ) {}

  add(actor: Actor): void {
    if (actor.ifindex === null) return;
    const list = this.byIfindex.get(actor.ifindex) ?? [];
    this.byIfindex.delete(actor.ifindex);
    list.push(actor);
    // Records of one ring buffer arrive in order per CPU, not across CPUs: keep the list sorted.
    for (let i = list.length - 1; i > 0 && BigInt((list[i - 1] as Actor).time) > BigInt((list[i] as Actor).time); i--) {
      [list[i - 1], list[i]] = [list[i] as Actor, list[i - 1] as Actor];
    }
    if (list.length > this.perInterface) list.splice(0, list.length - this.perInterface);
    this.byIfindex.set(actor.ifindex, list);
    if (this.byIfindex.size > this.interfaces) {
      const oldest = this.byIfindex.keys().next().value as number;
      this.byIfindex.delete(oldest);
    }
  }

  /**
   * Every actor that asked to change `ifindex` within `windowMs` before `eventNs` (CLOCK_MONOTONIC
   * nanoseconds: when the link event was received), latest first; or the precise "none".
   */
  actorsFor(ifindex: number, eventNs: bigint, windowMs: number): ActorAnswer {
    const from = windowStartNs(eventNs, windowMs);
    const actors = (this.byIfindex.get(ifindex) ?? [])
      .filter((actor) => {
        const time = BigInt(actor.time);
        return time >= from && time <= eventNs;
      })
      .reverse();
    return { actors, none: actors.length === 0 ? NO_USER_SPACE_REQUEST : null };
  }

  /** Forgets an interface that is gone (its ifindex may come back for another device). */
  forget(ifindex: number): void {
    this.byIfindex.delete(ifindex);
  }

  get size(): number {
    let total = 0;
    for (const list of this.byIfindex.values()) total += list.length;
    return total;
  }
}
