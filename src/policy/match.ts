/**
 * Which rule applies to an interface. Pure: no I/O, so the tests need no kernel. The hot path
 * (findRule) first looks at what the link message says; when a rule that could still match needs
 * the device (driver, PCI id) it answers NEEDS_DEVICE, and the caller reads the device (the one
 * place where that can fail) and asks again.
 *
 * Semantics (the policy's `match:` block):
 * - every key present must match (AND); a key's list is any-of (OR); an absent key does not constrain;
 * - `driver`, `kind`, `name` and `mac` are fnmatch-style globs over the whole string, case-sensitive
 *   (the loader lower-cases `mac` patterns; facts carry lower-case MACs);
 * - `pci` compares the lower-case hex ids; subsystem ids only when the pattern has them;
 * - a key whose fact is null (no driver, no PCI device, no MAC, no kind) never matches;
 * - rules are tried in order and the first that matches wins, like systemd .link files;
 * - a rule that can match every interface (every key it has accepts every value, see
 *   unconstrainedKeys) is refused by the loader unless it carries `broad: "<why>"`.
 */
import { vendorDevice } from '../facts/pci';
import type { DeviceFacts, InterfaceFacts, LinkFacts, PciId } from '../facts/types';
import { globLiteral, globMatch } from './glob';

/** Matching one value against one pattern, for callers outside the policy folder. */
export { globMatch };
import { MATCH_KEYS, type MatchKey, type MatchSpec, type PciPattern, type Policy, type Rule } from './types';

type GlobKey = Exclude<MatchKey, 'pci'>;

export interface MatchCheck {
  key: MatchKey;
  /** The patterns as written in the policy. */
  patterns: string[];
  /** The interface's value for this key, or null when it has none. */
  value: string | null;
  passed: boolean;
  /** Human text for `explain`, e.g. `driver "veth" is not one of bnxt_en`. */
  reason: string;
}

export interface RuleEvaluation {
  rule: string;
  matched: boolean;
  checks: MatchCheck[];
}

export interface PolicyMatch {
  /** The first rule that matches, or null. */
  rule: Rule | null;
  /** Every rule in policy order, for `explain`. */
  evaluations: RuleEvaluation[];
}
// ---------------------------------------------------------------------------------------------
// PCI ids

export function formatPciId(id: PciId): string {
  const base = vendorDevice(id);
  return id.subsystemVendor !== null && id.subsystemDevice !== null
    ? `${base}:${id.subsystemVendor}:${id.subsystemDevice}`
    : base;
}

export function pciMatches(pattern: PciPattern, id: PciId): boolean {
  if (pattern.vendor !== id.vendor || pattern.device !== id.device) return false;
  if (pattern.subsystemVendor === null) return true;
  return pattern.subsystemVendor === id.subsystemVendor && pattern.subsystemDevice === id.subsystemDevice;
}

/** True when every device `inner` matches is matched by `outer` (an id is the narrowest pattern). */
export function pciCovers(outer: PciPattern, inner: PciPattern): boolean {
  return pciMatches(outer, inner);
}

// ---------------------------------------------------------------------------------------------
// Rules

/** Answered by the link message alone; the device keys need sysfs (pci) or an ioctl (driver). */
const LINK_KEYS: readonly MatchKey[] = ['name', 'kind', 'mac'];
const DEVICE_KEYS: readonly MatchKey[] = ['pci', 'driver'];

/** findRule's answer when a rule that could still match needs the device facts to decide. */
export const NEEDS_DEVICE = Symbol('needs device facts');

function globFact(key: GlobKey, link: LinkFacts, device: DeviceFacts | undefined): string | null {
  switch (key) {
    case 'driver':
      return device?.driver ?? null;
    case 'kind':
      return link.kind;
    case 'name':
      return link.name;
    case 'mac':
      return link.mac;
  }
}

/** Index of the first pattern that matches, or -1. */
function firstGlobMatch(patterns: readonly string[], value: string): number {
  for (let i = 0; i < patterns.length; i++) {
    if (globMatch(patterns[i] as string, value)) return i;
  }
  return -1;
}

function firstPciMatch(patterns: readonly PciPattern[], id: PciId): number {
  for (let i = 0; i < patterns.length; i++) {
    if (pciMatches(patterns[i] as PciPattern, id)) return i;
  }
  return -1;
}

/** Whether one key of a match block accepts the interface; an absent key does. Allocates nothing. */
function keyMatches(spec: MatchSpec, key: MatchKey, link: LinkFacts, device: DeviceFacts | undefined): boolean {
  if (key === 'pci') {
    if (spec.pci === undefined) return true;
    const pci = device?.pci ?? null;
    return pci !== null && firstPciMatch(spec.pci, pci) >= 0;
  }
  const patterns = spec[key];
  if (patterns === undefined) return true;
  const value = globFact(key, link, device);
  return value !== null && firstGlobMatch(patterns, value) >= 0;
}

function needsDevice(spec: MatchSpec): boolean {
  return spec.pci !== undefined || spec.driver !== undefined;
}

/**
 * Whether `rule` matches: true, false, or NEEDS_DEVICE when its link keys pass, it has device
 * keys, and `device` was not given.
 */
function ruleMatchesOrNeeds(
  rule: Pick<Rule, 'match'>,
  link: LinkFacts,
  device: DeviceFacts | undefined,
): boolean | typeof NEEDS_DEVICE {
  for (let k = 0; k < LINK_KEYS.length; k++) {
    if (!keyMatches(rule.match, LINK_KEYS[k] as MatchKey, link, undefined)) return false;
  }
  if (!needsDevice(rule.match)) return true;
  if (device === undefined) return NEEDS_DEVICE;
  for (let k = 0; k < DEVICE_KEYS.length; k++) {
    if (!keyMatches(rule.match, DEVICE_KEYS[k] as MatchKey, link, device)) return false;
  }
  return true;
}

export function ruleMatches(rule: Rule, facts: InterfaceFacts): boolean {
  return ruleMatchesOrNeeds(rule, facts, facts) === true;
}

/** Whether a match block (of a rule still being loaded) takes the interface. */
export function matchSpecMatches(match: MatchSpec, facts: InterfaceFacts): boolean {
  return ruleMatchesOrNeeds({ match }, facts, facts) === true;
}

/**
 * The hot path: the first rule that matches, or null. Without `device`, answers NEEDS_DEVICE
 * as soon as the first rule that could still match needs it (rules are tried in order: a later
 * rule that matches by name alone cannot win over an earlier one that needs the device).
 * Allocates nothing.
 */
export function findRule(policy: Policy, link: LinkFacts): Rule | null | typeof NEEDS_DEVICE;
export function findRule(policy: Policy, link: LinkFacts, device: DeviceFacts): Rule | null;
export function findRule(policy: Policy, link: LinkFacts, device?: DeviceFacts): Rule | null | typeof NEEDS_DEVICE {
  for (let r = 0; r < policy.rules.length; r++) {
    const rule = policy.rules[r] as Rule;
    const matched = ruleMatchesOrNeeds(rule, link, device);
    if (matched === NEEDS_DEVICE) return NEEDS_DEVICE;
    if (matched) return rule;
  }
  return null;
}

const NO_VALUE_REASON: Record<MatchKey, string> = {
  driver: 'no driver known for this interface',
  pci: 'no PCI device (virtual interface)',
  kind: 'no kind (physical device)',
  name: 'no name',
  mac: 'no MAC address',
};

function explainCheck(
  key: MatchKey,
  patterns: string[],
  value: string | null,
  shownValue: string,
  matchedIndex: number,
): MatchCheck {
  if (value === null) return { key, patterns, value, passed: false, reason: NO_VALUE_REASON[key] };
  if (matchedIndex >= 0) {
    return { key, patterns, value, passed: true, reason: `${key} ${shownValue} matches ${patterns[matchedIndex]}` };
  }
  const allLiteral = key === 'pci' || patterns.every((p) => globLiteral(p) !== null);
  const verb = allLiteral ? 'is not one of' : 'matches none of';
  return { key, patterns, value, passed: false, reason: `${key} ${shownValue} ${verb} ${patterns.join(', ')}` };
}

function checkKey(spec: MatchSpec, key: MatchKey, facts: InterfaceFacts): MatchCheck | null {
  if (key === 'pci') {
    if (spec.pci === undefined) return null;
    const patterns = spec.pci.map((p) => p.text);
    if (facts.pci === null) return explainCheck(key, patterns, null, '', -1);
    const value = formatPciId(facts.pci);
    return explainCheck(key, patterns, value, value, firstPciMatch(spec.pci, facts.pci));
  }
  const patterns = spec[key];
  if (patterns === undefined) return null;
  const value = globFact(key, facts, facts);
  const matchedIndex = value === null ? -1 : firstGlobMatch(patterns, value);
  return explainCheck(key, [...patterns], value, JSON.stringify(value), matchedIndex);
}

/** Every check of one rule against one interface, with reasons, for `explain`. */
export function evaluateRule(rule: Rule, facts: InterfaceFacts): RuleEvaluation {
  const checks: MatchCheck[] = [];
  for (const key of MATCH_KEYS) {
    const check = checkKey(rule.match, key, facts);
    if (check !== null) checks.push(check);
  }
  return { rule: rule.name, matched: checks.every((c) => c.passed), checks };
}

/** The winning rule and the evaluation of every rule in order (for `explain`). */
export function matchPolicy(policy: Policy, facts: InterfaceFacts): PolicyMatch {
  const evaluations = policy.rules.map((rule) => evaluateRule(rule, facts));
  const winner = evaluations.findIndex((e) => e.matched);
  return { rule: winner >= 0 ? (policy.rules[winner] ?? null) : null, evaluations };
}
