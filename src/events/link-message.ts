/**
 * Decodes rtnetlink link messages (RTM_NEWLINK / RTM_DELLINK) from raw datagrams. Only the few
 * attributes policy matching and event classification need are read; everything else is skipped.
 * Our own parser rather than the `netlink` package's: it is ~100 lines, allocation-light on a hot
 * path that sees every link event of the host, and returns exactly the typed fields we use.
 */

import { asShownName, showName, type NameEscape } from './link-name';

const NLMSG_HEADER_BYTES = 16;
const IFINFOMSG_BYTES = 16;
const RTA_HEADER_BYTES = 4;
const NLA_TYPE_MASK = 0x3fff; // strips NLA_F_NESTED / NLA_F_NET_BYTEORDER

const NLMSG_ERROR = 2;
const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MASTER = 10;
const IFLA_OPERSTATE = 16;
const IFLA_LINKINFO = 18;
const IFLA_INFO_KIND = 1;
const IFLA_EVENT = 44;
const IFLA_PARENT_DEV_NAME = 56;
const IFLA_PARENT_DEV_BUS_NAME = 57;

const IFF_UP = 0x1;

/** IFLA_EVENT values (include/uapi/linux/if_link.h). */
export const LinkEventReason = {
  none: 0,
  reboot: 1,
  /** NETDEV_FEAT_CHANGE: some offload feature changed; the message does not say which. */
  features: 2,
} as const;

const OPERSTATES = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'];

export interface LinkMessage {
  type: 'new' | 'del';
  ifindex: number;
  /** Absent only in malformed messages; such messages are dropped by the parser. */
  name: string;
  up: boolean;
  operstate: string;
  kind: string | null;
  mac: string | null;
  master: number | null;
  /** IFLA_EVENT, when the kernel said why it sent this message. */
  event: number | null;
  /** IFLA_PARENT_DEV_NAME / _BUS_NAME (5.13+): e.g. "0000:3b:00.0" / "pci". */
  parentDevice: string | null;
  parentBus: string | null;
  /**
   * Set when `name` is shown C-escaped (see link-name.ts), and why: its bytes are not UTF-8, or
   * hold an unsafe character or a backslash. The name is still the kernel's (kernelName()).
   */
  nameEscaped?: NameEscape;
}

// Plain indexed reads: Buffer.readUInt16LE/32LE are calls with bounds checks, and this parser
// runs for every link message of the host (~1 KiB each, most of it attributes we skip).
function u16(buffer: Buffer, at: number): number {
  return (buffer[at] as number) | ((buffer[at + 1] as number) << 8);
}

function u32(buffer: Buffer, at: number): number {
  return (
    ((buffer[at] as number) |
      ((buffer[at + 1] as number) << 8) |
      ((buffer[at + 2] as number) << 16) |
      ((buffer[at + 3] as number) << 24)) >>>
    0
  );
}

/** Where the NUL that ends the attribute's string is (or its end). */
function stringEnd(buffer: Buffer, start: number, end: number): number {
  let nul = start;
  while (nul < end && buffer[nul] !== 0) nul++;
  return nul;
}

/** A NUL-terminated attribute (a kind, a bus address: ASCII the kernel chose) as text. */
function cString(buffer: Buffer, start: number, end: number): string {
  return buffer.toString('utf8', start, stringEnd(buffer, start, end));
}

/** IFLA_IFNAME as shown everywhere: the name itself, or C-escaped (see link-name.ts). */
function readName(message: LinkMessage, buffer: Buffer, start: number, end: number): void {
  const { name, escaped } = showName(buffer, start, stringEnd(buffer, start, end));
  message.name = name;
  if (escaped !== null) message.nameEscaped = escaped;
}

/** "00", "01", ... "ff": a MAC is six look-ups, not six toString(16) + padStart + join. */
const HEX_BYTES = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

function macString(buffer: Buffer, start: number, end: number): string | null {
  if (end - start <= 0) return null;
  let mac = HEX_BYTES[buffer[start] as number] as string;
  for (let i = start + 1; i < end; i++) mac += `:${HEX_BYTES[buffer[i] as number] as string}`;
  return mac;
}

function parseLinkInfoKind(buffer: Buffer, start: number, end: number): string | null {
  for (let offset = start; offset + RTA_HEADER_BYTES <= end;) {
    const length = u16(buffer, offset);
    if (length < RTA_HEADER_BYTES || offset + length > end) return null;
    if ((u16(buffer, offset + 2) & NLA_TYPE_MASK) === IFLA_INFO_KIND) {
      return cString(buffer, offset + RTA_HEADER_BYTES, offset + length);
    }
    offset += (length + 3) & ~3;
  }
  return null;
}

function parseLink(
  buffer: Buffer,
  halves: Uint16Array,
  start: number,
  end: number,
  type: 'new' | 'del',
): LinkMessage | null {
  if (end - start < IFINFOMSG_BYTES) return null;
  const message: LinkMessage = {
    type,
    ifindex: u32(buffer, start + 4) | 0,
    name: '',
    up: (u32(buffer, start + 8) & IFF_UP) !== 0,
    operstate: 'unknown',
    kind: null,
    mac: null,
    master: null,
    event: null,
    parentDevice: null,
    parentBus: null,
  };
  // The attribute headers are read as 16-bit words, not through u16(): a link message has ~40
  // attributes, and under --jitless (as the daemon runs) every call and byte load is interpreted.
  for (let offset = start + IFINFOMSG_BYTES; offset + RTA_HEADER_BYTES <= end;) {
    const length = halves[offset >>> 1] as number;
    if (length < RTA_HEADER_BYTES || offset + length > end) break; // truncated: keep what we have
    const attribute = (halves[(offset >>> 1) + 1] as number) & NLA_TYPE_MASK;
    const value = offset + RTA_HEADER_BYTES;
    const valueEnd = offset + length;
    switch (attribute) {
      case IFLA_IFNAME:
        readName(message, buffer, value, valueEnd);
        break;
      case IFLA_ADDRESS:
        message.mac = macString(buffer, value, valueEnd);
        break;
      case IFLA_MASTER:
        if (valueEnd - value >= 4) message.master = u32(buffer, value) || null;
        break;
      case IFLA_OPERSTATE:
        message.operstate = OPERSTATES[buffer[value] ?? 0] ?? 'unknown';
        break;
      case IFLA_LINKINFO:
        message.kind = parseLinkInfoKind(buffer, value, valueEnd);
        break;
      case IFLA_EVENT:
        if (valueEnd - value >= 4) message.event = u32(buffer, value);
        break;
      case IFLA_PARENT_DEV_NAME:
        message.parentDevice = cString(buffer, value, valueEnd);
        break;
      case IFLA_PARENT_DEV_BUS_NAME:
        message.parentBus = cString(buffer, value, valueEnd);
        break;
      default:
        break;
    }
    offset += (length + 3) & ~3;
  }
  return message.ifindex > 0 && message.name !== '' ? message : null;
}

/** The link named `nameOrIndex`, or whose ifindex it is written in decimal (as `ip link` and offloadctl take it). */
export function findLinkByNameOrIndex(links: Iterable<LinkMessage>, nameOrIndex: string): LinkMessage | null {
  const index = /^\d+$/.test(nameOrIndex) ? Number(nameOrIndex) : null;
  const shown = asShownName(nameOrIndex);
  for (const link of links) {
    if (link.name === nameOrIndex || link.name === shown || link.ifindex === index) return link;
  }
  return null;
}

/**
 * The datagram as 16-bit words in the host's order, which is netlink's (attribute headers are
 * 4-aligned in it); copied when the Buffer does not start on an even address.
 */
function halvesOf(buffer: Buffer): Uint16Array {
  if (buffer.byteOffset % 2 === 0) return new Uint16Array(buffer.buffer, buffer.byteOffset, buffer.length >>> 1);
  return new Uint16Array(Uint8Array.prototype.slice.call(buffer).buffer, 0, buffer.length >>> 1);
}

/**
 * Every link message in one datagram (a datagram may hold several). Malformed or foreign
 * messages are skipped, never thrown on: the input comes from the kernel, but a parser bug
 * must cost one message, not the daemon.
 */
export function parseLinkDatagram(buffer: Buffer): LinkMessage[] {
  const links: LinkMessage[] = [];
  const halves = halvesOf(buffer);
  for (let offset = 0; offset + NLMSG_HEADER_BYTES <= buffer.length;) {
    const length = u32(buffer, offset);
    if (length < NLMSG_HEADER_BYTES || offset + length > buffer.length) break;
    const type = u16(buffer, offset + 4);
    if (type === RTM_NEWLINK || type === RTM_DELLINK) {
      const link = parseLink(
        buffer,
        halves,
        offset + NLMSG_HEADER_BYTES,
        offset + length,
        type === RTM_NEWLINK ? 'new' : 'del',
      );
      if (link) links.push(link);
    } else if (type === NLMSG_ERROR) {
      break;
    }
    offset += (length + 3) & ~3;
  }
  return links;
}
