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
import type { MatchKey, MatchSpec, PciPattern, Policy, Rule } from './types';

type GlobKey = Exclude<MatchKey, 'pci'>;

/** The order in which keys are evaluated and explained. */
export const MATCH_KEYS: readonly MatchKey[] = ['driver', 'pci', 'kind', 'name', 'mac'];

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
// Globs

type GlobToken =
  | { kind: 'char'; code: number }
  | { kind: 'any-char' }
  | { kind: 'star' }
  | { kind: 'class'; negated: boolean; ranges: ReadonlyArray<readonly [number, number]> };

interface CompiledGlob {
  /** Set when the pattern has no wildcard: matching is then a string comparison. */
  literal: string | null;
  tokens: readonly GlobToken[];
  /** An unclosed `[`, which fnmatch (and globMatch) take literally but the loader refuses. */
  unclosedBracket: boolean;
  posixClass: boolean;
}

const BACKSLASH = 0x5c;
const CLOSE_BRACKET = 0x5d;

/** Parses `[...]` starting at `open`; null when there is no closing bracket. */
function parseClass(pattern: string, open: number): { token: GlobToken; end: number; posixClass: boolean } | null {
  let i = open + 1;
  let negated = false;
  if (pattern[i] === '!' || pattern[i] === '^') {
    negated = true;
    i++;
  }
  const ranges: Array<readonly [number, number]> = [];
  let posixClass = false;
  let first = true;
  while (i < pattern.length) {
    let code = pattern.charCodeAt(i);
    // A `]` right after `[` or `[!` is a member, as in fnmatch.
    if (code === CLOSE_BRACKET && !first) {
      return { token: { kind: 'class', negated, ranges }, end: i + 1, posixClass };
    }
    first = false;
    if (code === 0x5b /* [ */ && pattern[i + 1] === ':') posixClass = true;
    if (code === BACKSLASH && i + 1 < pattern.length) code = pattern.charCodeAt(++i);
    let high = code;
    if (pattern[i + 1] === '-' && i + 2 < pattern.length && pattern.charCodeAt(i + 2) !== CLOSE_BRACKET) {
      i += 2;
      high = pattern.charCodeAt(i);
      if (high === BACKSLASH && i + 1 < pattern.length) high = pattern.charCodeAt(++i);
    }
    ranges.push([code, high]);
    i++;
  }
  return null;
}

function compileGlob(pattern: string): CompiledGlob {
  const tokens: GlobToken[] = [];
  let literal = '';
  let hasWildcard = false;
  let unclosedBracket = false;
  let posixClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i] as string;
    if (char === '*') {
      hasWildcard = true;
      // Consecutive stars mean the same as one.
      if (tokens[tokens.length - 1]?.kind !== 'star') tokens.push({ kind: 'star' });
    } else if (char === '?') {
      hasWildcard = true;
      tokens.push({ kind: 'any-char' });
    } else if (char === '[') {
      const parsed = parseClass(pattern, i);
      if (parsed === null) {
        unclosedBracket = true;
        tokens.push({ kind: 'char', code: 0x5b });
        literal += char;
      } else {
        hasWildcard = true;
        posixClass ||= parsed.posixClass;
        tokens.push(parsed.token);
        i = parsed.end - 1;
      }
    } else {
      const escaped = char === '\\' && i + 1 < pattern.length ? (pattern[++i] as string) : char;
      tokens.push({ kind: 'char', code: escaped.charCodeAt(0) });
      literal += escaped;
    }
  }
  return { literal: hasWildcard ? null : literal, tokens, unclosedBracket, posixClass };
}

// Patterns come from the policy, so the cache stays small; the bound only guards misuse.
const GLOB_CACHE_LIMIT = 4096;
const globCache = new Map<string, CompiledGlob>();

function compiled(pattern: string): CompiledGlob {
  let glob = globCache.get(pattern);
  if (glob === undefined) {
    if (globCache.size >= GLOB_CACHE_LIMIT) globCache.clear();
    glob = compileGlob(pattern);
    globCache.set(pattern, glob);
  }
  return glob;
}

function tokenMatches(token: GlobToken, code: number): boolean {
  switch (token.kind) {
    case 'char':
      return token.code === code;
    case 'any-char':
      return true;
    case 'class': {
      let inside = false;
      for (let r = 0; r < token.ranges.length && !inside; r++) {
        const range = token.ranges[r] as readonly [number, number];
        inside = code >= range[0] && code <= range[1];
      }
      return inside !== token.negated;
    }
    case 'star':
      return false;
  }
}

/**
 * fnmatch-style matching of the whole `value`: `*` any run, `?` one character, `[abc]`, `[a-z]`,
 * `[!x]` (or `[^x]`), `\` escapes the next character. No regular expression is built, so a
 * pattern cannot inject one. An unclosed `[` is a literal `[`, as in fnmatch.
 */
export function globMatch(pattern: string, value: string): boolean {
  const glob = compiled(pattern);
  if (glob.literal !== null) return glob.literal === value;
  const tokens = glob.tokens;
  let t = 0;
  let v = 0;
  // Where to resume after the last `*` when the greedy attempt fails: single-character tokens make
  // this linear backtracking enough.
  let starToken = -1;
  let starValue = 0;
  while (v < value.length) {
    const token = tokens[t];
    if (token?.kind === 'star') {
      starToken = t++;
      starValue = v;
    } else if (token !== undefined && tokenMatches(token, value.charCodeAt(v))) {
      t++;
      v++;
    } else if (starToken >= 0) {
      t = starToken + 1;
      v = ++starValue;
    } else {
      return false;
    }
  }
  while (tokens[t]?.kind === 'star') t++;
  return t === tokens.length;
}

/** Why a pattern is unusable in a policy, or null when it is fine. */
export function globProblem(pattern: string): string | null {
  const glob = compiled(pattern);
  if (glob.unclosedBracket) return 'has a "[" without its closing "]"';
  if (glob.posixClass) return 'uses a POSIX character class such as [[:digit:]], which offloadd does not support';
  return null;
}

/** The text the pattern stands for when it has no wildcard (escapes removed), else null. */
export function globLiteral(pattern: string): string | null {
  return compiled(pattern).literal;
}

/** The literal text every match starts with (escapes removed). */
export function globLiteralPrefix(pattern: string): string {
  let prefix = '';
  for (const token of compiled(pattern).tokens) {
    if (token.kind !== 'char') break;
    prefix += String.fromCharCode(token.code);
  }
  return prefix;
}

/**
 * True only when every string `inner` matches is certainly matched by `outer`; false when unsure.
 * Decided for: equal patterns, a wildcard-free `inner`, and `outer` of the form `prefix*`.
 */
export function globCovers(outer: string, inner: string): boolean {
  if (outer === inner) return true;
  const innerLiteral = globLiteral(inner);
  if (innerLiteral !== null) return globMatch(outer, innerLiteral);
  const outerTokens = compiled(outer).tokens;
  const last = outerTokens[outerTokens.length - 1];
  const onlyTrailingStar =
    last?.kind === 'star' && outerTokens.every((t, i) => i === outerTokens.length - 1 || t.kind === 'char');
  return onlyTrailingStar && globLiteralPrefix(inner).startsWith(globLiteralPrefix(outer));
}

// ---------------------------------------------------------------------------------------------
// Patterns that accept every value
//
// A rule must target something, so the loader asks of each match key: do its patterns (any-of)
// accept every value the key can take? Globs are regular languages, so this is decided exactly:
// walk the product of the key's value domain (as a small automaton) and the set of pattern
// positions every prefix can reach (subset construction). A reachable state where the domain
// accepts and no pattern does is a value the key refuses: the key is targeted.

/** The values one match key can take, as an automaton over UTF-16 code units. */
interface ValueDomain {
  start: number;
  step(state: number, code: number): number | null;
  accepts(state: number): boolean;
  /** Code units where `step` changes behaviour: intervals between them are treated alike. */
  boundaries: readonly number[];
}

/** IFNAMSIZ - 1: the kernel's longest interface name. */
const MAX_IFNAME_LENGTH = 15;
/** Names are read as latin1 bytes (link-message.ts), so code units stop at 0xff. */
const LATIN1_END = 0x100;
const CODE_UNIT_END = 0x10000;
const MAC_TEXT_LENGTH = 17;
const COLON = 0x3a;
/** Past this many product states the answer is "cannot prove it is targeted". */
const MAX_UNIVERSALITY_STATES = 20_000;

/** The kernel's dev_valid_name(): no NUL, '/', ':' or whitespace. */
function isIfnameCode(code: number): boolean {
  return (
    code > 0 && code < LATIN1_END && code !== 0x2f && code !== COLON && code !== 0x20 && !(code >= 0x09 && code <= 0x0d)
  );
}

function isLowerHexCode(code: number): boolean {
  return (code >= 0x30 && code <= 0x39) || (code >= 0x61 && code <= 0x66);
}

/**
 * The domain of each glob key. `driver` and `kind` are any non-empty text; `name` is what the
 * kernel accepts as an interface name; `mac` is a 48-bit MAC as facts write it (lower-case hex,
 * colon-separated): the address every Ethernet-like interface (physical, veth, tap, bridge) has.
 */
export const VALUE_DOMAINS: Record<GlobKey, ValueDomain> = {
  name: {
    start: 0,
    step: (length, code) => (isIfnameCode(code) && length < MAX_IFNAME_LENGTH ? length + 1 : null),
    accepts: (length) => length >= 1,
    boundaries: [0x01, 0x09, 0x0e, 0x20, 0x21, 0x2f, 0x30, COLON, COLON + 1, LATIN1_END],
  },
  driver: freeTextDomain(),
  kind: freeTextDomain(),
  mac: {
    start: 0,
    step: (position, code) => {
      if (position >= MAC_TEXT_LENGTH) return null;
      const wanted = position % 3 === 2 ? code === COLON : isLowerHexCode(code);
      return wanted ? position + 1 : null;
    },
    accepts: (position) => position === MAC_TEXT_LENGTH,
    boundaries: [0x30, 0x3a, COLON + 1, 0x61, 0x67],
  },
};

function freeTextDomain(): ValueDomain {
  return {
    start: 0,
    step: (_state, code) => (code === 0 ? null : 1),
    accepts: (state) => state === 1,
    boundaries: [0x01],
  };
}

/** The pattern positions reachable without consuming a character (a star may match nothing). */
function closeOverStars(
  states: Iterable<readonly [number, number]>,
  patterns: readonly (readonly GlobToken[])[],
): Array<readonly [number, number]> {
  const seen = new Set<string>();
  const out: Array<readonly [number, number]> = [];
  const pending = [...states];
  while (pending.length > 0) {
    const [p, i] = pending.pop() as readonly [number, number];
    const key = `${p}:${i}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push([p, i]);
    if (patterns[p]?.[i]?.kind === 'star') pending.push([p, i + 1]);
  }
  return out.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

/**
 * Whether `patterns` together accept every value of `domain`; null when the patterns are too
 * complex to decide within MAX_UNIVERSALITY_STATES (callers treat that as "every").
 */
export function globsMatchEveryValue(patterns: readonly string[], domain: ValueDomain): boolean | null {
  const tokenLists = patterns.map((pattern) => compiled(pattern).tokens);
  const cuts = new Set<number>([0, CODE_UNIT_END, ...domain.boundaries]);
  for (const tokens of tokenLists) {
    for (const token of tokens) {
      if (token.kind === 'char') cuts.add(token.code).add(token.code + 1);
      if (token.kind === 'class') for (const [low, high] of token.ranges) cuts.add(low).add(high + 1);
    }
  }
  // One representative per interval of code units that every token and the domain treat alike.
  const representatives = [...cuts].filter((code) => code < CODE_UNIT_END).sort((a, b) => a - b);

  const start = closeOverStars(
    tokenLists.map((_tokens, p) => [p, 0] as const),
    tokenLists,
  );
  const queue: Array<{ domainState: number; positions: Array<readonly [number, number]> }> = [];
  const visited = new Set<string>();
  const enqueue = (domainState: number, positions: Array<readonly [number, number]>): void => {
    const key = `${domainState}|${positions.map(([p, i]) => `${p}:${i}`).join(',')}`;
    if (visited.has(key)) return;
    visited.add(key);
    queue.push({ domainState, positions });
  };
  enqueue(domain.start, start);
  for (let head = 0; head < queue.length; head++) {
    if (visited.size > MAX_UNIVERSALITY_STATES) return null;
    const { domainState, positions } = queue[head] as (typeof queue)[number];
    if (domain.accepts(domainState) && !positions.some(([p, i]) => i === tokenLists[p]?.length)) return false;
    for (const code of representatives) {
      const nextDomainState = domain.step(domainState, code);
      if (nextDomainState === null) continue;
      const next: Array<readonly [number, number]> = [];
      for (const [p, i] of positions) {
        const token = (tokenLists[p] as readonly GlobToken[])[i];
        if (token === undefined) continue;
        if (token.kind === 'star') next.push([p, i]);
        else if (tokenMatches(token, code)) next.push([p, i + 1]);
      }
      enqueue(nextDomainState, closeOverStars(next, tokenLists));
    }
  }
  return true;
}

/** One key of a match block that accepts every value it can take. */
export interface UnconstrainedKey {
  key: MatchKey;
  patterns: string[];
  /** False when the patterns were too complex to prove they target anything. */
  proven: boolean;
}

/**
 * The keys of `spec` that accept every value, or null when some key is targeted. A rule "can
 * match every interface" when this is non-null: every key it has accepts every value (an empty
 * block trivially). A key's fact may be absent on some interfaces (no driver, no kind on a
 * physical port, no MAC): `driver: "*"` still counts as every interface, since it reaches every
 * interface that has a driver — lo, each veth, tap, bridge and physical port alike.
 * `pci` takes no wildcards, so a pci key always targets.
 */
export function unconstrainedKeys(spec: MatchSpec): UnconstrainedKey[] | null {
  const found: UnconstrainedKey[] = [];
  for (const key of MATCH_KEYS) {
    if (key === 'pci') {
      if (spec.pci !== undefined) return null;
      continue;
    }
    const patterns = spec[key];
    if (patterns === undefined) continue;
    const every = globsMatchEveryValue(patterns, VALUE_DOMAINS[key]);
    if (every === false) return null;
    found.push({ key, patterns: [...patterns], proven: every === true });
  }
  return found;
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
  rule: Rule,
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
