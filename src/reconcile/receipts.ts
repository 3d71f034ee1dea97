/**
 * When the latest link event of each link was received, kept until the check it causes takes it
 * into its report (exposure and correction latency) and its actor lookup (attribution's window):
 * taken once, so a later check that no event caused has none.
 */

import { monotonicMsOf } from '../clock';

/** A link event's receipt, in the units each output uses (one CLOCK_MONOTONIC reading). */
export interface Receipt {
  /** monotonicMs(): the metrics' latencies. */
  receivedAt: number | null;
  /** process.hrtime.bigint() (ns): the clock attribution stamps requests with. */
  receivedAtNs: bigint | null;
}

export class Receipts {
  private readonly receivedAtNs = new Map<number, bigint>();

  note(ifindex: number, receivedAtNs: bigint): void {
    this.receivedAtNs.set(ifindex, receivedAtNs);
  }

  take(ifindex: number): Receipt {
    const receivedAtNs = this.receivedAtNs.get(ifindex) ?? null;
    this.forget(ifindex);
    return { receivedAt: receivedAtNs === null ? null : monotonicMsOf(receivedAtNs), receivedAtNs };
  }

  forget(ifindex: number): void {
    this.receivedAtNs.delete(ifindex);
  }
}
