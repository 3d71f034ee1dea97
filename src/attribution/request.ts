/**
 * What a traced request asked for, decoded from its raw bytes: the interface it names (an ifindex,
 * or a name resolved through the caller's link table) and, where the bytes show it, the features
 * and values. Truncated or malformed bytes give a partial answer, never an exception.
 */
import type { KernelRequest } from './record';
import { cString } from './record';

/** include/uapi/linux/ethtool.h: the ioctl set commands the kernel side lets through. */
export const ETHTOOL_IOCTL_SET_COMMANDS: Readonly<Record<number, { name: string; feature: string | null }>> = {
  0x3b: { name: 'ETHTOOL_SFEATURES', feature: null },
  0x2c: { name: 'ETHTOOL_SGRO', feature: 'gro' },
  0x24: { name: 'ETHTOOL_SGSO', feature: 'gso' },
  0x1f: { name: 'ETHTOOL_STSO', feature: 'tso' },
  0x19: { name: 'ETHTOOL_SSG', feature: 'sg' },
  0x17: { name: 'ETHTOOL_STXCSUM', feature: 'tx' },
  0x15: { name: 'ETHTOOL_SRXCSUM', feature: 'rx' },
  0x26: { name: 'ETHTOOL_SFLAGS', feature: null },
  0x22: { name: 'ETHTOOL_SUFO', feature: 'ufo' },
};

const ETHTOOL_MSG_FEATURES_SET = 12;
const NLMSG_HDRLEN = 16;
const GENL_HDRLEN = 4;
const NLA_HDRLEN = 4;
const NLA_TYPE_MASK = 0x3fff;
/** ETHTOOL_A_FEATURES_*, ETHTOOL_A_HEADER_*, ETHTOOL_A_BITSET_* (include/uapi/linux/ethtool_netlink.h). */
const A_FEATURES_HEADER = 1;
const A_FEATURES_WANTED = 3;
const A_HEADER_DEV_INDEX = 1;
const A_HEADER_DEV_NAME = 2;
const A_BITSET_BITS = 3;
const A_BITSET_BITS_BIT = 1;
const A_BITSET_BIT_NAME = 2;
const A_BITSET_BIT_VALUE = 3;

/** The decoded request; fields the bytes did not show are null, and `partial` says why. */
export interface DecodedRequest {
  /** "ethtool-netlink FEATURES_SET", "ioctl ETHTOOL_SGRO", ... */
  request: string;
  ifindex: number | null;
  ifname: string | null;
  /** Feature (kernel or ethtool name) → the value asked for, where the bytes carry names. */
  features: Record<string, boolean>;
  /** Why the answer is incomplete (truncated bytes, an unknown interface), or null. */
  partial: string | null;
}

interface Attribute {
  type: number;
  value: Buffer;
}

/** The attributes in `bytes`; stops quietly at the first one that runs past the end. */
function attributes(bytes: Buffer): { list: Attribute[]; truncated: boolean } {
  const list: Attribute[] = [];
  let at = 0;
  while (at + NLA_HDRLEN <= bytes.length) {
    const length = bytes.readUInt16LE(at);
    if (length < NLA_HDRLEN) return { list, truncated: true };
    if (at + length > bytes.length) return { list, truncated: true };
    list.push({
      type: bytes.readUInt16LE(at + 2) & NLA_TYPE_MASK,
      value: bytes.subarray(at + NLA_HDRLEN, at + length),
    });
    at += (length + 3) & ~3;
  }
  return { list, truncated: at < bytes.length };
}

function decodeNetlink(payload: Buffer, decoded: DecodedRequest): void {
  if (payload.length < NLMSG_HDRLEN + GENL_HDRLEN) {
    decoded.partial = 'the request was too short to name an interface';
    return;
  }
  const declared = payload.readUInt32LE(0);
  const body = payload.subarray(NLMSG_HDRLEN + GENL_HDRLEN, Math.min(payload.length, Math.max(declared, 0)));
  const top = attributes(body);
  const header = top.list.find((attribute) => attribute.type === A_FEATURES_HEADER);
  if (header) {
    for (const field of attributes(header.value).list) {
      if (field.type === A_HEADER_DEV_INDEX && field.value.length >= 4) decoded.ifindex = field.value.readUInt32LE(0);
      if (field.type === A_HEADER_DEV_NAME) decoded.ifname = cString(field.value) || null;
    }
  }
  const wanted = top.list.find((attribute) => attribute.type === A_FEATURES_WANTED);
  const bits = wanted ? attributes(wanted.value).list.find((attribute) => attribute.type === A_BITSET_BITS) : undefined;
  for (const bit of bits
    ? attributes(bits.value).list.filter((attribute) => attribute.type === A_BITSET_BITS_BIT)
    : []) {
    const fields = attributes(bit.value).list;
    const name = fields.find((field) => field.type === A_BITSET_BIT_NAME);
    if (name) decoded.features[cString(name.value)] = fields.some((field) => field.type === A_BITSET_BIT_VALUE);
  }
  if (decoded.ifindex === null && decoded.ifname === null) {
    decoded.partial = header
      ? 'the request header names no interface'
      : `the traced bytes end before the request header (${payload.length} of ${declared} bytes copied)`;
  }
}

/** Decodes what a request asked for; `ifindexOf` resolves a name in the watched namespace. */
export function decodeRequest(
  request: KernelRequest,
  ifindexOf: (ifname: string) => number | undefined,
): DecodedRequest {
  const decoded: DecodedRequest = { request: '', ifindex: null, ifname: null, features: {}, partial: null };
  if (request.syscall === 'ioctl') {
    const known = ETHTOOL_IOCTL_SET_COMMANDS[request.command];
    decoded.request = `ioctl ${known?.name ?? `ethtool command 0x${request.command.toString(16)}`}`;
    decoded.ifname = request.payload.length > 0 ? cString(request.payload) || null : null;
    if (known?.feature) decoded.features[known.feature] = request.argument !== 0;
    if (decoded.ifname === null) decoded.partial = 'the ioctl request could not be read';
  } else {
    decoded.request =
      request.command === ETHTOOL_MSG_FEATURES_SET
        ? 'ethtool-netlink FEATURES_SET'
        : `generic-netlink command ${request.command}`;
    decodeNetlink(request.payload, decoded);
  }
  if (decoded.ifindex === null && decoded.ifname !== null) {
    const found = ifindexOf(decoded.ifname);
    if (found === undefined) decoded.partial = `no interface named ${decoded.ifname} in the watched network namespace`;
    else decoded.ifindex = found;
  }
  return decoded;
}
