/**
 * Offload feature names: the kernel's feature strings and ethtool's short/long aliases.
 *
 * The daemon reads the running kernel's list at run time (ETH_SS_FEATURES string set) and passes it
 * in as `hostFeatures`; the lists here only tell a typo (an error) from a name that another kernel
 * has (a warning), and feed the did-you-mean suggestions. Never derive bit positions from them.
 */
import { globLiteral, globMatch } from './glob';

/**
 * The kernel's netdev feature strings (net/ethtool/common.c, `netdev_features_strings`) in bit
 * order, as Linux 6.18 reports them through ETHTOOL_GSTRINGS; unused bits (empty strings) left out.
 */
export const KNOWN_KERNEL_FEATURES: readonly string[] = [
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
  'tx-tcp-accecn-segmentation',
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

/**
 * Strings older kernels report and 6.18 no longer does: LLTX, NETNS_LOCAL and FCOE_MTU became
 * private flags (their bits are empty strings now), UFO went in 4.14. A policy naming them is
 * valid, with a warning on a kernel that lacks them.
 */
export const RETIRED_KERNEL_FEATURES: readonly string[] = [
  'tx-lockless',
  'netns-local',
  'fcoe-mtu',
  'tx-udp-fragmentation',
];

export interface EthtoolAlias {
  short: string;
  long: string;
  /** fnmatch pattern over kernel feature strings, as in ethtool's `off_flag_def`. */
  pattern: string;
}

/** ethtool's own names (ethtool common.c, `off_flag_def`), with its patterns. */
export const ETHTOOL_ALIASES: readonly EthtoolAlias[] = [
  { short: 'rx', long: 'rx-checksumming', pattern: 'rx-checksum' },
  { short: 'tx', long: 'tx-checksumming', pattern: 'tx-checksum-*' },
  { short: 'sg', long: 'scatter-gather', pattern: 'tx-scatter-gather*' },
  { short: 'tso', long: 'tcp-segmentation-offload', pattern: 'tx-tcp*-segmentation' },
  { short: 'ufo', long: 'udp-fragmentation-offload', pattern: 'tx-udp-fragmentation' },
  { short: 'gso', long: 'generic-segmentation-offload', pattern: 'tx-generic-segmentation' },
  { short: 'gro', long: 'generic-receive-offload', pattern: 'rx-gro' },
  { short: 'lro', long: 'large-receive-offload', pattern: 'rx-lro' },
  { short: 'rxvlan', long: 'rx-vlan-offload', pattern: 'rx-vlan-hw-parse' },
  { short: 'txvlan', long: 'tx-vlan-offload', pattern: 'tx-vlan-hw-insert' },
  { short: 'ntuple', long: 'ntuple-filters', pattern: 'rx-ntuple-filter' },
  { short: 'rxhash', long: 'receive-hashing', pattern: 'rx-hashing' },
];

const ALIAS_BY_NAME: ReadonlyMap<string, EthtoolAlias> = new Map(
  ETHTOOL_ALIASES.flatMap((alias) => [
    [alias.short, alias],
    [alias.long, alias],
  ]),
);

const KNOWN_NAMES: ReadonlySet<string> = new Set([...KNOWN_KERNEL_FEATURES, ...RETIRED_KERNEL_FEATURES]);

export function findAlias(name: string): EthtoolAlias | undefined {
  return ALIAS_BY_NAME.get(name);
}

export interface ResolvedFeature {
  /** The host's kernel feature strings the name stands for; empty when this kernel has none of them. */
  features: string[];
  /**
   * False for an alias with a wildcard (tx, sg, tso): like ethtool, the daemon skips the features
   * of such an expansion that a device cannot change. A single-feature alias (gro, gso) counts as
   * naming that feature.
   */
  explicit: boolean;
}

/**
 * What a policy's feature name stands for on this host: a kernel feature string (case-sensitive,
 * as ethtool takes it) or one of ethtool's short/long names. Null for a name no kernel or ethtool
 * knows. A known name this kernel lacks resolves to no features: the caller warns.
 */
export function resolveFeatureName(name: string, hostFeatures: readonly string[]): ResolvedFeature | null {
  // The kernel reports unused bits as empty strings: "" is never a feature.
  if (name === '') return null;
  const alias = ALIAS_BY_NAME.get(name);
  if (alias !== undefined) {
    return {
      features: hostFeatures.filter((feature) => globMatch(alias.pattern, feature)),
      explicit: globLiteral(alias.pattern) !== null,
    };
  }
  if (hostFeatures.includes(name)) return { features: [name], explicit: true };
  if (KNOWN_NAMES.has(name)) return { features: [], explicit: true };
  return null;
}

/** Every name a policy may use, for suggestions and help texts. */
export function allFeatureNames(): string[] {
  return [...ALIAS_BY_NAME.keys(), ...KNOWN_NAMES];
}

/**
 * Optimal-string-alignment distance (Damerau-Levenshtein where a transposition counts as one
 * edit), computed case-insensitively: "GRO" is 0 away from "gro".
 */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  // Three rolling rows: the transposition step looks two rows back.
  let twoBack: number[] = [];
  let previous = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const current = [i];
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      let best = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + cost,
      );
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) {
        best = Math.min(best, (twoBack[j - 2] as number) + 1);
      }
      current.push(best);
    }
    twoBack = previous;
    previous = current;
  }
  return previous[t.length] as number;
}

function commonPrefixLength(a: string, b: string): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n]?.toLowerCase() === b[n]?.toLowerCase()) n++;
  return n;
}

/**
 * The candidate closest to `word` if it is a plausible slip for it, else null. Plausible: a
 * different case only for one- or two-letter words (any edit there makes another word), one edit
 * for short words, up to three for long ones (about a quarter of the length), or a long shared
 * beginning ("enforcing" for "enforce", "generic-receive" for "generic-receive-offload").
 */
export function didYouMean(word: string, candidates: Iterable<string>): string | null {
  const limit = word.length < 3 ? 0 : Math.min(3, Math.max(1, Math.floor(word.length / 4)));
  let best: string | null = null;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    if (candidate === word) continue;
    const distance = editDistance(word, candidate);
    const prefix = commonPrefixLength(word, candidate);
    const plausible = distance <= limit || (prefix >= 5 && prefix >= 0.6 * Math.min(word.length, candidate.length));
    if (plausible && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** A did-you-mean for an unknown feature name, over ethtool's aliases and the kernel's strings. */
export function suggestFeatureName(name: string): string | null {
  return didYouMean(name, allFeatureNames());
}
