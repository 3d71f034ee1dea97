/**
 * Policy file (YAML) → Policy. Every problem is a PolicyError carrying the 1-based line and
 * column of the offending node, its dotted key path and a hint; nothing half-valid gets through.
 *
 * Decisions worth knowing:
 * - YAML 1.2 by default, so `off` is a string; `%YAML 1.1` documents make it a boolean. Feature
 *   values accept both, and the strings on/off in any case.
 * - `pci:` ids are vendor:device (4 hex digits each), optionally :subvendor:subdevice, as
 *   `lspci -n` prints them; case-insensitive, stored lower case; a `0x` prefix on each id is
 *   tolerated because sysfs and the kernel's tables write them that way. No wildcards.
 * - `mac:` patterns are lower-cased globs over colon-separated hex; a wildcard-free one must be
 *   a whole MAC.
 * - Feature names are checked against the running kernel's list (`hostFeatures`). A name some
 *   kernel or ethtool knows but this one lacks is a warning; an unknown name is an error.
 *   Conflicts are judged over every known name, so a policy valid on one host is valid on all.
 */
import { existsSync } from 'node:fs';
import { isAlias, isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, type Document, type Scalar } from 'yaml';
import { PolicyError, type SourcePosition } from '../errors';
import { DEFAULT_POLICY_TEXT, SHIPPED_POLICY_PATH } from '../generated/build-info';
import {
  KNOWN_KERNEL_FEATURES,
  RETIRED_KERNEL_FEATURES,
  didYouMean,
  findAlias,
  resolveFeatureName,
  suggestFeatureName,
} from './feature-names';
import { nearBlanketMatch, nearBlanketUnion } from './blanket';
import { globLiteral, globProblem } from './glob';
import { unconstrainedKeys, type UnconstrainedKey } from './glob-coverage';
import { defaultPolicyPath, MAX_POLICY_BYTES, MAX_POLICY_RULES, readPolicyBytes, sha256 } from './policy-file';
import {
  MATCH_KEYS,
  onOff,
  type FlappingLimits,
  type LedgerLimits,
  type MatchSpec,
  type Mode,
  type PciPattern,
  type Policy,
  type PolicyWarning,
  type Rule,
  type WantedFeature,
} from './types';

/** Policy.path of the shipped default. */
export const BUILT_IN_POLICY_LABEL = '(built-in default)';
const MODES: readonly Mode[] = ['enforce', 'report'];
const TOP_KEYS = ['mode', 'sweep_interval', 'flapping', 'ledger', 'attribution', 'rules'] as const;
const RULE_KEYS = ['name', 'mode', 'broad', 'match', 'features'] as const;

/** Longest wait we schedule: keeps every timer far below setTimeout's 24.8-day overflow. */
const ONE_DAY_SEC = 86_400;

interface IntegerField<Name extends string> {
  key: Name;
  min: number;
  max: number;
  fallback: number;
  unit: string;
}

const SWEEP_INTERVAL: IntegerField<'sweep_interval'> = {
  key: 'sweep_interval',
  min: 0,
  max: ONE_DAY_SEC,
  fallback: 300,
  unit: 'seconds (0 disables the sweep)',
};

const FLAPPING_FIELDS = [
  { key: 'max_corrections', min: 1, max: 10_000, fallback: 5, unit: 'corrections' },
  { key: 'window', min: 1, max: ONE_DAY_SEC, fallback: 60, unit: 'seconds' },
  { key: 'max_backoff', min: 1, max: ONE_DAY_SEC, fallback: 600, unit: 'seconds' },
] as const satisfies ReadonlyArray<IntegerField<string>>;

const LEDGER_FIELDS = [
  { key: 'max_bytes', min: 4096, max: Number.MAX_SAFE_INTEGER, fallback: 16_777_216, unit: 'bytes' },
  { key: 'keep', min: 0, max: 1000, fallback: 4, unit: 'rotated files' },
] as const satisfies ReadonlyArray<IntegerField<string>>;

const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$/;
const PCI_ID = /^(?:0x)?([0-9a-f]{4}):(?:0x)?([0-9a-f]{4})(?::(?:0x)?([0-9a-f]{4}):(?:0x)?([0-9a-f]{4}))?$/;
const MAC_PATTERN_CHARS = /^[0-9a-f:*?[\]!^\\-]*$/;
const WHOLE_MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

const BLANKET_HINT =
  'offloadd only changes the interfaces a rule targets, so a rule must name what it matches ' +
  '(driver, pci, name, mac or kind), e.g. `match: { driver: bnxt_en, pci: "14e4:1750" }`; ' +
  'rules that can match every interface (lo, veths, taps, bridges included) are refused by design ' +
  'unless the rule says so with `broad: "<why>"` next to its name';

/** What "every value" means for each key, in messages about blanket rules. */
const EVERY_VALUE: Record<UnconstrainedKey['key'], string> = {
  name: 'every interface name',
  driver: 'every driver (every interface that has one: lo, veths, taps, bridges, physical ports)',
  kind: 'every kind (every virtual interface)',
  mac: 'every MAC address',
  pci: 'every PCI id',
};
const FEATURE_NAME_HINT =
  'use a kernel feature string (rx-gro, tx-generic-segmentation; `ethtool -k <interface>` lists them) ' +
  'or an ethtool name (gro, gso, tso, tx, sg, ...)';
const PCI_HINT =
  'write vendor:device in hex as `lspci -n` prints them, e.g. "14e4:1750", optionally followed by ' +
  ':subsystem-vendor:subsystem-device; a 0x prefix on each id is allowed';

/** Throws when a mapping key is not acceptable. */
type KeyCheck = (name: string, keyNode: Scalar, path: string) => void;

/** A key of a YAML mapping with the node of its value. */
interface Entry {
  name: string;
  keyNode: Scalar;
  /** The value node (aliases resolved), or null when the key has no value. */
  value: unknown;
  /** Where to point for problems with the value: the value itself, else the key. */
  at: unknown;
  /** Dotted key path, e.g. `rules[0].features.gro`. */
  path: string;
}

function describeNode(node: unknown): string {
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (!isScalar(node) || node.value === null || node.value === undefined) return 'nothing';
  const value = node.value;
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'number' || typeof value === 'bigint') return `the number ${String(value)}`;
  if (typeof value === 'boolean') return `the boolean ${String(value)}`;
  return `a ${typeof value}`;
}

function syntaxHint(code: string): string {
  switch (code) {
    case 'TAB_AS_INDENT':
      return 'indent with spaces: YAML does not allow tabs for indentation';
    case 'MULTIPLE_DOCS':
      return 'a policy is one YAML document: remove the extra `---` separator';
    case 'BAD_INDENT':
    case 'BLOCK_AS_IMPLICIT_KEY':
      return 'check the indentation here: nested keys go on their own line, indented under their parent';
    case 'MISSING_CHAR':
      return 'a quote or bracket opened earlier is not closed';
    default:
      return 'fix the YAML syntax at this position; quoting the value often helps';
  }
}

function joinPath(parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`;
}

class PolicyParser {
  private readonly warnings: PolicyWarning[] = [];
  /** Every name whose expansion decides conflicts: the host's and every known one. */
  private readonly universe: readonly string[];

  constructor(
    private readonly file: string,
    private readonly lines: LineCounter,
    private readonly doc: Document.Parsed,
    private readonly hostFeatures: readonly string[],
  ) {
    this.universe = [...new Set([...hostFeatures, ...KNOWN_KERNEL_FEATURES, ...RETIRED_KERNEL_FEATURES])];
  }

  parse(checksum: string): Policy {
    const firstError = this.doc.errors[0];
    if (firstError !== undefined) {
      // The parser's own text for this one recommends a library call.
      const detail =
        firstError.code === 'MULTIPLE_DOCS' ? 'the file holds more than one YAML document' : firstError.message;
      throw new PolicyError(this.file, `YAML syntax error: ${detail}`, {
        position: this.positionAt(firstError.pos[0]),
        hint: syntaxHint(firstError.code),
      });
    }
    for (const warning of this.doc.warnings) {
      this.warnings.push({ message: warning.message, position: this.positionAt(warning.pos[0]) });
    }

    const root = this.deref(this.doc.contents, '');
    if (root === null || (isScalar(root) && root.value === null)) {
      this.fail(root, '', 'the policy is empty', {
        hint: 'write at least `rules:` with one targeted rule; see the commented default policy shipped with offloadd',
      });
    }
    if (!isMap(root)) {
      this.fail(root, '', `the policy must be a mapping of settings, found ${describeNode(root)}`, {
        hint: `start with top-level keys such as \`mode: enforce\` and \`rules:\` (allowed: ${TOP_KEYS.join(', ')})`,
      });
    }
    const top = this.entries(root, '', TOP_KEYS, 'at the top level');
    // Settings before rules: they usually come first in the file, and so should their errors.
    return {
      path: this.file,
      checksum,
      mode: this.mode(top.get('mode')) ?? 'enforce',
      sweepIntervalSec: this.integer(top.get('sweep_interval'), SWEEP_INTERVAL),
      flapping: this.flapping(top.get('flapping')),
      ledger: this.ledger(top.get('ledger')),
      attribution: top.has('attribution') ? this.onOff(top.get('attribution') as Entry) : true,
      rules: this.rules(top.get('rules'), root),
      warnings: this.warnings,
    };
  }

  // --- positions and reporting -------------------------------------------------------------

  private positionAt(offset: number): SourcePosition {
    const { line, col } = this.lines.linePos(offset);
    // An empty source has no line starts: report its beginning.
    return { line: Math.max(line, 1), column: Math.max(col, 1) };
  }

  private position(node: unknown): SourcePosition | undefined {
    if (!isNode(node) || !node.range) return undefined;
    return this.positionAt(node.range[0]);
  }

  private fail(at: unknown, key: string, message: string, options: { hint?: string } = {}): never {
    const position = this.position(at) ?? { line: 1, column: 1 };
    throw new PolicyError(this.file, message, { position, key: key === '' ? undefined : key, hint: options.hint });
  }

  private warn(at: unknown, key: string, message: string): void {
    this.warnings.push({ message, position: this.position(at), key });
  }

  /** Follows an alias to its anchor's node; an alias without an anchor is an error. */
  private deref(node: unknown, key: string): unknown {
    if (!isAlias(node)) return node;
    const target = node.resolve(this.doc);
    if (target === undefined) {
      this.fail(node, key, `the alias *${node.source} has no matching anchor &${node.source}`, {
        hint: 'define the anchor before using it, or write the value out',
      });
    }
    return target;
  }

  // --- generic readers ---------------------------------------------------------------------

  /**
   * The keys of a mapping, in order, refusing unknown and duplicate keys. Duplicates are found
   * here rather than by the YAML parser so the message can say where the first one is.
   */
  private entries<K extends string>(
    map: unknown,
    path: string,
    allowed: readonly K[] | KeyCheck,
    where: string,
  ): Map<K, Entry> {
    const found = new Map<K, Entry>();
    if (!isMap(map)) return found;
    for (const pair of map.items) {
      const keyNode = pair.key;
      if (!isScalar(keyNode) || typeof keyNode.value !== 'string') {
        const keyPath = joinPath(path, isScalar(keyNode) ? String(keyNode.value) : '?');
        this.fail(keyNode, keyPath, `keys must be plain names, found ${describeNode(keyNode)} ${where}`, {
          hint: typeof allowed === 'function' ? FEATURE_NAME_HINT : `allowed keys ${where}: ${allowed.join(', ')}`,
        });
      }
      const name = keyNode.value;
      const entryPath = joinPath(path, name);
      if (typeof allowed === 'function') {
        allowed(name, keyNode, entryPath);
      } else if (!(allowed as readonly string[]).includes(name)) {
        const suggestion = didYouMean(name, allowed);
        this.fail(keyNode, entryPath, `unknown key "${name}" ${where}`, {
          hint: `${suggestion ? `did you mean "${suggestion}"? ` : ''}allowed keys ${where}: ${allowed.join(', ')}`,
        });
      }
      const previous = found.get(name as K);
      if (previous !== undefined) {
        this.fail(
          keyNode,
          entryPath,
          `duplicate key "${name}" (first at line ${this.position(previous.keyNode)?.line ?? '?'})`,
          {
            hint: 'a key may appear once per mapping: remove or merge one of them',
          },
        );
      }
      const value = this.deref(pair.value, entryPath);
      const isEmpty = value === null || (isScalar(value) && value.value === null);
      found.set(name as K, {
        name,
        keyNode,
        value: isEmpty ? null : value,
        at: isNode(pair.value) && pair.value.range ? pair.value : keyNode,
        path: entryPath,
      });
    }
    return found;
  }

  private string(entry: Entry, what: string): string {
    const node = entry.value;
    if (!isScalar(node) || typeof node.value !== 'string' || node.value === '') {
      this.fail(entry.at, entry.path, `${entry.path} must be ${what}, found ${describeNode(node)}`, {
        hint:
          isScalar(node) && node.value !== null ? 'quote the value to make it a string' : `give ${entry.path} a value`,
      });
    }
    return node.value;
  }

  private mode(entry: Entry | undefined): Mode | null {
    if (entry === undefined) return null;
    const text = this.string(entry, 'enforce or report');
    const mode = MODES.find((m) => m === text);
    if (mode === undefined) {
      const suggestion = didYouMean(text, MODES);
      this.fail(entry.at, entry.path, `${entry.path} must be enforce or report, found "${text}"`, {
        hint: `${suggestion ? `did you mean "${suggestion}"? ` : ''}enforce corrects drift; report only records it`,
      });
    }
    return mode;
  }

  private integer(entry: Entry | undefined, field: IntegerField<string>): number {
    if (entry === undefined) return field.fallback;
    const node = entry.value;
    const range = `from ${field.min} to ${field.max} ${field.unit}`;
    if (!isScalar(node) || typeof node.value !== 'number') {
      this.fail(entry.at, entry.path, `${entry.path} must be a whole number ${range}, found ${describeNode(node)}`, {
        hint: `write a plain number without quotes or units, e.g. \`${field.key}: ${field.fallback}\``,
      });
    }
    const value = node.value;
    if (!Number.isInteger(value)) {
      this.fail(entry.at, entry.path, `${entry.path} must be a whole number, found ${value}`, {
        hint: `use a whole number ${range}`,
      });
    }
    if (value < field.min || value > field.max) {
      const problem = value < 0 ? 'must not be negative' : 'is out of range';
      this.fail(entry.at, entry.path, `${entry.path} ${problem}: found ${value}`, {
        hint: `use a whole number ${range}`,
      });
    }
    return value;
  }

  /** A mapping of whole numbers with defaults (`flapping`, `ledger`). */
  private integerSection<K extends string>(
    entry: Entry | undefined,
    fields: ReadonlyArray<IntegerField<K>>,
  ): Record<K, number> {
    const values = {} as Record<K, number>;
    const keys = fields.map((f) => f.key);
    let found = new Map<K, Entry>();
    if (entry !== undefined) {
      if (!isMap(entry.value)) {
        this.fail(entry.at, entry.path, `${entry.path} must be a mapping, found ${describeNode(entry.value)}`, {
          hint: `allowed keys in ${entry.path}: ${keys.join(', ')}; leave ${entry.path} out to use the defaults`,
        });
      }
      found = this.entries(entry.value, entry.path, keys, `in ${entry.path}`);
    }
    for (const field of fields) values[field.key] = this.integer(found.get(field.key), field);
    return values;
  }

  private flapping(entry: Entry | undefined): FlappingLimits {
    const values = this.integerSection(entry, FLAPPING_FIELDS);
    return { maxCorrections: values.max_corrections, windowSec: values.window, maxBackoffSec: values.max_backoff };
  }

  private ledger(entry: Entry | undefined): LedgerLimits {
    const values = this.integerSection(entry, LEDGER_FIELDS);
    return { maxBytes: values.max_bytes, keepFiles: values.keep };
  }

  // --- rules -------------------------------------------------------------------------------

  private rules(entry: Entry | undefined, root: unknown): Rule[] {
    const node = entry?.value ?? null;
    if (node !== null && !isSeq(node)) {
      this.fail(entry?.at, 'rules', `rules must be a list, found ${describeNode(node)}`, {
        hint: 'write each rule as a list item starting with `- name: ...`',
      });
    }
    if (node === null || node.items.length === 0) {
      this.warn(
        entry?.keyNode ?? root,
        'rules',
        'the policy has no rules: offloadd will watch interfaces but change nothing',
      );
      return [];
    }
    if (node.items.length > MAX_POLICY_RULES) {
      this.fail(
        node.items[MAX_POLICY_RULES],
        `rules[${MAX_POLICY_RULES}]`,
        `the policy has ${node.items.length} rules, more than the ${MAX_POLICY_RULES} allowed`,
        {
          hint: 'merge rules that set the same features (a match key takes a list), or match by driver or pci instead of one rule per name',
        },
      );
    }
    const firstByName = new Map<string, unknown>();
    const rules = node.items.map((item, index) => this.rule(item, `rules[${index}]`, firstByName));
    this.checkUnionTargeted(rules, node.items);
    return rules;
  }

  /** Refuses rules that each target something but together take (nearly) every interface. */
  private checkUnionTargeted(rules: readonly Rule[], items: readonly unknown[]): void {
    const union = nearBlanketUnion(rules);
    if (union === null) return;
    const last = rules.map((rule) => rule.name).lastIndexOf(union.rules[union.rules.length - 1] as string);
    this.fail(
      items[last],
      `rules[${last}]`,
      `rules ${union.rules.map((name) => `"${name}"`).join(', ')} together match nearly every interface: ` +
        `on a typical host they would take ${union.samples.join(', ')}`,
      { hint: `${BLANKET_HINT}; or, if that is the intent, mark one of them broad` },
    );
  }

  private rule(item: unknown, path: string, firstByName: Map<string, unknown>): Rule {
    const node = this.deref(item, path);
    if (!isMap(node)) {
      this.fail(
        node ?? item,
        path,
        `${path} must be a mapping with name, match and features, found ${describeNode(node)}`,
        {
          hint: 'write a rule as `- name: ...` followed by indented `match:` and `features:` blocks',
        },
      );
    }
    const keys = this.entries(node, path, RULE_KEYS, `in a rule`);
    const name = this.ruleName(keys.get('name'), node, path, firstByName);
    const mode = this.mode(keys.get('mode'));
    const broad = this.broad(keys.get('broad'));
    const match = this.match(keys.get('match'), node, path, name, broad);
    return {
      name,
      mode,
      broad: broad?.reason ?? null,
      match,
      features: this.features(keys.get('features'), node, path, name),
      position: this.position(node) ?? { line: 1, column: 1 },
    };
  }

  /** `broad: "<why>"`: the rule's explicit opt-in to matching every interface. */
  private broad(entry: Entry | undefined): { reason: string; entry: Entry } | null {
    if (entry === undefined) return null;
    const node = entry.value;
    if (!isScalar(node) || typeof node.value !== 'string' || node.value.trim() === '') {
      this.fail(
        entry.at,
        entry.path,
        `${entry.path} must be the reason the rule matches every interface, found ${describeNode(node)}`,
        {
          hint: 'write why, e.g. `broad: "lab host: GRO off everywhere for packet captures"`; leave broad out for a targeted rule',
        },
      );
    }
    return { reason: node.value, entry };
  }

  private ruleName(
    entry: Entry | undefined,
    ruleNode: unknown,
    path: string,
    firstByName: Map<string, unknown>,
  ): string {
    const nameHint =
      'names use letters, digits and . _ : @ - (at most 64, starting with a letter or digit); ' +
      'they identify the rule in logs, the ledger and `offloadctl explain`';
    if (entry === undefined) {
      this.fail(ruleNode, `${path}.name`, `${path} has no name`, { hint: `add \`name: <short-id>\`; ${nameHint}` });
    }
    const name = this.string(entry, 'a rule name');
    if (!RULE_NAME.test(name)) {
      this.fail(entry.at, entry.path, `invalid rule name ${JSON.stringify(name)}`, { hint: nameHint });
    }
    const first = firstByName.get(name);
    if (first !== undefined) {
      this.fail(
        entry.at,
        entry.path,
        `rule name "${name}" is used twice (first at line ${this.position(first)?.line ?? '?'})`,
        {
          hint: 'give every rule its own name',
        },
      );
    }
    firstByName.set(name, entry.at);
    return name;
  }

  private match(
    entry: Entry | undefined,
    ruleNode: unknown,
    path: string,
    ruleName: string,
    broad: { reason: string; entry: Entry } | null,
  ): MatchSpec {
    if (entry === undefined) {
      this.fail(ruleNode, `${path}.match`, `rule "${ruleName}" has no match block`, { hint: BLANKET_HINT });
    }
    if (entry.value !== null && !isMap(entry.value)) {
      this.fail(entry.at, entry.path, `${entry.path} must be a mapping, found ${describeNode(entry.value)}`, {
        hint: `allowed keys: ${MATCH_KEYS.join(', ')}`,
      });
    }
    const keys = this.entries(entry.value, entry.path, MATCH_KEYS, `in a match block`);
    const spec: MatchSpec = {};
    for (const [key, keyEntry] of keys) {
      const patterns = this.stringList(keyEntry);
      if (key === 'pci') spec.pci = patterns.map((p) => this.pciPattern(p.text, p.at, p.path));
      else if (key === 'mac') spec.mac = patterns.map((p) => this.macPattern(p.text, p.at, p.path));
      else spec[key] = patterns.map((p) => this.glob(p.text, p.at, p.path));
    }
    this.checkTargeted(spec, entry, ruleName, broad);
    return spec;
  }

  /**
   * Refuses a rule that can match every interface (see unconstrainedKeys) unless it opts in
   * with `broad`; an opted-in rule is loaded with a loud warning, every time.
   */
  private checkTargeted(
    spec: MatchSpec,
    entry: Entry,
    ruleName: string,
    broad: { reason: string; entry: Entry } | null,
  ): void {
    const unconstrained = unconstrainedKeys(spec);
    const nearly = unconstrained === null ? nearBlanketMatch(spec) : null;
    if (nearly !== null && broad === null) {
      this.fail(
        entry.at,
        entry.path,
        `rule "${ruleName}" matches nearly every interface: on a typical host it would take ${nearly.join(', ')}`,
        { hint: `${BLANKET_HINT}; a negated class such as [!x]* leaves out almost nothing` },
      );
    }
    if (unconstrained === null && nearly === null) {
      if (broad !== null) {
        this.warn(
          broad.entry.keyNode,
          broad.entry.path,
          `rule "${ruleName}" is marked broad but its match targets specific interfaces: remove \`broad\``,
        );
      }
      return;
    }
    if (unconstrained === null) return; // near-blanket, and broad says so
    const why =
      unconstrained.length === 0
        ? 'its match block is empty'
        : unconstrained
            .map(
              ({ key, patterns, proven }) =>
                `${key} ${patterns.map((p) => JSON.stringify(p)).join(', ')} ${proven ? 'matches' : 'is too complex to prove it does not match'} ${EVERY_VALUE[key]}`,
            )
            .join(', and ');
    if (broad === null) {
      const message =
        unconstrained.length === 0
          ? `rule "${ruleName}" has an empty match block`
          : `rule "${ruleName}" can match every interface: ${why}`;
      this.fail(entry.at, entry.path, message, { hint: BLANKET_HINT });
    }
    this.warn(
      broad.entry.keyNode,
      broad.entry.path,
      `rule "${ruleName}" is broad and matches every interface, lo, veths, taps and bridges included (${why}); ` +
        `reason given: ${JSON.stringify(broad.reason)}`,
    );
  }

  /** A string or a non-empty list of strings (any-of). */
  private stringList(entry: Entry): Array<{ text: string; at: unknown; path: string }> {
    const hint = `write one string or a list of strings, e.g. \`${entry.name}: [a, b]\``;
    const node = entry.value;
    const items = isSeq(node)
      ? node.items.map((item, i) => ({ item, path: `${entry.path}[${i}]` }))
      : [{ item: node, path: entry.path }];
    if (isSeq(node) && items.length === 0) {
      this.fail(entry.at, entry.path, `${entry.path} is an empty list, which matches nothing`, { hint });
    }
    return items.map(({ item, path }) => {
      const value = this.deref(item, path);
      if (!isScalar(value) || typeof value.value !== 'string' || value.value === '') {
        const unquoted = isScalar(value) && typeof value.value !== 'string' && value.value !== null;
        this.fail(value ?? entry.at, path, `${path} must be a non-empty string, found ${describeNode(value)}`, {
          hint: unquoted ? `quote it so YAML reads a string, e.g. ${entry.name}: "${String(value.value)}"` : hint,
        });
      }
      return { text: value.value, at: value, path };
    });
  }

  private glob(text: string, at: unknown, path: string): string {
    const problem = globProblem(text);
    if (problem !== null) {
      this.fail(at, path, `pattern ${JSON.stringify(text)} ${problem}`, {
        hint: 'patterns use * ? [abc] [a-z] [!x]; escape a literal [ as \\[',
      });
    }
    return text;
  }

  private macPattern(text: string, at: unknown, path: string): string {
    const lower = text.toLowerCase();
    const hint =
      'write a MAC as six colon-separated hex octets, e.g. "00:10:18:ab:cd:ef", or a glob such as "00:10:18:*"';
    if (!MAC_PATTERN_CHARS.test(lower)) {
      const bad = [...lower].find((c) => !MAC_PATTERN_CHARS.test(c)) ?? '';
      this.fail(at, path, `character ${JSON.stringify(bad)} cannot appear in MAC pattern ${JSON.stringify(text)}`, {
        hint,
      });
    }
    const pattern = this.glob(lower, at, path);
    if (globLiteral(pattern) !== null && !WHOLE_MAC.test(pattern)) {
      this.fail(at, path, `${JSON.stringify(text)} is not a whole MAC address`, { hint });
    }
    return pattern;
  }

  private pciPattern(text: string, at: unknown, path: string): PciPattern {
    const parsed = PCI_ID.exec(text.toLowerCase());
    if (parsed === null) {
      this.fail(at, path, `invalid PCI id ${JSON.stringify(text)}`, { hint: PCI_HINT });
    }
    const [, vendor, device, subsystemVendor, subsystemDevice] = parsed;
    return {
      vendor: vendor ?? '',
      device: device ?? '',
      subsystemVendor: subsystemVendor ?? null,
      subsystemDevice: subsystemDevice ?? null,
      text,
    };
  }

  // --- features ----------------------------------------------------------------------------

  private features(entry: Entry | undefined, ruleNode: unknown, path: string, ruleName: string): WantedFeature[] {
    const hint = 'list the features to keep, e.g. `features: { gro: off, gso: off }`';
    if (entry === undefined) {
      this.fail(ruleNode, `${path}.features`, `rule "${ruleName}" has no features block`, { hint });
    }
    if (entry.value !== null && !isMap(entry.value)) {
      const found = describeNode(entry.value);
      this.fail(entry.at, entry.path, `${entry.path} must be a mapping of feature: on|off, found ${found}`, { hint });
    }
    const checkName: KeyCheck = (name, keyNode, keyPath) => this.checkFeatureName(name, keyNode, keyPath);
    const keys = this.entries(entry.value, entry.path, checkName, 'in features');
    if (keys.size === 0) {
      this.fail(entry.at, entry.path, `rule "${ruleName}" sets no features`, { hint });
    }

    const wanted = new Map<string, WantedFeature>();
    const claimedBy = new Map<string, { entry: Entry; on: boolean }>();
    for (const featureEntry of keys.values()) {
      const on = this.onOff(featureEntry);
      for (const feature of resolveFeatureName(featureEntry.name, this.universe)?.features ?? []) {
        const claim = claimedBy.get(feature);
        if (claim !== undefined && claim.on !== on) {
          const line = this.position(claim.entry.keyNode)?.line ?? '?';
          this.fail(
            featureEntry.keyNode,
            featureEntry.path,
            `${featureEntry.name}: ${onOff(on)} contradicts ${claim.entry.name}: ${onOff(claim.on)} ` +
              `(line ${line}): both set ${feature}`,
            {
              hint:
                'a rule can want only one state per kernel feature: remove one of the two, ' +
                'or name the kernel features one by one instead of the ethtool alias',
            },
          );
        }
        claimedBy.set(feature, { entry: featureEntry, on });
      }
      this.addWanted(wanted, featureEntry, on);
    }
    return [...wanted.values()];
  }

  /** Refuses a feature name that no kernel and no ethtool alias knows, with a suggestion. */
  private checkFeatureName(name: string, keyNode: Scalar, path: string): void {
    if (resolveFeatureName(name, this.universe) !== null) return;
    const suggestion = suggestFeatureName(name);
    this.fail(keyNode, path, `unknown feature "${name}"`, {
      hint: `${suggestion ? `did you mean "${suggestion}"? ` : ''}${FEATURE_NAME_HINT}`,
    });
  }

  private addWanted(wanted: Map<string, WantedFeature>, entry: Entry, on: boolean): void {
    const resolved = resolveFeatureName(entry.name, this.hostFeatures);
    if (resolved === null || resolved.features.length === 0) {
      const alias = findAlias(entry.name);
      const what = alias
        ? `${entry.name} stands for ${alias.pattern}, and this kernel has no such feature`
        : `this kernel has no feature ${entry.name}`;
      this.warn(entry.keyNode, entry.path, `${what}: the setting has no effect on this host`);
      return;
    }
    for (const feature of resolved.features) {
      const existing = wanted.get(feature);
      if (existing === undefined) wanted.set(feature, { feature, on, as: entry.name, explicit: resolved.explicit });
      else existing.explicit ||= resolved.explicit;
    }
  }

  private onOff(entry: Entry): boolean {
    const node = entry.value;
    if (isScalar(node)) {
      if (typeof node.value === 'boolean') return node.value;
      if (typeof node.value === 'string') {
        const word = node.value.toLowerCase();
        if (word === 'on' || word === 'off') return word === 'on';
      }
    }
    this.fail(entry.at, entry.path, `${entry.name} must be on or off, found ${describeNode(node)}`, {
      hint: `write \`${entry.name}: off\` or \`${entry.name}: on\` (true and false also work)`,
    });
  }
}

function parseWithChecksum(text: string, path: string, hostFeatures: readonly string[], checksum: string): Policy {
  const lines = new LineCounter();
  // uniqueKeys off: PolicyParser reports duplicates itself, with the first one's line.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false, version: '1.2' });
  return new PolicyParser(path, lines, doc, hostFeatures).parse(checksum);
}

/** Parses policy text (no I/O). `path` is only used in messages; checksum is over the UTF-8 bytes. */
export function parsePolicy(text: string, path: string, hostFeatures: readonly string[]): Policy {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > MAX_POLICY_BYTES) {
    throw new PolicyError(path, `the policy is larger than the ${MAX_POLICY_BYTES} bytes allowed`, {
      hint: 'check that the text is the policy',
    });
  }
  return parseWithChecksum(text, path, hostFeatures, sha256(bytes));
}

/** Reads and parses a policy file; an unreadable file is a PolicyError with a hint. */
export function loadPolicyFile(path: string, hostFeatures: readonly string[]): Policy {
  const bytes = readPolicyBytes(path);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (error) {
    throw new PolicyError(path, 'the policy is not valid UTF-8 text', { hint: 'save it as UTF-8', cause: error });
  }
  return parseWithChecksum(text, path, hostFeatures, sha256(bytes));
}

/** Where an installed policy lives; the shipped default applies when there is none. */
export const DEFAULT_POLICY_PATH = '/etc/offloadd/policy.yaml';

/**
 * The policy the daemon runs: `policyPath` when given, else DEFAULT_POLICY_PATH if it exists,
 * else the shipped default. Throws PolicyError.
 */
export function loadConfiguredPolicy(policyPath: string | null, hostFeatures: readonly string[]): Policy {
  if (policyPath !== null) return loadPolicyFile(policyPath, hostFeatures);
  if (existsSync(DEFAULT_POLICY_PATH)) return loadPolicyFile(DEFAULT_POLICY_PATH, hostFeatures);
  return loadDefaultPolicy(hostFeatures);
}

export { defaultPolicyPath };

/** The shipped default policy, embedded at build time; its `path` is BUILT_IN_POLICY_LABEL. */
export function loadDefaultPolicy(hostFeatures: readonly string[]): Policy {
  return { ...parsePolicy(DEFAULT_POLICY_TEXT, SHIPPED_POLICY_PATH, hostFeatures), path: BUILT_IN_POLICY_LABEL };
}
