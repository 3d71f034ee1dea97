/**
 * What globs can match as a whole: whether one pattern covers another (for the lint) and whether a
 * key's patterns accept every value it can take (for refusing blanket rules). Pure: no I/O.
 */
import { compiledGlob, globLiteral, globLiteralPrefix, globMatch, tokenMatches, type GlobToken } from './glob';
import { MAX_BLANKET_PROOF_STEPS } from './limits';
import { MATCH_KEYS, type MatchKey, type MatchSpec } from './types';

type GlobKey = Exclude<MatchKey, 'pci'>;

/**
 * True only when every string `inner` matches is certainly matched by `outer`; false when unsure.
 * Decided for: equal patterns, a wildcard-free `inner`, and `outer` of the form `prefix*`.
 */
export function globCovers(outer: string, inner: string): boolean {
  if (outer === inner) return true;
  const innerLiteral = globLiteral(inner);
  if (innerLiteral !== null) return globMatch(outer, innerLiteral);
  const outerTokens = compiledGlob(outer).tokens;
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
// accepts and no pattern does is a value the key refuses: the key is targeted. Most keys refuse
// one of a few sample values, which answers at once; the walk, which patterns can make
// exponential, runs on a budget of steps shared by the whole policy (MAX_BLANKET_PROOF_STEPS).

/** The values one match key can take, as an automaton over UTF-16 code units. */
interface ValueDomain {
  start: number;
  step(state: number, code: number): number | null;
  accepts(state: number): boolean;
  /** Code units where `step` changes behaviour: intervals between them are treated alike. */
  boundaries: readonly number[];
  /** Values of the domain tried first: one that no pattern accepts settles it without a proof. */
  samples: readonly string[];
}

/** What proofs may still spend; one budget is shared by every key of a policy. */
export interface ProofBudget {
  steps: number;
}

/** IFNAMSIZ - 1: the kernel's longest interface name. */
const MAX_IFNAME_LENGTH = 15;
const CODE_UNIT_END = 0x10000;
const MAC_TEXT_LENGTH = 17;
const COLON = 0x3a;

/**
 * The kernel's dev_valid_name(): no NUL, '/', ':' or whitespace. Names are decoded as UTF-8
 * (link-message.ts), so any code unit can appear; 15 bytes are at most 15 code units.
 */
function isIfnameCode(code: number): boolean {
  return code > 0 && code !== 0x2f && code !== COLON && code !== 0x20 && !(code >= 0x09 && code <= 0x0d);
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
    boundaries: [0x01, 0x09, 0x0e, 0x20, 0x21, 0x2f, 0x30, COLON, COLON + 1],
    samples: ['lo', 'eth0', 'veth1a2b3c4', 'x', '0', '~', '\u0001', '\u00e9', 'zzzzzzzzzzzzzzz'],
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
    samples: ['00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff', '5a:a5:0f:f0:96:69'],
  },
};

function freeTextDomain(): ValueDomain {
  return {
    start: 0,
    step: (_state, code) => (code === 0 ? null : 1),
    accepts: (state) => state === 1,
    boundaries: [0x01],
    // Short: a text of any length is a value, so a sample says nothing a short one would not.
    samples: ['veth', 'bnxt_en', 'x', '~', '\u0001'],
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
 * complex to decide within what `budget` has left (callers treat that as "every"). The steps
 * spent are taken from `budget`.
 */
export function globsMatchEveryValue(
  patterns: readonly string[],
  domain: ValueDomain,
  budget: ProofBudget = { steps: MAX_BLANKET_PROOF_STEPS },
): boolean | null {
  if (domain.samples.some((value) => !patterns.some((pattern) => globMatch(pattern, value)))) return false;
  const tokenLists = patterns.map((pattern) => compiledGlob(pattern).tokens);
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
    const { domainState, positions } = queue[head] as (typeof queue)[number];
    if (domain.accepts(domainState) && !positions.some(([p, i]) => i === tokenLists[p]?.length)) return false;
    for (const code of representatives) {
      const nextDomainState = domain.step(domainState, code);
      if (nextDomainState === null) continue;
      budget.steps -= positions.length + 1;
      if (budget.steps < 0) return null;
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
export function unconstrainedKeys(spec: MatchSpec, budget?: ProofBudget): UnconstrainedKey[] | null {
  const found: UnconstrainedKey[] = [];
  for (const key of MATCH_KEYS) {
    if (key === 'pci') {
      if (spec.pci !== undefined) return null;
      continue;
    }
    const patterns = spec[key];
    if (patterns === undefined) continue;
    const every = globsMatchEveryValue(patterns, VALUE_DOMAINS[key], budget);
    if (every === false) return null;
    found.push({ key, patterns: [...patterns], proven: every === true });
  }
  return found;
}
