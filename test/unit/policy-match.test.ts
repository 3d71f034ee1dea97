import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { InterfaceFacts } from '../../src/facts/types';
import { parsePolicy } from '../../src/policy/load';
import { globLiteral, globLiteralPrefix, globMatch, globProblem } from '../../src/policy/glob';
import { globCovers, globsMatchEveryValue, unconstrainedKeys, VALUE_DOMAINS } from '../../src/policy/glob-coverage';
import { evaluateRule, findRule, matchPolicy, NEEDS_DEVICE } from '../../src/policy/match';
import type { MatchSpec, Policy, Rule } from '../../src/policy/types';

const HOST_FEATURES = JSON.parse(
  readFileSync(path.resolve(__dirname, '../../../test/fixtures/host-features.json'), 'utf8'),
) as string[];

function facts(overrides: Partial<InterfaceFacts> = {}): InterfaceFacts {
  return {
    ifindex: 7,
    name: 'enp65s0f0np0',
    kind: null,
    mac: '00:0a:f7:12:34:56',
    up: true,
    operstate: 'up',
    master: null,
    driver: 'bnxt_en',
    busInfo: '0000:41:00.0',
    pci: { vendor: '14e4', device: '1750', subsystemVendor: '14e4', subsystemDevice: '5208' },
    ...overrides,
  };
}

const BCM57508 = facts();
const BCM57504 = facts({
  name: 'enp66s0f0np0',
  pci: { vendor: '14e4', device: '1751', subsystemVendor: '14e4', subsystemDevice: '4250' },
});
const INTEL = facts({
  name: 'eno1',
  driver: 'ice',
  mac: '3c:fd:fe:00:00:01',
  pci: { vendor: '8086', device: '1592', subsystemVendor: null, subsystemDevice: null },
});
const VETH = facts({
  name: 'veth1a2b',
  kind: 'veth',
  driver: 'veth',
  mac: '5e:00:00:00:00:01',
  busInfo: null,
  pci: null,
});
const TAP = facts({
  name: 'tap100i0',
  kind: 'tun',
  driver: 'tun',
  mac: 'fe:00:00:00:00:02',
  busInfo: 'tap',
  pci: null,
});
const NO_MAC = facts({ name: 'wg0', kind: 'wireguard', driver: null, mac: null, busInfo: null, pci: null });

function policy(yaml: string): Policy {
  return parsePolicy(yaml, 'test.yaml', HOST_FEATURES);
}

describe('globMatch', () => {
  const cases: Array<[pattern: string, value: string, matches: boolean]> = [
    ['bnxt_en', 'bnxt_en', true],
    ['bnxt_en', 'bnxt_en2', false],
    ['bnxt_en', 'BNXT_EN', false],
    ['*', '', true],
    ['*', 'anything', true],
    ['tap*', 'tap100i0', true],
    ['tap*', 'vnet0', false],
    ['tap*i*', 'tap100i0', true],
    ['tap*i*', 'tap100', false],
    ['*i0', 'tap100i0', true],
    ['*i0', 'tap100i1', false],
    ['a*b*c', 'aXXbYYbZZc', true],
    ['a*b*c', 'aXXbYYcZZ', false],
    ['eth?', 'eth0', true],
    ['eth?', 'eth10', false],
    ['eth?', 'eth', false],
    ['enp[0-9]s0', 'enp4s0', true],
    ['enp[0-9]s0', 'enpas0', false],
    ['eth[!0]', 'eth1', true],
    ['eth[!0]', 'eth0', false],
    ['eth[^0]', 'eth0', false],
    ['[abc]x', 'bx', true],
    ['[]]x', ']x', true],
    ['[!]]x', ']x', false],
    ['[a-]', '-', true],
    ['a\\*b', 'a*b', true],
    ['a\\*b', 'axb', false],
    ['eth[0', 'eth[0', true],
    ['eth[0', 'eth0', false],
    // Regular-expression syntax means nothing here.
    ['.*', 'anything', false],
    ['.*', '.xyz', true],
    ['a+', 'aa', false],
    ['(a|b)', '(a|b)', true],
    ['^$', '^$', true],
    ['00:0a:f7:*', '00:0a:f7:12:34:56', true],
    ['00:0a:f7:*', '00:0a:f8:12:34:56', false],
  ];
  for (const [pattern, value, matches] of cases) {
    it(`${JSON.stringify(pattern)} ${matches ? 'matches' : 'does not match'} ${JSON.stringify(value)}`, () => {
      assert.equal(globMatch(pattern, value), matches);
    });
  }

  it('stays linear on patterns that make backtracking regexes explode', () => {
    const started = process.hrtime.bigint();
    assert.equal(globMatch('*a*a*a*a*a*a*a*a*b', 'a'.repeat(5000)), false);
    assert.ok(process.hrtime.bigint() - started < 1_000_000_000n);
  });

  it('reports patterns a policy must not use', () => {
    assert.equal(globProblem('enp*s0'), null);
    assert.match(globProblem('enp[0-3') ?? '', /without its closing/);
    assert.match(globProblem('eth[[:digit:]]') ?? '', /POSIX/);
  });

  it('tells literal text and prefixes', () => {
    assert.equal(globLiteral('bnxt_en'), 'bnxt_en');
    assert.equal(globLiteral('a\\*b'), 'a*b');
    assert.equal(globLiteral('bnxt_*'), null);
    assert.equal(globLiteralPrefix('vmbr*'), 'vmbr');
    assert.equal(globLiteralPrefix('br[0-9]'), 'br');
    assert.equal(globLiteralPrefix('*x'), '');
  });

  const covers: Array<[outer: string, inner: string, covered: boolean]> = [
    ['*', 'tap*', true],
    ['tap*', 'tap*i*', true],
    ['tap*', 'tap100i0', true],
    ['ta*', 'tap[0-9]', true],
    ['tap*', 'ta*', false],
    ['tap?', 'tap*', false],
    ['tap[0-9]', 'tap1', true],
    ['tap[0-9]', 'tap[0-9]', true],
    // Equivalent in fact, but not provable by this simple check: no claim.
    ['tap[0-9]', 'tap[0-4]', false],
  ];
  for (const [outer, inner, covered] of covers) {
    it(`${outer} ${covered ? 'covers' : 'is not known to cover'} ${inner}`, () => {
      assert.equal(globCovers(outer, inner), covered);
    });
  }
});

describe('rule matching', () => {
  const bcm = policy(`
rules:
  - name: bcm57508
    match:
      driver: bnxt_en
      pci: "14e4:1750"
    features: { gro: off }
  - name: thor-by-subsystem
    match:
      pci: ["14e4:1751:14e4:4250", "14e4:1752"]
    features: { gro: off }
  - name: lab-taps
    match:
      name: ["tap*i*", "vnet*"]
      kind: tun
    features: { gro: off }
  - name: by-mac
    match:
      mac: "3C:FD:FE:*"
    features: { gro: off }
  - name: any-driver-starting-with-w
    match:
      kind: "wire*"
      driver: "*"
    features: { gro: off }
`);

  const winners: Array<[label: string, iface: InterfaceFacts, rule: string | null]> = [
    ['the BCM57508', BCM57508, 'bcm57508'],
    ['a BCM57504 with the listed subsystem ids', BCM57504, 'thor-by-subsystem'],
    [
      'a BCM57504 with other subsystem ids',
      facts({ pci: { vendor: '14e4', device: '1751', subsystemVendor: '1028', subsystemDevice: '0001' } }),
      null,
    ],
    [
      'a BCM57502 with any subsystem ids',
      facts({ pci: { vendor: '14e4', device: '1752', subsystemVendor: '1028', subsystemDevice: '0001' } }),
      'thor-by-subsystem',
    ],
    ['a BCM57508 bound to another driver', facts({ driver: 'vfio-pci' }), null],
    ['a Proxmox tap', TAP, 'lab-taps'],
    ['a veth named like a tap', facts({ ...VETH, name: 'tap5i0' }), null],
    ['an Intel port by MAC prefix (pattern written in upper case)', INTEL, 'by-mac'],
    ['a device without driver, where driver "*" is required', NO_MAC, null],
    ['a veth', VETH, null],
  ];
  for (const [label, iface, rule] of winners) {
    it(`${label} → ${String(rule)}`, () => {
      assert.equal(findRule(bcm, iface, iface)?.name ?? null, rule);
      const result = matchPolicy(bcm, iface);
      assert.equal(result.rule?.name ?? null, rule);
      assert.equal(result.rule, findRule(bcm, iface, iface), 'the hot path and explain agree');
      assert.deepEqual(
        result.evaluations.map((e) => e.rule),
        bcm.rules.map((r) => r.name),
      );
    });
  }

  it('asks for the device only when a rule that could still match needs it', () => {
    const mixed = policy(`
rules:
  - name: taps
    match: { name: "tap*" }
    features: { tso: on }
  - name: bcm
    match: { name: "en*", driver: bnxt_en }
    features: { gro: off }
  - name: late-veths
    match: { kind: veth }
    features: { gso: off }
`);
    const link = (iface: InterfaceFacts): InterfaceFacts => ({ ...iface, driver: null, busInfo: null, pci: null });
    assert.equal(findRule(mixed, link(TAP)), mixed.rules[0], 'a name rule decides without the device');
    assert.equal(findRule(mixed, link(BCM57508)), NEEDS_DEVICE, 'the driver rule could match: read the device');
    assert.equal(findRule(mixed, link(BCM57508), BCM57508), mixed.rules[1]);
    assert.equal(
      findRule(mixed, link(VETH)),
      mixed.rules[2],
      'the driver rule cannot match "veth1a2b": no device read',
    );
    assert.equal(findRule(mixed, link(NO_MAC)), null, 'nothing can match: no device read');
  });

  it('lets the first matching rule win', () => {
    const twoRules = policy(`
rules:
  - name: first
    match: { driver: bnxt_en }
    features: { gro: off }
  - name: second
    match: { driver: bnxt_en, pci: "14e4:1750" }
    features: { gso: off }
`);
    const result = matchPolicy(twoRules, BCM57508);
    assert.equal(result.rule?.name, 'first');
    assert.deepEqual(
      result.evaluations.map((e) => e.matched),
      [true, true],
    );
  });

  describe('explains every check', () => {
    const rule = (index: number): Rule => bcm.rules[index] ?? assert.fail(`no rule ${index}`);

    it('for a match', () => {
      assert.deepEqual(evaluateRule(rule(0), BCM57508), {
        rule: 'bcm57508',
        matched: true,
        checks: [
          {
            key: 'driver',
            patterns: ['bnxt_en'],
            value: 'bnxt_en',
            passed: true,
            reason: 'driver "bnxt_en" matches bnxt_en',
          },
          {
            key: 'pci',
            patterns: ['14e4:1750'],
            value: '14e4:1750:14e4:5208',
            passed: true,
            reason: 'pci 14e4:1750:14e4:5208 matches 14e4:1750',
          },
        ],
      });
    });

    it('for a virtual interface, checking every key even after a failure', () => {
      const evaluation = evaluateRule(rule(0), VETH);
      assert.equal(evaluation.matched, false);
      assert.deepEqual(
        evaluation.checks.map((c) => [c.key, c.value, c.passed, c.reason]),
        [
          ['driver', 'veth', false, 'driver "veth" is not one of bnxt_en'],
          ['pci', null, false, 'no PCI device (virtual interface)'],
        ],
      );
    });

    const reasons: Array<[ruleIndex: number, iface: InterfaceFacts, reasons: string[]]> = [
      [1, INTEL, ['pci 8086:1592 is not one of 14e4:1751:14e4:4250, 14e4:1752']],
      [2, VETH, ['kind "veth" is not one of tun', 'name "veth1a2b" matches none of tap*i*, vnet*']],
      [2, BCM57508, ['no kind (physical device)', 'name "enp65s0f0np0" matches none of tap*i*, vnet*']],
      [2, TAP, ['kind "tun" matches tun', 'name "tap100i0" matches tap*i*']],
      [3, NO_MAC, ['no MAC address']],
      [4, NO_MAC, ['no driver known for this interface', 'kind "wireguard" matches wire*']],
    ];
    for (const [ruleIndex, iface, want] of reasons) {
      it(`rule ${rule(ruleIndex).name} against ${iface.name}`, () => {
        assert.deepEqual(
          evaluateRule(rule(ruleIndex), iface).checks.map((c) => c.reason),
          want,
        );
      });
    }
  });

  it('returns no rule and no evaluations for a policy without rules', () => {
    const empty = policy('rules: []\n');
    assert.equal(findRule(empty, BCM57508, BCM57508), null);
    assert.deepEqual(matchPolicy(empty, BCM57508), { rule: null, evaluations: [] });
  });
});

describe('patterns that accept every value', () => {
  const every: Array<[key: 'name' | 'driver' | 'kind' | 'mac', patterns: string[], all: boolean]> = [
    ['name', ['*'], true],
    ['name', ['**'], true],
    ['name', ['?*'], true],
    ['name', ['*?'], true],
    ['name', ['enp*', '*'], true],
    ['name', ['[a-m]*', '[!a-m]*'], true],
    ['name', ['[!x]*', 'x*'], true],
    // Every length a name can have (1 to 15): an odd way to write "*".
    ['name', Array.from({ length: 15 }, (_, i) => '?'.repeat(i + 1)), true],
    ['name', Array.from({ length: 14 }, (_, i) => '?'.repeat(i + 1)), false],
    ['name', ['enp*'], false],
    ['name', ['?'], false],
    ['name', ['[!l]*'], false],
    ['name', ['*[0-9]'], false],
    // Names are UTF-8 text (issue 20 #11): "every byte" is no longer every name.
    ['name', ['[\u0001-\u00ff]*'], false],
    ['name', ['[\u0001-\uffff]*'], true],
    ['name', ['[\u0001-\ufffe]*'], false],
    ['driver', ['*'], true],
    ['driver', ['?*'], true],
    ['driver', ['bnxt_*'], false],
    ['driver', ['[!b]*', 'b*'], true],
    ['kind', ['*'], true],
    ['kind', ['veth', 'tun', 'bridge'], false],
    ['mac', ['*'], true],
    ['mac', ['??:*'], true],
    ['mac', ['??:??:??:??:??:??'], true],
    ['mac', ['*:*:*:*:*:*'], true],
    ['mac', ['[0-9a-f]*'], true],
    ['mac', ['[0-7]*', '[89a-f]*'], true],
    ['mac', ['00:0a:f7:*'], false],
    ['mac', ['[0-7]*'], false],
    ['mac', ['*:*:*:*:*:?0'], false],
  ];
  it('gives up (null: treated as "every") on patterns whose check would explode', () => {
    // "17th from the end is a" or "is not a" or "shorter than 17": every text, but deciding it
    // walks 2^17 states.
    const tail = '?'.repeat(16);
    const patterns = [`*a${tail}`, `*[!a]${tail}`, ...Array.from({ length: 16 }, (_, i) => '?'.repeat(i + 1))];
    assert.equal(globsMatchEveryValue(patterns, VALUE_DOMAINS.driver), null);
  });

  for (const [key, patterns, all] of every) {
    const shown =
      patterns.length > 4
        ? `${patterns.length} patterns ${patterns[0]}…${patterns[patterns.length - 1]}`
        : patterns.join(', ');
    it(`${key} ${shown} ${all ? 'accepts every value' : 'targets'}`, () => {
      assert.equal(globsMatchEveryValue(patterns, VALUE_DOMAINS[key]), all);
    });
  }

  const rules: Array<[label: string, spec: MatchSpec, unconstrained: string[] | null]> = [
    ['an empty block', {}, []],
    ['name "*"', { name: ['*'] }, ['name']],
    ['driver "*" (every interface that has a driver)', { driver: ['*'] }, ['driver']],
    ['name "*" and driver "*"', { name: ['*'], driver: ['*'] }, ['driver', 'name']],
    ['name "*" narrowed by a driver', { name: ['*'], driver: ['bnxt_en'] }, null],
    ['kind "*" narrowed by a name', { kind: ['*'], name: ['veth*'] }, null],
    [
      'a PCI id (no wildcards)',
      { pci: [{ vendor: '14e4', device: '1750', subsystemVendor: null, subsystemDevice: null, text: '14e4:1750' }] },
      null,
    ],
  ];
  for (const [label, spec, unconstrained] of rules) {
    it(`a rule with ${label} ${unconstrained === null ? 'is targeted' : 'can match every interface'}`, () => {
      assert.deepEqual(unconstrainedKeys(spec)?.map((entry) => entry.key) ?? null, unconstrained);
    });
  }
});
