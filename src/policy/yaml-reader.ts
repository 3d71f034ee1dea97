/**
 * The position-aware YAML reader the policy loader reads with: every problem is a PolicyError
 * carrying the 1-based line and column of the offending node, its dotted key path and a hint;
 * warnings carry the same. It knows YAML (syntax, aliases, mappings, typed scalars, whole numbers
 * in a range), not what a policy means: that is load.ts's (settings) and load-rules.ts's (rules).
 *
 * YAML 1.2 by default, so `off` is a string; `%YAML 1.1` documents make it a boolean. onOff()
 * accepts both, and the strings on/off in any case.
 */
import {
  isAlias,
  isMap,
  isNode,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  visit,
  type Alias,
  type Document,
  type Node,
  type Scalar,
} from 'yaml';
import { PolicyError, type SourcePosition } from '../errors';
import { didYouMean } from './feature-names';
import type { PolicyWarning } from './types';

/** Mapping keys not known in advance (feature names): each is checked, and `hint` says what a key may be. */
export interface KeyCheck {
  /** Throws when the key is not acceptable. */
  check(name: string, keyNode: Scalar, path: string): void;
  hint: string;
}

/** A key of a YAML mapping with the node of its value. */
export interface Entry {
  name: string;
  keyNode: Scalar;
  /** The value node (aliases resolved), or null when the key has no value. */
  value: unknown;
  /** Where to point for problems with the value: the value itself, else the key. */
  at: unknown;
  /** Dotted key path, e.g. `rules[0].features.gro`. */
  path: string;
}

/** A whole-number setting: its range, its default and the unit messages name. */
export interface IntegerField<Name extends string> {
  key: Name;
  min: number;
  max: number;
  fallback: number;
  unit: string;
}

/** What a node is, for "found ..." in messages. */
export function describeNode(node: unknown): string {
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

/**
 * Every alias of the document with the node it stands for: the last node before it with its
 * anchor, as Alias.resolve() finds it. That walks the whole document for each alias, so a policy
 * of a thousand aliases took seconds (issue 20 #9); this walks it once.
 */
function resolveAliases(doc: Document.Parsed): Map<Alias, Node | undefined> {
  const anchored = new Map<string, Node>();
  const targets = new Map<Alias, Node | undefined>();
  visit(doc, {
    Node: (_key, node) => {
      if (isAlias(node)) targets.set(node, anchored.get(node.source));
      else if (node.anchor !== undefined) anchored.set(node.anchor, node);
    },
  });
  return targets;
}

function joinPath(parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`;
}

export class PolicyYamlReader {
  /** Non-fatal findings, in the order they were found. */
  readonly warnings: PolicyWarning[] = [];
  private readonly lines = new LineCounter();
  private readonly doc: Document.Parsed;
  /** Each alias's node, found in one pass (built on the first alias). */
  private aliasTargets: Map<Alias, Node | undefined> | null = null;

  constructor(
    readonly file: string,
    text: string,
  ) {
    // uniqueKeys off: entries() reports duplicates itself, with the first one's line.
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: false, uniqueKeys: false, version: '1.2' });
  }

  /** The document's top node (an alias resolved); throws on the first syntax error. */
  root(): unknown {
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
    return this.deref(this.doc.contents, '');
  }

  // --- positions and reporting -------------------------------------------------------------

  private positionAt(offset: number): SourcePosition {
    const { line, col } = this.lines.linePos(offset);
    // An empty source has no line starts: report its beginning.
    return { line: Math.max(line, 1), column: Math.max(col, 1) };
  }

  position(node: unknown): SourcePosition | undefined {
    if (!isNode(node) || !node.range) return undefined;
    return this.positionAt(node.range[0]);
  }

  fail(at: unknown, key: string, message: string, options: { hint?: string } = {}): never {
    const position = this.position(at) ?? { line: 1, column: 1 };
    throw new PolicyError(this.file, message, { position, key: key === '' ? undefined : key, hint: options.hint });
  }

  warn(at: unknown, key: string, message: string): void {
    this.warnings.push({ message, position: this.position(at), key });
  }

  /** Follows an alias to its anchor's node; an alias without an anchor is an error. */
  deref(node: unknown, key: string): unknown {
    if (!isAlias(node)) return node;
    this.aliasTargets ??= resolveAliases(this.doc);
    const target = this.aliasTargets.get(node);
    if (target === undefined) {
      this.fail(node, key, `the alias *${node.source} has no matching anchor &${node.source}`, {
        hint: 'define the anchor before using it, or write the value out',
      });
    }
    return target;
  }

  // --- mappings ----------------------------------------------------------------------------

  /**
   * The keys of a mapping, in order, refusing unknown and duplicate keys. Duplicates are found
   * here rather than by the YAML parser so the message can say where the first one is.
   */
  entries<K extends string>(
    map: unknown,
    path: string,
    allowed: readonly K[] | KeyCheck,
    where: string,
  ): Map<K, Entry> {
    const found = new Map<K, Entry>();
    if (!isMap(map)) return found;
    const isList = Array.isArray(allowed);
    for (const pair of map.items) {
      const keyNode = pair.key;
      if (!isScalar(keyNode) || typeof keyNode.value !== 'string') {
        const keyPath = joinPath(path, isScalar(keyNode) ? String(keyNode.value) : '?');
        this.fail(keyNode, keyPath, `keys must be plain names, found ${describeNode(keyNode)} ${where}`, {
          hint: isList ? `allowed keys ${where}: ${allowed.join(', ')}` : (allowed as KeyCheck).hint,
        });
      }
      const name = keyNode.value;
      const entryPath = joinPath(path, name);
      if (!isList) {
        (allowed as KeyCheck).check(name, keyNode, entryPath);
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

  /** A mapping of whole numbers with defaults (`flapping`, `ledger`). */
  integerSection<K extends string>(
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

  // --- typed scalars -----------------------------------------------------------------------

  /** A non-empty string; `what` names what it should be, e.g. "a rule name". */
  string(entry: Entry, what: string): string {
    const node = entry.value;
    if (!isScalar(node) || typeof node.value !== 'string' || node.value === '') {
      this.fail(entry.at, entry.path, `${entry.path} must be ${what}, found ${describeNode(node)}`, {
        hint:
          isScalar(node) && node.value !== null ? 'quote the value to make it a string' : `give ${entry.path} a value`,
      });
    }
    return node.value;
  }

  /** One of `choices`; `hint` says what they mean. */
  oneOf<T extends string>(entry: Entry, choices: readonly T[], hint: string): T {
    const what = choices.join(' or ');
    const text = this.string(entry, what);
    const choice = choices.find((c) => c === text);
    if (choice === undefined) {
      const suggestion = didYouMean(text, choices);
      this.fail(entry.at, entry.path, `${entry.path} must be ${what}, found "${text}"`, {
        hint: `${suggestion ? `did you mean "${suggestion}"? ` : ''}${hint}`,
      });
    }
    return choice;
  }

  integer(entry: Entry | undefined, field: IntegerField<string>): number {
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

  onOff(entry: Entry): boolean {
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
