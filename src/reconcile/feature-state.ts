/**
 * The kernel's feature bit-sets, by name. Bit positions come from the running kernel's
 * ETH_SS_FEATURES string set (never hard-coded: they differ between kernel versions).
 */
import * as os from 'node:os';
import { addon, kernelErrorOf } from '../addon/binding';
import { KernelError } from '../errors';

/** One feature on one device, as ETHTOOL_GFEATURES reports it. */
export interface FeatureState {
  /** The device lets this feature be changed (hw_features). */
  changeable: boolean;
  /** What was last asked for (wanted_features). */
  requested: boolean;
  /** What is in effect now. */
  active: boolean;
  /** Never changeable on any device (NETIF_F_NEVER_CHANGE: ethtool's "[fixed]" for all). */
  neverChanges: boolean;
}

export interface FeatureSnapshot {
  get(feature: string): FeatureState | undefined;
}

/** One interface a batch call is about. */
export interface FeatureTarget {
  name: string;
  ifindex: number;
}

export interface FeatureChange {
  feature: string;
  on: boolean;
}

/** A write that was made, but whose reply did not parse: the caller logs it and reads back. */
export class UnparsedReply {
  constructor(readonly error: KernelError) {}
}

/**
 * What a write says about the state right after it: the kernel's own answer (ethtool netlink's
 * FEATURES_SET reply), or null when it says nothing (the ioctl) and the caller must read back.
 */
export type WriteReadBack = FeatureSnapshot | null | UnparsedReply;

/** Reading and changing one interface's features: the kernel (FeatureTable) or a test's fake. */
export interface FeatureAccess {
  read(ifname: string, ifindex: number): FeatureSnapshot;
  /**
   * All changes in one request. `before` is the snapshot the changes were planned from. Throws
   * KernelError when the kernel refused.
   */
  write(ifname: string, ifindex: number, changes: readonly FeatureChange[], before: FeatureSnapshot): WriteReadBack;
  /** read() for many interfaces at once (pipelined); an error is returned in the interface's place. */
  readMany?(targets: readonly FeatureTarget[]): Array<FeatureSnapshot | KernelError>;
  /** write() for many interfaces at once (pipelined); an error is returned in the interface's place. */
  writeMany?(
    writes: ReadonlyArray<{ target: FeatureTarget; changes: readonly FeatureChange[]; before: FeatureSnapshot }>,
  ): Array<WriteReadBack | KernelError>;
}

/**
 * How features are read and written: ethtool netlink addresses an interface by ifindex, so a
 * rename can never redirect a request to another NIC; the ioctls (kernels before 5.6) address it
 * by name, checked against the ifindex just before each call.
 */
export type FeatureInterface = 'ethtool-netlink' | 'ioctl';

/** GFEATURES' layout: per 32-bit word, four u32 in this order. */
const AVAILABLE = 0;
const REQUESTED = 1;
const ACTIVE = 2;
const NEVER_CHANGED = 3;
const BLOCK = 4;

const GET = 'ETHTOOL_MSG_FEATURES_GET';
const SET = 'ETHTOOL_MSG_FEATURES_SET';
/** A request without an answer (the batch's receive buffer overflowed) or with one that did not parse. */
const NO_ANSWER = new Set([os.constants.errno.ENOBUFS, os.constants.errno.EBADMSG]);

/** One interface's features: `words` blocks of four u32 at `base` in `blocks` (shared by a batch). */
class FeatureBits implements FeatureSnapshot {
  constructor(
    private readonly bitOf: ReadonlyMap<string, number>,
    readonly blocks: Uint32Array,
    readonly base: number,
  ) {}

  get(feature: string): FeatureState | undefined {
    const bit = this.bitOf.get(feature);
    if (bit === undefined) return undefined;
    const at = this.base + (bit >>> 5) * BLOCK;
    const mask = (1 << (bit & 31)) >>> 0;
    const blocks = this.blocks;
    return {
      changeable: ((blocks[at + AVAILABLE] as number) & mask) !== 0,
      requested: ((blocks[at + REQUESTED] as number) & mask) !== 0,
      active: ((blocks[at + ACTIVE] as number) & mask) !== 0,
      neverChanges: ((blocks[at + NEVER_CHANGED] as number) & mask) !== 0,
    };
  }
}

/**
 * Neither the SIOCETHTOOL ioctl (ENOSYS) nor ethtool netlink (no generic netlink socket) exists:
 * what qemu-user emulation gives a foreign-architecture binary, which translates neither.
 */
const FEATURES_UNAVAILABLE =
  'offload features can be neither read nor changed here: the SIOCETHTOOL ioctl is not implemented (ENOSYS) and ethtool netlink is not available (no generic netlink socket); qemu-user emulation translates neither, so run offloadd on the real architecture';

/** Whether ethtool netlink can be used; false where no generic netlink socket can be opened at all. */
function ethtoolNetlinkAvailable(): boolean {
  try {
    return addon.ethtoolNetlinkAvailable();
  } catch (error) {
    // qemu-user opens only NETLINK_ROUTE, NETLINK_KOBJECT_UEVENT and NETLINK_AUDIT sockets.
    if (error instanceof KernelError && error.code === 'EPROTONOSUPPORT') return false;
    throw error;
  }
}

/**
 * The names Linux 6.x reports for netdev features, used only when the kernel cannot be asked
 * (FEATURES_UNAVAILABLE), so that a policy can still be checked and the daemon start and answer.
 */
const NAMES_WITHOUT_A_KERNEL_TO_ASK: readonly string[] = [
  'tx-scatter-gather',
  'tx-checksum-ipv4',
  'tx-checksum-ip-generic',
  'tx-checksum-ipv6',
  'highdma',
  'tx-scatter-gather-fraglist',
  'tx-vlan-hw-insert',
  'rx-vlan-hw-parse',
  'rx-vlan-filter',
  'vlan-challenged',
  'tx-generic-segmentation',
  'rx-gro',
  'rx-lro',
  'tx-tcp-segmentation',
  'tx-gso-robust',
  'tx-tcp-ecn-segmentation',
  'tx-tcp-mangleid-segmentation',
  'tx-tcp6-segmentation',
  'tx-fcoe-segmentation',
  'tx-gre-segmentation',
  'tx-gre-csum-segmentation',
  'tx-ipxip4-segmentation',
  'tx-ipxip6-segmentation',
  'tx-udp_tnl-segmentation',
  'tx-udp_tnl-csum-segmentation',
  'tx-gso-partial',
  'tx-tunnel-remcsum-segmentation',
  'tx-sctp-segmentation',
  'tx-esp-segmentation',
  'tx-udp-segmentation',
  'tx-gso-list',
  'tx-checksum-fcoe-crc',
  'tx-checksum-sctp',
  'rx-ntuple-filter',
  'rx-hashing',
  'rx-checksum',
  'tx-nocache-copy',
  'loopback',
  'rx-fcs',
  'rx-all',
  'tx-vlan-stag-hw-insert',
  'rx-vlan-stag-hw-parse',
  'rx-vlan-stag-filter',
  'l2-fwd-offload',
  'hw-tc-offload',
  'esp-hw-offload',
  'esp-tx-csum-hw-offload',
  'rx-udp_tunnel-port-offload',
  'tls-hw-tx-offload',
  'tls-hw-rx-offload',
  'rx-gro-hw',
  'tls-hw-record',
  'rx-gro-list',
  'macsec-hw-offload',
  'rx-udp-gro-forwarding',
  'hsr-tag-ins-offload',
  'hsr-tag-rm-offload',
  'hsr-fwd-offload',
  'hsr-dup-offload',
];

export class FeatureTable implements FeatureAccess {
  readonly names: readonly string[];
  readonly words: number;
  private readonly bitOf = new Map<string, number>();

  constructor(
    names: readonly string[],
    readonly via: FeatureInterface = 'ioctl',
  ) {
    this.names = names;
    this.words = Math.max(1, Math.ceil(names.length / 32));
    names.forEach((name, bit) => this.bitOf.set(name, bit));
  }

  /**
   * The running kernel's table (any interface can be asked; `lo` always exists), over ethtool
   * netlink where the kernel has it. Chosen once: the kernel does not gain or lose the family.
   */
  static fromKernel(via: FeatureInterface | 'auto' = 'auto'): FeatureTable {
    const netlink = ethtoolNetlinkAvailable();
    const chosen = via === 'auto' ? (netlink ? 'ethtool-netlink' : 'ioctl') : via;
    try {
      return new FeatureTable(addon.featureNames('lo'), chosen);
    } catch (error) {
      if (!(error instanceof KernelError && error.code === 'ENOSYS') || netlink) throw error;
      const table = new FeatureTable(NAMES_WITHOUT_A_KERNEL_TO_ASK, chosen);
      table.unavailable = FEATURES_UNAVAILABLE;
      return table;
    }
  }

  /**
   * Why no interface's features can be read or changed here (every attempt fails with ENOSYS, per
   * interface), or null. Said at start, so that it does not look like a driver's fault.
   */
  unavailable: string | null = null;

  has(feature: string): boolean {
    return this.bitOf.has(feature);
  }

  read(ifname: string, ifindex: number): FeatureSnapshot {
    const blocks =
      this.via === 'ethtool-netlink'
        ? addon.netlinkGetFeatures(ifindex, this.words)
        : addon.getFeatures(ifname, ifindex, this.words);
    return new FeatureBits(this.bitOf, blocks, 0);
  }

  /** Over netlink: every FEATURES_GET pipelined in one addon call. Over the ioctl: one by one. */
  readMany(targets: readonly FeatureTarget[]): Array<FeatureSnapshot | KernelError> {
    if (this.via !== 'ethtool-netlink') return targets.map((target) => this.readOrError(target));
    const count = targets.length;
    const ifindexes = new Int32Array(count);
    for (let i = 0; i < count; i++) ifindexes[i] = (targets[i] as FeatureTarget).ifindex;
    const stride = this.words * BLOCK;
    const out = new Uint32Array(count * stride);
    const errnos = new Int32Array(count);
    const texts = addon.netlinkFeaturesBatch(false, ifindexes, count, this.words, null, out, errnos);
    const results = new Array<FeatureSnapshot | KernelError>(count);
    for (let i = 0; i < count; i++) {
      const target = targets[i] as FeatureTarget;
      const errno = errnos[i] as number;
      // An unanswered GET is simply asked again, alone.
      if (NO_ANSWER.has(errno)) results[i] = this.readOrError(target);
      else if (errno !== 0) results[i] = kernelErrorOf(errno, GET, target.name, extackOf(texts, i));
      else results[i] = new FeatureBits(this.bitOf, out, i * stride);
    }
    return results;
  }

  /**
   * One request for all changes. Over netlink the FEATURES_SET reply is the read-back (the
   * state after the write, from `before` and the reply's diff); over the ioctl there is none.
   */
  write(ifname: string, ifindex: number, changes: readonly FeatureChange[], before: FeatureSnapshot): WriteReadBack {
    if (this.via === 'ethtool-netlink') {
      const [result] = this.writeMany([{ target: { name: ifname, ifindex }, changes, before }]);
      if (result instanceof KernelError) throw result;
      return result ?? null;
    }
    const pairs = new Uint32Array(this.words * 2);
    this.fillPairs(pairs, 0, changes);
    addon.setFeatures(ifname, ifindex, pairs);
    return null;
  }

  /** Over netlink: every FEATURES_SET pipelined in one addon call, each reply its read-back. */
  writeMany(
    writes: ReadonlyArray<{ target: FeatureTarget; changes: readonly FeatureChange[]; before: FeatureSnapshot }>,
  ): Array<WriteReadBack | KernelError> {
    if (this.via !== 'ethtool-netlink')
      return writes.map(({ target, changes, before }) => {
        try {
          return this.write(target.name, target.ifindex, changes, before);
        } catch (error) {
          if (error instanceof KernelError) return error;
          throw error;
        }
      });
    const count = writes.length;
    const words = this.words;
    const ifindexes = new Int32Array(count);
    const pairs = new Uint32Array(count * words * 2);
    for (let i = 0; i < count; i++) {
      const write = writes[i] as (typeof writes)[number];
      ifindexes[i] = write.target.ifindex;
      this.fillPairs(pairs, i * words * 2, write.changes);
    }
    const out = new Uint32Array(count * words * 3);
    const errnos = new Int32Array(count);
    const texts = addon.netlinkFeaturesBatch(true, ifindexes, count, words, pairs, out, errnos);
    const after = new Uint32Array(count * words * BLOCK);
    const results = new Array<WriteReadBack | KernelError>(count);
    for (let i = 0; i < count; i++) {
      const { target, before } = writes[i] as (typeof writes)[number];
      const errno = errnos[i] as number;
      if (NO_ANSWER.has(errno))
        // The SET may or may not have been made: only a read-back can tell.
        results[i] = new UnparsedReply(kernelErrorOf(errno, SET, target.name, extackOf(texts, i)));
      else if (errno !== 0) results[i] = kernelErrorOf(errno, SET, target.name, extackOf(texts, i));
      else results[i] = this.afterWrite(before, pairs, i * words * 2, out, i * words * 3, after, i * words * BLOCK);
    }
    return results;
  }

  private readOrError(target: FeatureTarget): FeatureSnapshot | KernelError {
    try {
      return this.read(target.name, target.ifindex);
    } catch (error) {
      if (error instanceof KernelError) return error;
      throw error;
    }
  }

  /** ETHTOOL_SFEATURES' [valid, requested] per word, at `at`. */
  private fillPairs(pairs: Uint32Array, at: number, changes: readonly FeatureChange[]): void {
    for (const { feature, on } of changes) {
      const bit = this.bitOf.get(feature);
      if (bit === undefined) continue;
      const word = at + (bit >>> 5) * 2;
      const mask = (1 << (bit & 31)) >>> 0;
      pairs[word] = ((pairs[word] as number) | mask) >>> 0;
      if (on) pairs[word + 1] = ((pairs[word + 1] as number) | mask) >>> 0;
    }
  }

  /**
   * The state right after a FEATURES_SET, from the state it was planned on and the kernel's reply
   * (ethnl_set_features): ACTIVE's mask = the active bits that changed, its value = their new
   * state; WANTED's mask = the requested bits whose new active state is not as requested. For
   * every requested bit the reply is exact (active = requested XOR unmet), whatever `before`
   * missed; other bits take the changes the reply names. Written into `after` at `at`.
   */
  private afterWrite(
    before: FeatureSnapshot,
    pairs: Uint32Array,
    pairsAt: number,
    reply: Uint32Array,
    replyAt: number,
    after: Uint32Array,
    at: number,
  ): WriteReadBack {
    const words = this.words;
    if (!(before instanceof FeatureBits))
      return new UnparsedReply(
        new KernelError('EINVAL', os.constants.errno.EINVAL, SET, 'no kernel snapshot to apply the reply to'),
      );
    after.set(before.blocks.subarray(before.base, before.base + words * BLOCK), at);
    for (let word = 0; word < words; word++) {
      const block = at + word * BLOCK;
      const valid = pairs[pairsAt + word * 2] as number;
      const requested = pairs[pairsAt + word * 2 + 1] as number;
      const changed = reply[replyAt + word] as number;
      const now = reply[replyAt + words + word] as number;
      const unmet = reply[replyAt + 2 * words + word] as number;
      const active = ((after[block + ACTIVE] as number) & ~changed) | (now & changed);
      after[block + ACTIVE] = ((active & ~valid) | ((requested ^ unmet) & valid)) >>> 0;
      after[block + REQUESTED] = (((after[block + REQUESTED] as number) & ~valid) | (requested & valid)) >>> 0;
    }
    return new FeatureBits(this.bitOf, after, at);
  }
}

/** The extended ACK text the batch call returned for request `index`, if any. */
function extackOf(texts: Array<number | string> | undefined, index: number): string | undefined {
  if (!texts) return undefined;
  for (let i = 0; i + 1 < texts.length; i += 2) if (texts[i] === index) return texts[i + 1] as string;
  return undefined;
}
