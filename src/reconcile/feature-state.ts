/**
 * The kernel's feature bit-sets, by name. Bit positions come from the running kernel's
 * ETH_SS_FEATURES string set (never hard-coded: they differ between kernel versions).
 */
import { addon } from '../addon/binding';

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

/** Reading and changing one interface's features: the kernel (FeatureTable) or a test's fake. */
export interface FeatureAccess {
  read(ifname: string, ifindex: number): FeatureSnapshot;
  /** All changes in one request; returns the kernel's ETHTOOL_F_* flags. Throws KernelError. */
  write(ifname: string, ifindex: number, changes: ReadonlyArray<{ feature: string; on: boolean }>): number;
}

/**
 * How features are read and written: ethtool netlink addresses an interface by ifindex, so a
 * rename can never redirect a request to another NIC; the ioctls (kernels before 5.6) address it
 * by name, checked against the ifindex just before each call.
 */
export type FeatureInterface = 'ethtool-netlink' | 'ioctl';

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
    const chosen = via === 'auto' ? (addon.ethtoolNetlinkAvailable() ? 'ethtool-netlink' : 'ioctl') : via;
    return new FeatureTable(addon.featureNames('lo'), chosen);
  }

  has(feature: string): boolean {
    return this.bitOf.has(feature);
  }

  read(ifname: string, ifindex: number): FeatureSnapshot {
    const blocks =
      this.via === 'ethtool-netlink'
        ? addon.netlinkGetFeatures(ifindex, this.words)
        : addon.getFeatures(ifname, ifindex, this.words);
    return {
      get: (feature: string): FeatureState | undefined => {
        const bit = this.bitOf.get(feature);
        if (bit === undefined) return undefined;
        const base = (bit >>> 5) * 4;
        const mask = (1 << (bit & 31)) >>> 0;
        const flag = (offset: number): boolean => ((blocks[base + offset] as number) & mask) >>> 0 !== 0;
        return { changeable: flag(0), requested: flag(1), active: flag(2), neverChanges: flag(3) };
      },
    };
  }

  /**
   * One request for all changes. Returns the ioctl's ETHTOOL_F_* flags; 0 over netlink, whose
   * reply the read-back covers.
   */
  write(ifname: string, ifindex: number, changes: ReadonlyArray<{ feature: string; on: boolean }>): number {
    const blocks = new Uint32Array(this.words * 2);
    for (const { feature, on } of changes) {
      const bit = this.bitOf.get(feature);
      if (bit === undefined) continue;
      const word = bit >>> 5;
      const mask = (1 << (bit & 31)) >>> 0;
      blocks[word * 2] = ((blocks[word * 2] as number) | mask) >>> 0;
      if (on) blocks[word * 2 + 1] = ((blocks[word * 2 + 1] as number) | mask) >>> 0;
    }
    if (this.via === 'ethtool-netlink') {
      addon.netlinkSetFeatures(ifindex, this.words, blocks);
      return 0;
    }
    return addon.setFeatures(ifname, ifindex, blocks);
  }
}
