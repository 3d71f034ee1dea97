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

export class FeatureTable implements FeatureAccess {
  readonly names: readonly string[];
  readonly words: number;
  private readonly bitOf = new Map<string, number>();

  constructor(names: readonly string[]) {
    this.names = names;
    this.words = Math.max(1, Math.ceil(names.length / 32));
    names.forEach((name, bit) => this.bitOf.set(name, bit));
  }

  /** The running kernel's table (any interface can be asked; `lo` always exists). */
  static fromKernel(): FeatureTable {
    return new FeatureTable(addon.featureNames('lo'));
  }

  has(feature: string): boolean {
    return this.bitOf.has(feature);
  }

  read(ifname: string, ifindex: number): FeatureSnapshot {
    const blocks = addon.getFeatures(ifname, ifindex, this.words);
    return {
      get: (feature: string): FeatureState | undefined => {
        const bit = this.bitOf.get(feature);
        if (bit === undefined) return undefined;
        const base = (bit >>> 5) * 4;
        const mask = (1 << (bit & 31)) >>> 0;
        const flag = (offset: number): boolean => (((blocks[base + offset] as number) & mask) >>> 0) !== 0;
        return { changeable: flag(0), requested: flag(1), active: flag(2), neverChanges: flag(3) };
      },
    };
  }

  /** One ETHTOOL_SFEATURES for all changes; returns the kernel's ETHTOOL_F_* flags. */
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
    return addon.setFeatures(ifname, ifindex, blocks);
  }
}
