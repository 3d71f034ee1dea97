/**
 * When the latest link event of each link was received, kept until the check it causes takes it
 * into its report (exposure and correction latency) and its actor lookup (attribution's window):
 * taken once, so a later check that no event caused has none.
 */

/** A link event's receipt on both clocks the outputs use. */
export interface Receipt {
  /** monotonicMs(): the metrics' latencies. */
  receivedAt: number | null;
  /** process.hrtime.bigint() (CLOCK_MONOTONIC, ns): the clock attribution stamps requests with. */
  receivedAtNs: bigint | null;
}

export class Receipts {
  private readonly receivedAt = new Map<number, number>();
  private readonly receivedAtNs = new Map<number, bigint>();

  note(ifindex: number, receivedAt: number, receivedAtNs: bigint): void {
    this.receivedAt.set(ifindex, receivedAt);
    this.receivedAtNs.set(ifindex, receivedAtNs);
  }

  take(ifindex: number): Receipt {
    const receipt = {
      receivedAt: this.receivedAt.get(ifindex) ?? null,
      receivedAtNs: this.receivedAtNs.get(ifindex) ?? null,
    };
    this.forget(ifindex);
    return receipt;
  }

  forget(ifindex: number): void {
    this.receivedAt.delete(ifindex);
    this.receivedAtNs.delete(ifindex);
  }
}
