/**
 * The feature-change events the daemon's own writes are about to cause, per ifindex. The kernel
 * sends exactly one RTM_NEWLINK (IFLA_EVENT_FEATURES) per ETHTOOL_SFEATURES that changes active
 * features, and the read-back after the write has already verified the result, so each is
 * skipped once: in the addon when the link event subscription can drop it before it is parsed
 * (the filter), else here. Forgotten whenever events may have been lost (resync) or the link
 * went away, so a lost event can never make us skip someone else's change.
 */

/** Drops the daemon's own feature events before they are delivered (LinkEvents). */
export interface OwnFeatureEventFilter {
  /** False when it cannot (no link monitor): the event is then skipped by OwnFeatureEvents. */
  expect(ifindex: number): boolean;
  forget(ifindex: number | null): void;
}

export class OwnFeatureEvents {
  private readonly expected = new Map<number, number>();
  /** Set by the daemon when its link event subscription can drop the events itself. */
  filter: OwnFeatureEventFilter | null = null;

  /** A write of ours changed active features on `ifindex`: its event is ours. */
  expectAfterWrite(ifindex: number): void {
    if (this.filter?.expect(ifindex)) return;
    this.expected.set(ifindex, (this.expected.get(ifindex) ?? 0) + 1);
  }

  /** True (and counted off) when a feature event of `ifindex` is one our write caused. */
  consume(ifindex: number): boolean {
    const expected = this.expected.get(ifindex) ?? 0;
    if (expected === 0) return false;
    if (expected === 1) this.expected.delete(ifindex);
    else this.expected.set(ifindex, expected - 1);
    return true;
  }

  /** One link's expectations (null: every link's) are no longer to be trusted. */
  forget(ifindex: number | null): void {
    if (ifindex === null) this.expected.clear();
    else this.expected.delete(ifindex);
    this.filter?.forget(ifindex);
  }
}
