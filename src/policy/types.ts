import type { SourcePosition } from '../errors';

export type Mode = 'enforce' | 'report';

/** One `pci:` pattern. Subsystem ids are optional: "14e4:1750" or "14e4:1750:ssss:ssss". */
export interface PciPattern {
  vendor: string;
  device: string;
  subsystemVendor: string | null;
  subsystemDevice: string | null;
  /** As written in the policy, for messages. */
  text: string;
}

/** All keys present must match; each list is any-of. Absent key = no constraint. */
export interface MatchSpec {
  driver?: string[];
  pci?: PciPattern[];
  /** fnmatch-style globs: * ? [abc] [a-z] [!a]. */
  name?: string[];
  /** Globs over the lower-case colon-separated MAC. */
  mac?: string[];
  /** rtnetlink IFLA_INFO_KIND values ("veth", "bridge", "tun", ...). */
  kind?: string[];
}

export type MatchKey = keyof MatchSpec;

/** The order in which keys are evaluated and explained. */
export const MATCH_KEYS: readonly MatchKey[] = ['driver', 'pci', 'kind', 'name', 'mac'];

/** One wanted feature state, resolved to the kernel's feature string. */
export interface WantedFeature {
  /** Kernel feature string, e.g. "rx-gro". */
  feature: string;
  on: boolean;
  /** The name the policy used ("gro", "tso", "rx-gro"). */
  as: string;
  /**
   * True when the policy named this kernel feature itself; false when it came from expanding an
   * ethtool alias such as `tso` or `tx`. Like ethtool, features that an alias expands to but that
   * the device cannot change are skipped silently; an explicitly named one is reported.
   */
  explicit: boolean;
}

export interface Rule {
  name: string;
  /** Overrides the policy's global mode. */
  mode: Mode | null;
  /**
   * The reason given with `broad:`, the opt-in that lets a rule match every interface; null for
   * a targeted rule (the only kind loaded without it).
   */
  broad: string | null;
  match: MatchSpec;
  features: WantedFeature[];
  position: SourcePosition;
}

export interface FlappingLimits {
  /** Corrections of one feature on one interface within `windowSec` before backing off. */
  maxCorrections: number;
  windowSec: number;
  /** Ceiling of the exponential back-off. */
  maxBackoffSec: number;
}

export interface LedgerLimits {
  /** Rotate the active ledger file when it reaches this size. */
  maxBytes: number;
  /** How many rotated files to keep. */
  keepFiles: number;
}

export interface Policy {
  /** Where it was read from, or "(built-in default)". */
  path: string;
  /** sha256 of the file's bytes, hex. */
  checksum: string;
  mode: Mode;
  /** Safety sweep period; 0 disables. */
  sweepIntervalSec: number;
  flapping: FlappingLimits;
  ledger: LedgerLimits;
  /** `attribution: off` turns off naming who changed a feature (on by default). */
  attribution: boolean;
  rules: Rule[];
  /** Non-fatal findings while loading (e.g. a feature this kernel does not know). */
  warnings: PolicyWarning[];
}

export interface PolicyWarning {
  message: string;
  position?: SourcePosition;
  key?: string;
}

/** A feature state in ethtool's words, as policies, records and the API write it. */
export function onOff(value: boolean): 'on' | 'off' {
  return value ? 'on' : 'off';
}
