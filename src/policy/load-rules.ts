/**
 * The policy's `rules:` list → Rule[]: each rule's name, mode, `broad:` opt-in, match block and
 * features (load-features.ts), and the refusal of rules that target nothing in particular.
 *
 * - `pci:` ids are vendor:device (4 hex digits each), optionally :subvendor:subdevice, as
 *   `lspci -n` prints them; case-insensitive, stored lower case; a `0x` prefix on each id is
 *   tolerated because sysfs and the kernel's tables write them that way. No wildcards.
 * - `mac:` patterns are lower-cased globs over colon-separated hex; a wildcard-free one must be
 *   a whole MAC.
 * - A rule that can match every interface (glob-coverage.ts), or nearly every one on a typical
 *   host (blanket.ts), alone or with the other rules, is refused unless it says `broad: "<why>"`.
 */
import { isMap, isScalar, isSeq } from 'yaml';
import { nearBlanketMatch, nearBlanketUnion } from './blanket';
import { globLiteral, globProblem } from './glob';
import { unconstrainedKeys, type ProofBudget, type UnconstrainedKey } from './glob-coverage';
import { FeaturesReader } from './load-features';
import { MAX_BLANKET_PROOF_STEPS, MAX_POLICY_PATTERNS, MAX_POLICY_RULES } from './limits';
import { MATCH_KEYS, type MatchSpec, type Mode, type PciPattern, type Rule } from './types';
import { describeNode, type Entry, type PolicyYamlReader } from './yaml-reader';

const MODES: readonly Mode[] = ['enforce', 'report'];
const RULE_KEYS = ['name', 'mode', 'broad', 'match', 'features'] as const;

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
const PCI_HINT =
  'write vendor:device in hex as `lspci -n` prints them, e.g. "14e4:1750", optionally followed by ' +
  ':subsystem-vendor:subsystem-device; a 0x prefix on each id is allowed';

/** `broad: "<why>"` as read, with its entry for warnings. */
interface Broad {
  reason: string;
  entry: Entry;
}

/** A `mode:` setting, the policy's or a rule's; null when absent. */
export function readMode(yaml: PolicyYamlReader, entry: Entry | undefined): Mode | null {
  if (entry === undefined) return null;
  return yaml.oneOf(entry, MODES, 'enforce corrects drift; report only records it');
}

export class RulesReader {
  private readonly features: FeaturesReader;
  /** Shared by every rule: the limits hold for the policy as a whole (limits.ts). */
  private readonly proofBudget: ProofBudget = { steps: MAX_BLANKET_PROOF_STEPS };
  private patternCount = 0;

  constructor(
    private readonly yaml: PolicyYamlReader,
    hostFeatures: readonly string[],
  ) {
    this.features = new FeaturesReader(yaml, hostFeatures);
  }

  /** The `rules:` entry (absent: no rules, with a warning pointing at `root`). */
  read(entry: Entry | undefined, root: unknown): Rule[] {
    const node = entry?.value ?? null;
    if (node !== null && !isSeq(node)) {
      this.yaml.fail(entry?.at, 'rules', `rules must be a list, found ${describeNode(node)}`, {
        hint: 'write each rule as a list item starting with `- name: ...`',
      });
    }
    if (node === null || node.items.length === 0) {
      this.yaml.warn(
        entry?.keyNode ?? root,
        'rules',
        'the policy has no rules: offloadd will watch interfaces but change nothing',
      );
      return [];
    }
    if (node.items.length > MAX_POLICY_RULES) {
      this.yaml.fail(
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
    this.yaml.fail(
      items[last],
      `rules[${last}]`,
      `rules ${union.rules.map((name) => `"${name}"`).join(', ')} together match nearly every interface: ` +
        `on a typical host they would take ${union.samples.join(', ')}`,
      { hint: `${BLANKET_HINT}; or, if that is the intent, mark one of them broad` },
    );
  }

  private rule(item: unknown, path: string, firstByName: Map<string, unknown>): Rule {
    const node = this.yaml.deref(item, path);
    if (!isMap(node)) {
      this.yaml.fail(
        node ?? item,
        path,
        `${path} must be a mapping with name, match and features, found ${describeNode(node)}`,
        {
          hint: 'write a rule as `- name: ...` followed by indented `match:` and `features:` blocks',
        },
      );
    }
    const keys = this.yaml.entries(node, path, RULE_KEYS, `in a rule`);
    const name = this.ruleName(keys.get('name'), node, path, firstByName);
    const mode = readMode(this.yaml, keys.get('mode'));
    const broad = this.broad(keys.get('broad'));
    const match = this.match(keys.get('match'), node, path, name, broad);
    return {
      name,
      mode,
      broad: broad?.reason ?? null,
      match,
      features: this.features.read(keys.get('features'), node, path, name),
      position: this.yaml.position(node) ?? { line: 1, column: 1 },
    };
  }

  /** `broad: "<why>"`: the rule's explicit opt-in to matching every interface. */
  private broad(entry: Entry | undefined): Broad | null {
    if (entry === undefined) return null;
    const node = entry.value;
    if (!isScalar(node) || typeof node.value !== 'string' || node.value.trim() === '') {
      this.yaml.fail(
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
      this.yaml.fail(ruleNode, `${path}.name`, `${path} has no name`, {
        hint: `add \`name: <short-id>\`; ${nameHint}`,
      });
    }
    const name = this.yaml.string(entry, 'a rule name');
    if (!RULE_NAME.test(name)) {
      this.yaml.fail(entry.at, entry.path, `invalid rule name ${JSON.stringify(name)}`, { hint: nameHint });
    }
    const first = firstByName.get(name);
    if (first !== undefined) {
      this.yaml.fail(
        entry.at,
        entry.path,
        `rule name "${name}" is used twice (first at line ${this.yaml.position(first)?.line ?? '?'})`,
        {
          hint: 'give every rule its own name',
        },
      );
    }
    firstByName.set(name, entry.at);
    return name;
  }

  // --- match -------------------------------------------------------------------------------

  private match(
    entry: Entry | undefined,
    ruleNode: unknown,
    path: string,
    ruleName: string,
    broad: Broad | null,
  ): MatchSpec {
    if (entry === undefined) {
      this.yaml.fail(ruleNode, `${path}.match`, `rule "${ruleName}" has no match block`, { hint: BLANKET_HINT });
    }
    if (entry.value !== null && !isMap(entry.value)) {
      this.yaml.fail(entry.at, entry.path, `${entry.path} must be a mapping, found ${describeNode(entry.value)}`, {
        hint: `allowed keys: ${MATCH_KEYS.join(', ')}`,
      });
    }
    const keys = this.yaml.entries(entry.value, entry.path, MATCH_KEYS, `in a match block`);
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
  private checkTargeted(spec: MatchSpec, entry: Entry, ruleName: string, broad: Broad | null): void {
    const unconstrained = unconstrainedKeys(spec, this.proofBudget);
    const nearly = unconstrained === null ? nearBlanketMatch(spec) : null;
    if (nearly !== null && broad === null) {
      this.yaml.fail(
        entry.at,
        entry.path,
        `rule "${ruleName}" matches nearly every interface: on a typical host it would take ${nearly.join(', ')}`,
        { hint: `${BLANKET_HINT}; a negated class such as [!x]* leaves out almost nothing` },
      );
    }
    if (unconstrained === null && nearly === null) {
      if (broad !== null) {
        this.yaml.warn(
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
      this.yaml.fail(entry.at, entry.path, message, { hint: BLANKET_HINT });
    }
    this.yaml.warn(
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
      this.yaml.fail(entry.at, entry.path, `${entry.path} is an empty list, which matches nothing`, { hint });
    }
    return items.map(({ item, path }) => {
      if (++this.patternCount > MAX_POLICY_PATTERNS) {
        this.yaml.fail(
          item,
          path,
          `the policy's match blocks hold more than the ${MAX_POLICY_PATTERNS} patterns allowed (an alias counts as what it stands for)`,
          { hint: 'match by driver or pci instead of listing every name or MAC' },
        );
      }
      const value = this.yaml.deref(item, path);
      if (!isScalar(value) || typeof value.value !== 'string' || value.value === '') {
        const unquoted = isScalar(value) && typeof value.value !== 'string' && value.value !== null;
        this.yaml.fail(value ?? entry.at, path, `${path} must be a non-empty string, found ${describeNode(value)}`, {
          hint: unquoted ? `quote it so YAML reads a string, e.g. ${entry.name}: "${String(value.value)}"` : hint,
        });
      }
      return { text: value.value, at: value, path };
    });
  }

  private glob(text: string, at: unknown, path: string): string {
    const problem = globProblem(text);
    if (problem !== null) {
      this.yaml.fail(at, path, `pattern ${JSON.stringify(text)} ${problem}`, {
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
      this.yaml.fail(
        at,
        path,
        `character ${JSON.stringify(bad)} cannot appear in MAC pattern ${JSON.stringify(text)}`,
        { hint },
      );
    }
    const pattern = this.glob(lower, at, path);
    if (globLiteral(pattern) !== null && !WHOLE_MAC.test(pattern)) {
      this.yaml.fail(at, path, `${JSON.stringify(text)} is not a whole MAC address`, { hint });
    }
    return pattern;
  }

  private pciPattern(text: string, at: unknown, path: string): PciPattern {
    const parsed = PCI_ID.exec(text.toLowerCase());
    if (parsed === null) {
      this.yaml.fail(at, path, `invalid PCI id ${JSON.stringify(text)}`, { hint: PCI_HINT });
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
}
