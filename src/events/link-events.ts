/**
 * The kernel's link events as a typed stream. Owns the multicast rtnetlink subscription (through
 * the addon) and turns a lost-events condition into a `resync` call: the consumer must then
 * re-read every link, because it cannot know what it missed.
 */
import { addon, type NativeLinkMonitor } from '../addon/binding';
import { errnoName } from '../addon/errno';
import { parseLinkDatagram, type LinkMessage } from './link-message';

/** NetworkManager uses 8 MiB; forced with SO_RCVBUFFORCE (we hold CAP_NET_ADMIN). */
export const DEFAULT_RECEIVE_BUFFER_BYTES = 8 * 1024 * 1024;
/** Below one page the kernel rounds up anyway (SOCK_MIN_RCVBUF); smaller requests are mistakes. */
export const MIN_RECEIVE_BUFFER_BYTES = 4096;
/**
 * The kernel doubles the request into an int and caps it at INT_MAX/2 first; 1 GiB is far past
 * any burst (8 MiB holds ~10,000 link messages) and well inside that range.
 */
export const MAX_RECEIVE_BUFFER_BYTES = 1024 * 1024 * 1024;
/**
 * Receive buffer one link event may take: a veth's RTM_NEWLINK notification takes 2,304 bytes
 * (/proc/net/netlink's Rmem over 100 of them); a NIC with more attributes takes more.
 */
export const LINK_EVENT_BUFFER_BYTES = 4096;
/** deliverPending() reads at most this many wake-ups' worth (4,096 datagrams each): a full 1 GiB buffer. */
const MAX_PENDING_ROUNDS = 256;

/** Throws RangeError unless `bytes` is an integer in [MIN, MAX]_RECEIVE_BUFFER_BYTES. */
export function checkReceiveBufferBytes(bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < MIN_RECEIVE_BUFFER_BYTES || bytes > MAX_RECEIVE_BUFFER_BYTES) {
    throw new RangeError(
      `the netlink receive buffer must be a whole number of bytes from ${MIN_RECEIVE_BUFFER_BYTES} to ${MAX_RECEIVE_BUFFER_BYTES}, not ${String(bytes)}`,
    );
  }
}

export interface LinkEventHandlers {
  onLinks(links: LinkMessage[]): void;
  /** Events were lost (`ENOBUFS`) or the socket failed and was reopened. */
  onResync(reason: string): void;
  /** A handler threw: reported rather than allowed to unwind into the addon. */
  onHandlerError(error: unknown): void;
}

export class LinkEvents {
  private monitor: NativeLinkMonitor | null = null;
  private droppingDeviceless = false;
  private deliveries = 0;

  constructor(
    private readonly handlers: LinkEventHandlers,
    private receiveBufferBytes = DEFAULT_RECEIVE_BUFFER_BYTES,
  ) {
    checkReceiveBufferBytes(receiveBufferBytes);
  }

  /**
   * Makes room for `events` link events that will queue up while the daemon cannot read (its
   * start-up pass causes one feature event per interface it writes, read only after the pass):
   * an overflow would cost a resync, a full re-read and re-check of every link. Never shrinks.
   */
  makeRoomFor(events: number): void {
    const wanted = Math.min(MAX_RECEIVE_BUFFER_BYTES, events * LINK_EVENT_BUFFER_BYTES);
    if (wanted <= this.receiveBufferBytes) return;
    this.receiveBufferBytes = wanted;
    this.monitor?.setReceiveBuffer(wanted);
  }

  /** Subscribe. Call before dumping links, so no change between dump and subscription is missed. */
  open(): void {
    this.monitor = addon.openLinkMonitor(this.receiveBufferBytes, (errno, datagrams) => this.deliver(errno, datagrams));
    if (this.droppingDeviceless) this.monitor.dropDevicelessLinks(true);
  }

  /**
   * Whether the kernel should drop the events of links without a device (taps, veths, bridges)
   * before they reach the daemon: right when no rule can match such a link (every rule needs a
   * PCI id) and the kernel names parent devices (5.13+). A hypervisor's tap churn then costs no
   * wake-up at all. Returns true when the events were being dropped and no longer are: the
   * caller must re-read the links, since it missed what happened to those meanwhile.
   */
  dropDevicelessLinks(on: boolean): boolean {
    const wasDropping = this.droppingDeviceless;
    this.droppingDeviceless = on;
    this.monitor?.dropDevicelessLinks(on);
    return wasDropping && !on;
  }

  /**
   * The daemon's own write just changed this link's features: the one feature event the kernel
   * sends for it is dropped in the addon, never parsed (see the reconciler's own-event rule).
   * False when there is no subscription to drop it from (the caller keeps count itself).
   */
  expectOwnFeatureEvent(ifindex: number): boolean {
    if (!this.monitor) return false;
    this.monitor.expectOwnFeatureEvent(ifindex);
    return true;
  }

  /** The link went away (`ifindex`) or events may have been lost (null): its expectations go. */
  forgetOwnFeatureEvents(ifindex: number | null): void {
    if (ifindex === null) this.monitor?.forgetOwnFeatureEvents();
    else this.monitor?.forgetOwnFeatureEvents(ifindex);
  }

  /**
   * Delivers every event queued now, before this returns (as wake-ups would, bounded), so that
   * what comes after is known to have been sent after this moment.
   */
  deliverPending(): void {
    for (let rounds = 0; rounds < MAX_PENDING_ROUNDS && this.monitor?.deliverPending(); rounds++);
  }

  /** How many times the kernel woke the daemon with link events (or an error) so far. */
  get wakeups(): number {
    return this.deliveries;
  }

  get droppingDevicelessLinks(): boolean {
    return this.droppingDeviceless;
  }

  /** The buffer the kernel actually granted (it doubles the request for bookkeeping). */
  grantedReceiveBufferBytes(): number {
    return this.monitor ? this.monitor.receiveBufferBytes() : 0;
  }

  close(): void {
    this.monitor?.close();
    this.monitor = null;
  }

  private deliver(errno: number, datagrams: Buffer[]): void {
    this.deliveries++;
    try {
      if (errno === 0) {
        const links: LinkMessage[] = [];
        for (const datagram of datagrams) for (const link of parseLinkDatagram(datagram)) links.push(link);
        if (links.length > 0) this.handlers.onLinks(links);
        return;
      }
      const name = errnoName(errno);
      if (name === 'ENOBUFS') {
        this.handlers.onResync('netlink receive buffer overflowed (ENOBUFS): link events were lost');
        return;
      }
      // Any other socket error: start over with a fresh subscription, then re-read everything.
      this.close();
      this.open();
      this.handlers.onResync(`netlink socket failed (${name}); resubscribed`);
    } catch (error) {
      try {
        this.handlers.onHandlerError(error);
      } catch {
        // Nothing sensible is left to do; the addon must not see an exception.
      }
    }
  }
}

/** Every link on the host (in this network namespace), read fresh from the kernel. */
export function dumpLinks(): LinkMessage[] {
  const links: LinkMessage[] = [];
  for (const datagram of addon.dumpLinks()) for (const link of parseLinkDatagram(datagram)) links.push(link);
  return links;
}

/** The link that has `ifindex` now, read fresh from the kernel, or null when none has it. */
export function readLink(ifindex: number): LinkMessage | null {
  const datagram = addon.getLink(ifindex);
  return datagram ? (parseLinkDatagram(datagram)[0] ?? null) : null;
}
