/**
 * Warnings about policies that load but probably do not do what their author wants. Pure: no
 * I/O. Every check is conservative: it speaks only when the policy text makes the case.
 */
import { globLiteral, globLiteralPrefix, globMatch } from './glob';
import { findShadowingRules } from './shadow';
import { MATCH_KEYS, type MatchSpec, type Policy, type PolicyWarning, type Rule } from './types';

/** A family of virtual devices as the policy can see it. */
interface DeviceFamily {
  label: string;
  drivers: readonly string[];
  /** IFLA_INFO_KIND values; empty for devices that have none (a guest's virtio NIC). */
  kinds: readonly string[];
  /** `vendor:device` ids; empty for devices without PCI. */
  pci: readonly string[];
  /** Typical names, or null when names say nothing about the family. */
  names: readonly string[] | null;
}

/**
 * Devices that carry VM and container traffic. Names: libvirt's vnetN, Proxmox's tapNNNiN (taps),
 * vethNNNiN / fwprNNNpN / fwlnNNNiN (veth pairs), container runtimes' vethXXXX.
 */
const GUEST_FACING: readonly DeviceFamily[] = [
  { label: 'tap/tun devices', drivers: ['tun'], kinds: ['tun'], pci: [], names: ['tap0', 'tap100i0', 'vnet0', 'tun0'] },
  {
    label: 'veth pairs',
    drivers: ['veth'],
    kinds: ['veth'],
    pci: [],
    names: ['veth0', 'veth1a2b3c4', 'veth100i0', 'fwpr100p0', 'fwln100i0'],
  },
  { label: 'virtio-net devices', drivers: ['virtio_net'], kinds: [], pci: ['1af4:1000', '1af4:1041'], names: null },
];

/** Transmit offloads a virtio-net guest needs on the host side for large segments (RSC). */
function isGuestThroughputFeature(feature: string): boolean {
  return (
    /^tx-tcp.*segmentation$/.test(feature) ||
    feature.startsWith('tx-checksum-') ||
    feature.startsWith('tx-scatter-gather') ||
    feature === 'tx-generic-segmentation'
  );
}

function anyPatternMatches(patterns: readonly string[], samples: readonly string[]): boolean {
  return patterns.some((pattern) => samples.some((sample) => globMatch(pattern, sample)));
}

/**
 * Whether a rule can match a device of the family: every key it has accepts one, and at least one
 * key positively points at the family (a MAC or, for virtio, a name proves nothing).
 */
function canMatchFamily(match: MatchSpec, family: DeviceFamily): boolean {
  let evidence = false;
  for (const key of MATCH_KEYS) {
    let accepts: boolean;
    let proves = true;
    if (key === 'pci') {
      if (match.pci === undefined) continue;
      accepts = match.pci.some((p) => family.pci.includes(`${p.vendor}:${p.device}`));
    } else {
      const patterns = match[key];
      if (patterns === undefined) continue;
      if (key === 'driver') accepts = anyPatternMatches(patterns, family.drivers);
      else if (key === 'kind') accepts = anyPatternMatches(patterns, family.kinds);
      else if (key === 'name' && family.names !== null) accepts = anyPatternMatches(patterns, family.names);
      else {
        accepts = true;
        proves = false;
      }
    }
    if (!accepts) return false;
    evidence ||= proves;
  }
  return evidence;
}

function guestThroughputWarning(rule: Rule, key: string): PolicyWarning | null {
  const offNames = [
    ...new Set(rule.features.filter((f) => !f.on && isGuestThroughputFeature(f.feature)).map((f) => f.as)),
  ];
  if (offNames.length === 0) return null;
  const families = GUEST_FACING.filter((family) => canMatchFamily(rule.match, family)).map((f) => f.label);
  if (families.length === 0) return null;
  return {
    message:
      `rule "${rule.name}" turns ${offNames.join(', ')} off and can match ${families.join(', ')}: ` +
      'on a virtualisation host that disables large segments to the guests (virtio-net RSC) and costs VM ' +
      'throughput several times over (RSC gets from 7 to 35 Gbit/s only with TSO and tx checksumming on ' +
      'the tap); narrow the match to the physical ports (driver, pci)',
    position: rule.position,
    key,
  };
}

const AGGREGATE_KINDS = ['bridge', 'bond', 'team'];
const AGGREGATE_DRIVERS = ['bridge', 'bonding', 'team'];
const AGGREGATE_NAME_PREFIXES = ['vmbr', 'virbr', 'br', 'bond', 'team'];

/** True only when a key restricts the rule to bridges, bonds or teams. */
function matchesOnlyAggregates(match: MatchSpec): boolean {
  const allLiteralIn = (patterns: readonly string[] | undefined, allowed: readonly string[]): boolean =>
    patterns !== undefined &&
    patterns.every((p) => {
      const literal = globLiteral(p);
      return literal !== null && allowed.includes(literal);
    });
  const namesAreAggregates =
    match.name !== undefined &&
    match.name.every((p) => AGGREGATE_NAME_PREFIXES.some((prefix) => globLiteralPrefix(p).startsWith(prefix)));
  return (
    allLiteralIn(match.kind, AGGREGATE_KINDS) || allLiteralIn(match.driver, AGGREGATE_DRIVERS) || namesAreAggregates
  );
}

function groOnAggregateWarning(rule: Rule, key: string): PolicyWarning | null {
  const groOff = rule.features.find((f) => f.feature === 'rx-gro' && !f.on);
  if (groOff === undefined || !matchesOnlyAggregates(rule.match)) return null;
  return {
    message:
      `rule "${rule.name}" turns ${groOff.as} off on bridges or bonds only: that has no effect, GRO happens on ` +
      'the physical port under the bridge or bond; match the physical NIC instead (e.g. driver: bnxt_en)',
    position: rule.position,
    key,
  };
}

function shadowWarning(rules: readonly Rule[], index: number, shadowedBy: number, key: string): PolicyWarning | null {
  const later = rules[index] as Rule;
  const earlier = rules[shadowedBy];
  if (earlier === undefined) return null;
  return {
    message:
      `rule "${later.name}" never applies: rule "${earlier.name}" (line ${earlier.position.line}) comes first and ` +
      'matches every interface it matches (the first matching rule wins); move it above, or narrow the earlier rule',
    position: later.position,
    key,
  };
}

/**
 * The policy's own warnings (features this kernel lacks, rules marked `broad`) followed by the
 * lint findings. Rules that match every interface without `broad` never get here: the loader
 * refuses them.
 */
export function lintPolicy(policy: Policy): PolicyWarning[] {
  const findings: PolicyWarning[] = [];
  const shadowedBy = findShadowingRules(policy.rules);
  policy.rules.forEach((rule, index) => {
    const key = `rules[${index}]`;
    for (const check of [
      shadowWarning(policy.rules, index, shadowedBy[index] ?? -1, key),
      guestThroughputWarning(rule, `${key}.features`),
      groOnAggregateWarning(rule, `${key}.features`),
    ]) {
      if (check !== null) findings.push(check);
    }
  });
  return [...policy.warnings, ...findings];
}
