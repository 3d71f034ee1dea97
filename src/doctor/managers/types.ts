/**
 * The other tools that set offload features, as their configuration files say: every setting with
 * its file, line, the interfaces it targets and the features it sets. Plain data, JSON-ready.
 */

export type ManagerTool = 'NetworkManager' | 'systemd .link' | 'wicked/ifcfg' | 'ifupdown' | 'udev' | 'tuned';

/**
 * Which interfaces a setting applies to. Every present list must match (each any-of, fnmatch
 * globs); a list whose first entry starts with `!` matches what none of its entries match (as in
 * systemd's Match= lists and tuned's devices=). Null: no constraint.
 */
export interface ManagerTarget {
  names: string[] | null;
  /** Lower case, colon separated. */
  macs: string[] | null;
  drivers: string[] | null;
  kinds: string[] | null;
  /** Match keys this reader cannot evaluate from the facts (Path=, Property=, ...): "may match". */
  unevaluated: string[];
}

export interface ManagerFeature {
  /** As the file writes it: `gro`, `feature-gro`'s `gro`, `GenericReceiveOffload`'s `rx-gro`. */
  name: string;
  on: boolean;
  line: number;
}

export interface ManagerSetting {
  tool: ManagerTool;
  /** The path as on the host (without the --root prefix). */
  file: string;
  /** Where the target is declared (the stanza, section or rule). */
  line: number;
  target: ManagerTarget;
  features: ManagerFeature[];
  /** False for configuration that is installed but not in use (a tuned profile that is not active). */
  active: boolean;
  /** For .link files: the position in udev's order; only the first matching file applies. */
  order?: number;
}

/** The facts a target is matched against. */
export interface ManagedInterface {
  name: string;
  mac: string | null;
  driver: string | null;
  kind: string | null;
}

export function anyTarget(): ManagerTarget {
  return { names: null, macs: null, drivers: null, kinds: null, unevaluated: [] };
}
