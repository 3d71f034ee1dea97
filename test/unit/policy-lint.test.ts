import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { lintPolicy } from '../../src/policy/lint';
import { loadDefaultPolicy, parsePolicy } from '../../src/policy/load';
import type { PolicyWarning } from '../../src/policy/types';
import { findShadowingRules, ruleCovers } from '../../src/policy/shadow';
import { seededRandom } from '../helpers/random';

const HOST_FEATURES = JSON.parse(
  readFileSync(path.resolve(__dirname, '../../../test/fixtures/host-features.json'), 'utf8'),
) as string[];

/** One rule per entry: [match (flow mapping body), features (flow mapping body), broad reason]. */
function lint(...rules: Array<[match: string, features: string, broad?: string]>): PolicyWarning[] {
  const body = rules
    .map(
      ([match, features, broad], i) =>
        `  - name: r${i}\n${broad === undefined ? '' : `    broad: ${JSON.stringify(broad)}\n`}    match: { ${match} }\n    features: { ${features} }\n`,
    )
    .join('');
  return lintPolicy(parsePolicy(`rules:\n${body}`, 'lint.yaml', HOST_FEATURES));
}

interface LintCase {
  label: string;
  rules: Array<[string, string, string?]>;
  /** Expected warnings as [key, message fragment], in order; [] for none. */
  warnings: Array<[string, string | RegExp]>;
}

const GUEST = /turns .* off and can match .*virtio-net RSC.*7 to 35 Gbit\/s/;

const cases: LintCase[] = [
  {
    label: 'the targeted BCM57508 rule',
    rules: [['driver: bnxt_en, pci: "14e4:1750"', 'gro: off, gso: off']],
    warnings: [],
  },

  // (a) transmit offloads off where guests' traffic passes
  {
    label: 'TSO off on taps by name',
    rules: [['name: "tap*i*"', 'tso: off']],
    warnings: [['rules[0].features', /turns tso off and can match tap\/tun devices/]],
  },
  {
    label: 'tx checksumming off on veths by kind',
    rules: [['kind: veth', 'tx: off']],
    warnings: [['rules[0].features', /turns tx off and can match veth pairs/]],
  },
  {
    label: 'sg off by driver virtio_net',
    rules: [['driver: virtio_net', 'sg: off']],
    warnings: [['rules[0].features', /virtio-net devices/]],
  },
  {
    label: 'gso off on libvirt vnet taps',
    rules: [['name: "vnet*"', 'gso: off']],
    warnings: [['rules[0].features', GUEST]],
  },
  {
    label: 'a kernel string (tx-tcp6-segmentation) off on Proxmox firewall veths',
    rules: [['name: "fwpr*"', 'tx-tcp6-segmentation: off']],
    warnings: [['rules[0].features', /tx-tcp6-segmentation off and can match veth pairs/]],
  },
  {
    label: 'TSO off on every driver (marked broad)',
    rules: [['driver: "*"', 'tso: off, tx: off', 'lab']],
    warnings: [
      ['rules[0].broad', /is broad and matches every interface/],
      ['rules[0].features', /turns tso, tx off and can match tap\/tun devices, veth pairs, virtio-net devices/],
    ],
  },
  {
    label: 'TSO off on the virtio PCI id',
    rules: [['pci: "1af4:1041"', 'tso: off']],
    warnings: [['rules[0].features', /virtio-net devices/]],
  },
  { label: 'TSO on on taps (no harm)', rules: [['name: "tap*"', 'tso: on']], warnings: [] },
  { label: 'GRO off on taps (receive side, not this check)', rules: [['name: "tap*"', 'gro: off']], warnings: [] },
  { label: 'TSO off on a physical driver', rules: [['driver: bnxt_en', 'tso: off']], warnings: [] },
  { label: 'TSO off on tap names but only kind veth', rules: [['name: "tap*", kind: veth', 'tso: off']], warnings: [] },
  {
    label: 'TSO off by MAC only (nothing says it is a guest device)',
    rules: [['mac: "fe:*"', 'tso: off']],
    warnings: [],
  },

  // (b) GRO off where it has no effect
  {
    label: 'GRO off on Proxmox bridges',
    rules: [['name: "vmbr*"', 'gro: off']],
    warnings: [['rules[0].features', /turns gro off on bridges or bonds only: that has no effect/]],
  },
  {
    label: 'GRO off on bonds by kind',
    rules: [['kind: [bond, bridge]', 'rx-gro: off']],
    warnings: [['rules[0].features', /rx-gro off on bridges or bonds only/]],
  },
  {
    label: 'GRO off on the bonding driver',
    rules: [['driver: bonding', 'gro: off']],
    warnings: [['rules[0].features', /bridges or bonds only/]],
  },
  { label: 'GRO off on bridges or physical ports', rules: [['name: ["vmbr*", "enp*"]', 'gro: off']], warnings: [] },
  { label: 'GRO on on bridges', rules: [['name: "br*"', 'gro: on']], warnings: [] },

  // (c) shadowed rules
  {
    label: 'a specific rule after a general one',
    rules: [
      ['driver: bnxt_en', 'gro: off'],
      ['driver: bnxt_en, pci: "14e4:1750"', 'gso: off'],
    ],
    warnings: [['rules[1]', /rule "r1" never applies: rule "r0" \(line 2\) comes first/]],
  },
  {
    label: 'a glob prefix covering a longer one',
    rules: [
      ['name: "enp*"', 'gro: off'],
      ['name: ["enp65*", enp66s0f0], driver: bnxt_en', 'gso: off'],
    ],
    warnings: [['rules[1]', /never applies/]],
  },
  {
    label: 'PCI without subsystem ids covering one with them',
    rules: [
      ['pci: ["14e4:1750", "14e4:1751"]', 'gro: off'],
      ['pci: "14e4:1751:14e4:4250"', 'gso: off'],
    ],
    warnings: [['rules[1]', /never applies/]],
  },
  {
    label: 'a general rule after a specific one',
    rules: [
      ['driver: bnxt_en, pci: "14e4:1750"', 'gro: off'],
      ['driver: bnxt_en', 'gso: off'],
    ],
    warnings: [],
  },
  {
    label: 'overlapping but not covering lists',
    rules: [
      ['pci: ["14e4:1750"]', 'gro: off'],
      ['pci: ["14e4:1750", "14e4:1751"]', 'gso: off'],
    ],
    warnings: [],
  },
  {
    label: 'classes that happen to cover (not provable, so silent)',
    rules: [
      ['name: "eth[0-9]"', 'gro: off'],
      ['name: "eth[0-4]"', 'gso: off'],
    ],
    warnings: [],
  },

  // (e) rules that target everything
  {
    label: 'name "*" alone, marked broad',
    rules: [['name: "*"', 'gro: off', 'lab host']],
    warnings: [
      [
        'rules[0].broad',
        /rule "r0" is broad and matches every interface, lo, veths, taps and bridges included \(name "\*" matches every interface name\); reason given: "lab host"/,
      ],
    ],
  },
  { label: 'name "*" narrowed by driver', rules: [['name: "*", driver: bnxt_en', 'gro: off']], warnings: [] },
];

describe('policy lint', () => {
  for (const { label, rules, warnings } of cases) {
    it(label, () => {
      const found = lint(...rules);
      assert.equal(found.length, warnings.length, JSON.stringify(found, null, 2));
      warnings.forEach(([key, fragment], i) => {
        const warning = found[i];
        assert.equal(warning?.key, key);
        if (typeof fragment === 'string') assert.ok(warning.message.includes(fragment), warning.message);
        else assert.match(warning.message, fragment);
      });
    });
  }

  it('places each warning at its rule', () => {
    const [warning] = lint(['driver: bnxt_en', 'gro: off'], ['driver: bnxt_en', 'gso: off']);
    assert.deepEqual(warning?.position, { line: 5, column: 5 });
  });

  it('returns the loader warnings first', () => {
    const found = lint(['name: "vmbr*"', 'ufo: off, gro: off']);
    assert.deepEqual(
      found.map((w) => w.key),
      ['rules[0].features.ufo', 'rules[0].features'],
    );
  });

  it('finds nothing to say about the shipped default', () => {
    assert.deepEqual(lintPolicy(loadDefaultPolicy(HOST_FEATURES)), []);
  });
});

describe('large policies (issue 20 #9)', () => {
  const HOST = JSON.parse(
    readFileSync(path.resolve(__dirname, '../../../test/fixtures/host-features.json'), 'utf8'),
  ) as string[];
  /** Rules of varied shapes, many of them shadowing one another. */
  function randomRules(count: number, seed: number): string {
    const random = seededRandom(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const name = (): string =>
      pick([
        () => `up${Math.floor(random() * 40)}`,
        () => `up${Math.floor(random() * 4)}*`,
        () => `u[pq]${Math.floor(random() * 9)}?`,
        () => 'up*',
        () => `x*${Math.floor(random() * 9)}`,
      ])();
    let text = 'rules:\n';
    for (let i = 0; i < count; i++) {
      const keys = [`name: ${JSON.stringify(name())}`];
      if (random() < 0.4) keys.push(`driver: ${pick(['bnxt_en', '"mlx5_*"', '"bnx*"'])}`);
      if (random() < 0.2) keys.push(`kind: ${pick(['veth', 'tun'])}`);
      if (random() < 0.2) keys.push(`pci: "${pick(['14e4:1750', '14e4:16d7'])}"`);
      text += `  - name: r${i}\n    match: { ${keys.join(', ')} }\n    features: { gro: off }\n`;
    }
    return text;
  }

  it('a large valid policy must not freeze the event loop: the shadow lint finds what comparing every pair finds (issue 20 #9)', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const policy = parsePolicy(randomRules(300, seed), 'p.yaml', HOST);
      const pairwise = policy.rules.map((later, index) =>
        policy.rules.slice(0, index).findIndex((earlier) => ruleCovers(earlier.match, later.match)),
      );
      assert.deepEqual(findShadowingRules(policy.rules), pairwise, `seed ${seed}`);
      assert.ok(
        pairwise.some((index) => index >= 0),
        'the sample has shadowed rules',
      );
    }
  });
});
