/**
 * The limits a policy is held to (src/policy/limits.ts): the largest policy loads, one more rule,
 * byte or pattern is refused with the limit named, and no few bytes can make the loader work far
 * beyond what the limits state. No timings here (they are in the report of issue 20 #9): each
 * test holds a count that bounds the work.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Alias } from 'yaml';
import { PolicyError } from '../../src/errors';
import { globsMatchEveryValue, VALUE_DOMAINS } from '../../src/policy/glob-coverage';
import {
  MAX_BLANKET_PROOF_STEPS,
  MAX_POLICY_BYTES,
  MAX_POLICY_PATTERNS,
  MAX_POLICY_RULES,
} from '../../src/policy/limits';
import { parsePolicy } from '../../src/policy/load';

const REPO = path.resolve(__dirname, '../../..');
const HOST = JSON.parse(readFileSync(path.join(REPO, 'test/fixtures/host-features.json'), 'utf8')) as string[];

/** `count` targeted rules, one a line. */
function rules(
  count: number,
  rule = (i: number): string => `{name: r${i}, match: {name: "ens${i}f*"}, features: {gro: off}}`,
): string {
  return `rules:\n${Array.from({ length: count }, (_, i) => `- ${rule(i)}\n`).join('')}`;
}

/** Pads `text` with a comment to exactly `bytes` bytes. */
function padTo(text: string, bytes: number): string {
  const room = bytes - Buffer.byteLength(text) - '#\n'.length;
  assert.ok(room >= 0, `${Buffer.byteLength(text)} bytes already`);
  return `${text}#${'x'.repeat(room)}\n`;
}

function refusal(text: string): PolicyError {
  try {
    parsePolicy(text, 'p.yaml', HOST);
  } catch (error) {
    assert.ok(error instanceof PolicyError, String(error));
    return error;
  }
  assert.fail('expected the policy to be refused');
}

/** A name key that accepts every name, but proving it walks about 12,000 states (1.5 million steps). */
const EXPLODING = '["?*", "*a??????????"]';

describe('policy limits (issue 20 #9)', () => {
  it('a policy beyond MAX_POLICY_RULES rules or MAX_POLICY_BYTES is refused with the limit named (issue 20 #9)', () => {
    const rules = (count: number): string =>
      `rules:\n${Array.from({ length: count }, (_, i) => `- {name: r${i}, match: {name: up${i}}, features: {gro: off}}\n`).join('')}`;
    assert.throws(
      () => parsePolicy(rules(MAX_POLICY_RULES + 1), 'p.yaml', HOST),
      (error: PolicyError) =>
        error.message.includes(`more than the ${MAX_POLICY_RULES} allowed`) &&
        error.position?.line === MAX_POLICY_RULES + 2,
    );
    assert.throws(
      () => parsePolicy(`# ${'x'.repeat(MAX_POLICY_BYTES)}\nrules: []\n`, 'p.yaml', HOST),
      new RegExp(`larger than the ${MAX_POLICY_BYTES} bytes allowed`),
    );
  });

  it('a large valid policy freezes the event loop: the largest policy the limits allow, in rules and in bytes at once, loads', () => {
    const largest = padTo(rules(MAX_POLICY_RULES), MAX_POLICY_BYTES);
    assert.equal(Buffer.byteLength(largest), MAX_POLICY_BYTES);
    assert.equal(parsePolicy(largest, 'p.yaml', HOST).rules.length, MAX_POLICY_RULES);
  });

  it('a large valid policy freezes the event loop: patterns are counted as their aliases expand, so a few bytes cannot stand for more than the pattern limit', () => {
    const names = Array.from({ length: 8 }, (_, i) => `ens${i}f*`).join(', ');
    const aliased = rules(MAX_POLICY_PATTERNS / 8 + 1, (i) =>
      i === 0
        ? `{name: r0, match: &m {name: [${names}]}, features: {gro: off}}`
        : `{name: r${i}, match: *m, features: {gro: off}}`,
    );
    assert.ok(Buffer.byteLength(aliased) < MAX_POLICY_BYTES);
    const error = refusal(aliased);
    assert.match(error.message, new RegExp(`more than the ${MAX_POLICY_PATTERNS} patterns allowed \\(an alias counts`));
    assert.equal(error.key, `rules[${MAX_POLICY_PATTERNS / 8}].match.name[0]`);

    // One pattern fewer in all loads.
    const fits = rules(MAX_POLICY_PATTERNS / 8, (i) =>
      i === 0
        ? `{name: r0, match: &m {name: [${names}]}, features: {gro: off}}`
        : `{name: r${i}, match: *m, features: {gro: off}}`,
    );
    assert.equal(parsePolicy(fits, 'p.yaml', HOST).rules.length, MAX_POLICY_PATTERNS / 8);
  });

  it('a large valid policy freezes the event loop: each alias is looked up once, never by walking the whole document again', () => {
    // yaml's Alias.resolve() walks the document on every call: a thousand aliases took seconds.
    const resolve = Object.getOwnPropertyDescriptor(Alias.prototype, 'resolve');
    let walks = 0;
    Object.defineProperty(Alias.prototype, 'resolve', {
      configurable: true,
      value(this: Alias, ...args: Parameters<Alias['resolve']>) {
        walks++;
        return (resolve?.value as Alias['resolve']).apply(this, args);
      },
    });
    try {
      const aliased = rules(MAX_POLICY_RULES, (i) =>
        i === 0
          ? `{name: r0, match: {driver: d0}, features: &f {gro: off, gso: off, tso: off, sg: on}}`
          : `{name: r${i}, match: {driver: d${i}}, features: *f}`,
      );
      const policy = parsePolicy(aliased, 'p.yaml', HOST);
      assert.deepEqual(policy.rules[MAX_POLICY_RULES - 1]?.features, policy.rules[0]?.features);
      assert.equal(walks, 0);
    } finally {
      if (resolve !== undefined) Object.defineProperty(Alias.prototype, 'resolve', resolve);
    }
  });

  it('a large valid policy freezes the event loop: proving that patterns match every value draws on one budget for the whole policy', () => {
    // Each broad rule below would take 1.5 million steps to prove; the budget stops the first.
    const policy = parsePolicy(
      rules(50, (i) => `{name: r${i}, broad: lab, match: {name: ${EXPLODING}}, features: {gro: off}}`),
      'p.yaml',
      HOST,
    );
    assert.equal(policy.warnings.length, 50);
    for (const warning of policy.warnings) {
      assert.match(warning.message, /is too complex to prove it does not match every interface name/);
    }
    // Without broad it is refused, like every rule that may match everything.
    assert.match(
      refusal(rules(1, () => `{name: r0, match: {name: ${EXPLODING}}, features: {gro: off}}`)).message,
      /rule "r0" can match every interface: name .* is too complex to prove/,
    );
  });

  it('a large valid policy freezes the event loop: a targeted key spends nothing of the budget, so targeted rules load after it is spent', () => {
    const budget = { steps: MAX_BLANKET_PROOF_STEPS };
    assert.equal(globsMatchEveryValue(['ens*f*np*', 'eth[0-3]'], VALUE_DOMAINS.name, budget), false);
    assert.equal(globsMatchEveryValue(['00:0a:f7:*'], VALUE_DOMAINS.mac, budget), false);
    assert.equal(globsMatchEveryValue(['[!x]*'], VALUE_DOMAINS.name, budget), false);
    assert.equal(budget.steps, MAX_BLANKET_PROOF_STEPS);

    const policy = parsePolicy(
      rules(400, (i) =>
        i === 0
          ? `{name: r0, broad: lab, match: {name: ${EXPLODING}}, features: {gro: off}}`
          : `{name: r${i}, match: {mac: "00:0a:f7:*"}, features: {gro: off}}`,
      ),
      'p.yaml',
      HOST,
    );
    assert.equal(policy.rules.length, 400);
    assert.equal(policy.warnings.length, 1, 'only the broad rule is warned about');
  });

  it('offloadd.policy(5) states the limits the loader holds', () => {
    const page = readFileSync(path.join(REPO, 'man/offloadd.policy.5'), 'utf8');
    const limits = page.slice(page.indexOf('.Ss Limits'), page.indexOf('.Sh', page.indexOf('.Ss Limits')));
    assert.match(limits, new RegExp(`at most ${MAX_POLICY_RULES} rules`));
    assert.match(limits, new RegExp(`${MAX_POLICY_BYTES / 1024} KiB \\(${MAX_POLICY_BYTES} bytes\\)`));
    assert.match(limits, new RegExp(`${MAX_POLICY_PATTERNS} patterns`));
  });
});
