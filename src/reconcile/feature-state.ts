/**
 * The kernel's feature bit-sets, by name. Bit positions come from the running kernel's
 * ETH_SS_FEATURES string set (never hard-coded: they differ between kernel versions).
 */
import * as os from 'node:os';
import {
  addon,
  FEATURE_BITSET,
  kernelErrorOf,
  SET_REPLY_BITSET,
  type FeatureBitsets,
  type FeaturesBatch,
  type WantedFeatures,
} from '../addon/binding';
import { KernelError } from '../errors';
import { KNOWN_KERNEL_FEATURES } from '../policy/feature-names';

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

const GET = 'ETHTOOL_MSG_FEATURES_GET';
const SET = 'ETHTOOL_MSG_FEATURES_SET';
/** A request without an answer (the batch's receive buffer overflowed) or with one that did not parse. */
const NO_ANSWER = new Set([os.constants.errno.ENOBUFS, os.constants.errno.EBADMSG]);

/**
 * Whether bit `bit` is set in the bitset of `words` u32 words that starts at `at` in `bits` (the
 * kernel's compact bitsets, as a batch's answers hold them one after the other).
 */
function has(bits: Uint32Array, at: number, words: number, bit: number): boolean {
  const word = bit >>> 5;
  return word < words && (((bits[at + word] as number) >>> (bit & 31)) & 1) !== 0;
}

/**
 * One interface's features, looked up by name: its four bitsets (FEATURE_BITSET order, `words`
 * u32 each) from `at` in `bits`, which the other answers of its batch share.
 */
class FeatureBits implements FeatureSnapshot {
  constructor(
    private readonly bitOf: ReadonlyMap<string, number>,
    readonly bits: Uint32Array,
    readonly at: number,
    readonly words: number,
  ) {}

  /** From the ioctl's answer (an object of bitsets): copied into the layout of a batch's answer. */
  static ofBitsets(bitOf: ReadonlyMap<string, number>, bitsets: FeatureBitsets): FeatureBits {
    const words = bitsets.active.length;
    const bits = new Uint32Array(FEATURE_BITSET.count * words);
    bits.set(bitsets.available, FEATURE_BITSET.available * words);
    bits.set(bitsets.requested, FEATURE_BITSET.requested * words);
    bits.set(bitsets.active, FEATURE_BITSET.active * words);
    bits.set(bitsets.neverChanged, FEATURE_BITSET.neverChanged * words);
    return new FeatureBits(bitOf, bits, 0, words);
  }

  get(feature: string): FeatureState | undefined {
    const bit = this.bitOf.get(feature);
    if (bit === undefined) return undefined;
    return {
      changeable: this.has(FEATURE_BITSET.available, bit),
      requested: this.has(FEATURE_BITSET.requested, bit),
      active: this.has(FEATURE_BITSET.active, bit),
      neverChanges: this.has(FEATURE_BITSET.neverChanged, bit),
    };
  }

  private has(bitset: number, bit: number): boolean {
    return has(this.bits, this.at + bitset * this.words, this.words, bit);
  }
}

/**
 * The requested `features` (bits) after a FEATURES_SET asked for them `on`, in `state` (a
 * FeatureBits' four bitsets from 0): requested as asked, active as asked unless the reply (from
 * `at` in the batch) lists the bit as unmet. Indexed loops: this runs once per correction, in
 * code V8 rarely optimises, where for-of allocates an iterator and a result per element.
 */
function setRequestedBits(
  state: Uint32Array,
  words: number,
  features: readonly number[],
  on: boolean,
  reply: FeaturesBatch,
  at: number,
): void {
  const active = FEATURE_BITSET.active * words;
  const requested = FEATURE_BITSET.requested * words;
  const unmet = at + SET_REPLY_BITSET.unmet * reply.words;
  for (let i = 0; i < features.length; i++) {
    const bit = features[i] as number;
    const word = bit >>> 5;
    if (word >= words) continue;
    const mask = (1 << (bit & 31)) >>> 0;
    const nowOn = on !== has(reply.bits, unmet, reply.words, bit);
    const activeWord = state[active + word] as number;
    const requestedWord = state[requested + word] as number;
    state[active + word] = (nowOn ? activeWord | mask : activeWord & ~mask) >>> 0;
    state[requested + word] = (on ? requestedWord | mask : requestedWord & ~mask) >>> 0;
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

export class FeatureTable implements FeatureAccess {
  readonly names: readonly string[];
  private readonly bitOf = new Map<string, number>();

  constructor(
    names: readonly string[],
    readonly via: FeatureInterface = 'ioctl',
  ) {
    this.names = names;
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
      // The names this project knows (Linux 6.18's, in bit order): only so that a policy can be
      // checked and the daemon start and answer; no feature is read or changed with them.
      const table = new FeatureTable(KNOWN_KERNEL_FEATURES, chosen);
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
    if (this.via === 'ethtool-netlink') {
      // A batch of one, without readMany's arrays: this is a drift's read.
      const result = this.readAnswer(addon.readFeatures([ifindex]), 0, { name: ifname, ifindex }, false);
      if (result instanceof KernelError) throw result;
      return result;
    }
    return FeatureBits.ofBitsets(this.bitOf, addon.getFeatures(ifname, ifindex));
  }

  /** Over netlink: every FEATURES_GET pipelined in one addon call. Over the ioctl: one by one. */
  readMany(targets: readonly FeatureTarget[]): Array<FeatureSnapshot | KernelError> {
    if (this.via !== 'ethtool-netlink') return targets.map((target) => this.readOrError(target));
    const batch = addon.readFeatures(targets.map((target) => target.ifindex));
    return targets.map((target, i) => this.readAnswer(batch, i, target, targets.length > 1));
  }

  /** Answer `i` of a readFeatures batch, for `target`; `askAgain`: an unanswered GET is asked again, alone. */
  private readAnswer(
    batch: FeaturesBatch,
    i: number,
    target: FeatureTarget,
    askAgain: boolean,
  ): FeatureSnapshot | KernelError {
    const errno = batch.errnos[i] as number;
    if (errno === 0)
      return new FeatureBits(this.bitOf, batch.bits, i * FEATURE_BITSET.count * batch.words, batch.words);
    // Asked again once only: a second silence is an error.
    if (NO_ANSWER.has(errno) && askAgain) return this.readOrError(target);
    return kernelErrorOf(errno, GET, target.name, batch.extacks?.[i] || undefined);
  }

  /**
   * One request for all changes. Over netlink the FEATURES_SET reply is the read-back (the
   * state after the write, from `before` and the reply's diff); over the ioctl there is none.
   */
  write(ifname: string, ifindex: number, changes: readonly FeatureChange[], before: FeatureSnapshot): WriteReadBack {
    if (this.via === 'ethtool-netlink') {
      // A batch of one, without writeMany's arrays: this is a drift's correction.
      const wanted = this.wanted(ifindex, changes);
      const result = this.writeAnswer(addon.writeFeatures([wanted]), 0, ifname, before, wanted);
      if (result instanceof KernelError) throw result;
      return result;
    }
    addon.setFeatures(ifname, ifindex, this.wanted(ifindex, changes));
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
    const requests = writes.map(({ target, changes }) => this.wanted(target.ifindex, changes));
    const batch = addon.writeFeatures(requests);
    return writes.map(({ target, before }, i) =>
      this.writeAnswer(batch, i, target.name, before, requests[i] as WantedFeatures),
    );
  }

  /** Answer `i` of a writeFeatures batch: the state after the write, or why there is none. */
  private writeAnswer(
    batch: FeaturesBatch,
    i: number,
    ifname: string,
    before: FeatureSnapshot,
    wanted: WantedFeatures,
  ): WriteReadBack | KernelError {
    const errno = batch.errnos[i] as number;
    if (errno === 0) return this.afterWrite(before, wanted, batch, i * SET_REPLY_BITSET.count * batch.words);
    const error = kernelErrorOf(errno, SET, ifname, batch.extacks?.[i] || undefined);
    // The SET may or may not have been made: only a read-back can tell.
    return NO_ANSWER.has(errno) ? new UnparsedReply(error) : error;
  }

  private readOrError(target: FeatureTarget): FeatureSnapshot | KernelError {
    try {
      return this.read(target.name, target.ifindex);
    } catch (error) {
      if (error instanceof KernelError) return error;
      throw error;
    }
  }

  /**
   * The changes as feature bits (features this kernel does not have are left out), addressed to
   * `ifindex` (writeFeatures' request as is; the ioctl reads only the bits).
   */
  private wanted(ifindex: number, changes: readonly FeatureChange[]): WantedFeatures & { ifindex: number } {
    const wanted = { ifindex, enable: [] as number[], disable: [] as number[] };
    for (let i = 0; i < changes.length; i++) {
      const { feature, on } = changes[i] as FeatureChange;
      const bit = this.bitOf.get(feature);
      if (bit !== undefined) (on ? wanted.enable : wanted.disable).push(bit);
    }
    return wanted;
  }

  /**
   * The state right after a FEATURES_SET, from the state it was planned on and the kernel's reply
   * (ethnl_set_features): activeChanged = the active bits that changed, activeNow = their new
   * state; unmet = the requested bits whose new active state is not as requested. For every
   * requested bit the reply is exact (active = requested XOR unmet), whatever `before` missed;
   * other bits take the changes the reply names. The reply is `reply`'s bitsets from `at`.
   */
  private afterWrite(before: FeatureSnapshot, wanted: WantedFeatures, reply: FeaturesBatch, at: number): WriteReadBack {
    if (!(before instanceof FeatureBits))
      return new UnparsedReply(
        new KernelError('EINVAL', os.constants.errno.EINVAL, SET, 'no kernel snapshot to apply the reply to'),
      );
    const { words } = before;
    const state = before.bits.slice(before.at, before.at + FEATURE_BITSET.count * words);
    const active = FEATURE_BITSET.active * words;
    const changedAt = at + SET_REPLY_BITSET.activeChanged * reply.words;
    const nowAt = at + SET_REPLY_BITSET.activeNow * reply.words;
    for (let word = 0; word < Math.min(words, reply.words); word++) {
      const changed = reply.bits[changedAt + word] as number;
      const now = reply.bits[nowAt + word] as number;
      state[active + word] = (((state[active + word] as number) & ~changed) | (now & changed)) >>> 0;
    }
    setRequestedBits(state, words, wanted.enable, true, reply, at);
    setRequestedBits(state, words, wanted.disable, false, reply, at);
    return new FeatureBits(this.bitOf, state, 0, words);
  }
}
