/**
 * fnmatch-style globs as the policy writes them: compiled once (cached), matched without building a
 * regular expression. Pure: no I/O. What a glob can match as a whole (coverage, every value) is in
 * glob-coverage.ts.
 */

export type GlobToken =
  | { kind: 'char'; code: number }
  | { kind: 'any-char' }
  | { kind: 'star' }
  | { kind: 'class'; negated: boolean; ranges: ReadonlyArray<readonly [number, number]> };

export interface CompiledGlob {
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
/** Holds every pattern of the largest policy (MAX_POLICY_PATTERNS, limits.ts) many times over. */
const GLOB_CACHE_LIMIT = 65_536;
const globCache = new Map<string, CompiledGlob>();

export function compiledGlob(pattern: string): CompiledGlob {
  let glob = globCache.get(pattern);
  if (glob === undefined) {
    if (globCache.size >= GLOB_CACHE_LIMIT) globCache.clear();
    glob = compileGlob(pattern);
    globCache.set(pattern, glob);
  }
  return glob;
}

export function tokenMatches(token: GlobToken, code: number): boolean {
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
  const glob = compiledGlob(pattern);
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
  const glob = compiledGlob(pattern);
  if (glob.unclosedBracket) return 'has a "[" without its closing "]"';
  if (glob.posixClass) return 'uses a POSIX character class such as [[:digit:]], which offloadd does not support';
  return null;
}

/** The text the pattern stands for when it has no wildcard (escapes removed), else null. */
export function globLiteral(pattern: string): string | null {
  return compiledGlob(pattern).literal;
}

/** The literal text every match starts with (escapes removed). */
export function globLiteralPrefix(pattern: string): string {
  let prefix = '';
  for (const token of compiledGlob(pattern).tokens) {
    if (token.kind !== 'char') break;
    prefix += String.fromCharCode(token.code);
  }
  return prefix;
}
