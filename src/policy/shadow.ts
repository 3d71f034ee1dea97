/**
 * Which earlier rule shadows each rule (matches every interface the later one matches, so the
 * later one never applies). Near-linear: comparing every pair froze the event loop for seconds on
 * large policies (issue 20 #9). Earlier rules are grouped by the set of keys they have (a rule can
 * only shadow one that has at least its keys) and indexed per key by what globCovers() can accept:
 * an exact pattern, a literal, `prefix*`, or another glob under its literal prefix. A later rule
 * then looks at the few earlier rules its patterns could be covered by, and checks those fully.
 * Pure: no I/O.
 */
import { globLiteral, globLiteralPrefix } from './glob';
import { globCovers } from './glob-coverage';
import { pciCovers } from './match';
import { MATCH_KEYS, type MatchKey, type MatchSpec, type PciPattern, type Rule } from './types';

/** True when every value of `inner` is certainly accepted by `outer` on this key. */
function keyCovers(key: MatchKey, outer: MatchSpec, inner: MatchSpec): boolean {
  if (key === 'pci') {
    const outerPci = outer.pci;
    if (outerPci === undefined) return true;
    return inner.pci !== undefined && inner.pci.every((i: PciPattern) => outerPci.some((o) => pciCovers(o, i)));
  }
  const outerPatterns = outer[key];
  if (outerPatterns === undefined) return true;
  const innerPatterns = inner[key];
  return innerPatterns !== undefined && innerPatterns.every((i) => outerPatterns.some((o) => globCovers(o, i)));
}

/** Whether `outer` matches every interface `inner` matches (as far as globCovers can tell). */
export function ruleCovers(outer: MatchSpec, inner: MatchSpec): boolean {
  return MATCH_KEYS.every((key) => keyCovers(key, outer, inner));
}

function push<K>(map: Map<K, number[]>, key: K, value: number): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else if (list[list.length - 1] !== value) list.push(value);
}

/** `prefix*` with nothing but literal characters before the one trailing star. */
function starPrefix(pattern: string): string | null {
  if (!pattern.endsWith('*') || pattern.endsWith('\\*')) return null;
  const head = pattern.slice(0, -1);
  return globLiteral(head);
}

/** Rules (by index) of one key set, indexed on one key by what their patterns can cover. */
class KeyIndex {
  private readonly exact = new Map<string, number[]>();
  private readonly literals = new Map<string, number[]>();
  private readonly prefixStars = new Map<string, number[]>();
  /** Other globs, by literal prefix: they can only cover a literal that starts with it. */
  private readonly globsByPrefix = new Map<string, number[]>();

  constructor(private readonly key: MatchKey) {}

  add(spec: MatchSpec, index: number): void {
    if (this.key === 'pci') {
      for (const pattern of spec.pci ?? []) push(this.exact, `${pattern.vendor}:${pattern.device}`, index);
      return;
    }
    for (const pattern of spec[this.key] ?? []) {
      push(this.exact, pattern, index);
      const literal = globLiteral(pattern);
      const prefix = starPrefix(pattern);
      if (literal !== null) push(this.literals, literal, index);
      else if (prefix !== null) push(this.prefixStars, prefix, index);
      else push(this.globsByPrefix, globLiteralPrefix(pattern), index);
    }
  }

  /** Rules that might cover the first pattern of `spec` on this key; their lists, unmerged. */
  candidates(spec: MatchSpec): number[][] {
    if (this.key === 'pci') {
      const first = spec.pci?.[0];
      return first === undefined ? [] : [this.exact.get(`${first.vendor}:${first.device}`) ?? []];
    }
    const first = spec[this.key]?.[0];
    if (first === undefined) return [];
    const found: number[][] = [this.exact.get(first) ?? []];
    const literal = globLiteral(first);
    const known = literal ?? globLiteralPrefix(first);
    for (let length = 0; length <= known.length; length++) {
      const prefix = known.slice(0, length);
      found.push(this.prefixStars.get(prefix) ?? []);
      if (literal !== null) found.push(this.globsByPrefix.get(prefix) ?? []);
    }
    if (literal !== null) found.push(this.literals.get(literal) ?? []);
    return found;
  }
}

function keySetOf(spec: MatchSpec): MatchKey[] {
  return MATCH_KEYS.filter((key) => spec[key] !== undefined);
}

/**
 * For each rule, the index of the first earlier rule that shadows it, or -1.
 */
export function findShadowingRules(rules: readonly Rule[]): number[] {
  const groups = new Map<string, { keys: MatchKey[]; indexes: Map<MatchKey, KeyIndex> }>();
  const shadowedBy: number[] = [];
  rules.forEach((rule, index) => {
    const keys = keySetOf(rule.match);
    let best = -1;
    for (const group of groups.values()) {
      if (!group.keys.every((key) => keys.includes(key))) continue;
      // The key of this group with the fewest candidates decides which rules are checked.
      let fewest: number[][] | null = null;
      let fewestCount = Infinity;
      for (const key of group.keys) {
        const lists = (group.indexes.get(key) as KeyIndex).candidates(rule.match);
        const count = lists.reduce((sum, list) => sum + list.length, 0);
        if (count < fewestCount) {
          fewest = lists;
          fewestCount = count;
        }
      }
      for (const list of fewest ?? []) {
        for (const candidate of list) {
          if (best >= 0 && candidate >= best) break; // lists ascend: nothing earlier follows
          if (ruleCovers((rules[candidate] as Rule).match, rule.match)) best = candidate;
        }
      }
    }
    shadowedBy.push(best);
    const name = keys.join(',');
    let group = groups.get(name);
    if (group === undefined) {
      group = { keys, indexes: new Map(keys.map((key) => [key, new KeyIndex(key)])) };
      groups.set(name, group);
    }
    for (const keyIndex of group.indexes.values()) keyIndex.add(rule.match, index);
  });
  return shadowedBy;
}
