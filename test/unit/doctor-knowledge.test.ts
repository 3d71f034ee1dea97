import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import {
  AFFECTED_CHIPS,
  AFFECTED_DRIVER,
  FAMILY_RULES,
  familyMembership,
  familyOfPolicy,
  shippedFamily,
  SYMPTOM_FEATURES,
} from '../../src/doctor/knowledge';
import type { PciId } from '../../src/facts/types';
import { KNOWN_KERNEL_FEATURES } from '../../src/policy/feature-names';
import { defaultPolicyPath, parsePolicy } from '../../src/policy/load';

const pci = (device: string): PciId => ({ vendor: '14e4', device, subsystemVendor: '14e4', subsystemDevice: '5208' });

describe('doctor: the affected family, from the family data', () => {
  const family = shippedFamily();

  it('takes the BCM57508 from the shipped rule, labelled by the comment next to its id', () => {
    assert.deepEqual(familyMembership(pci('1750'), family), {
      member: true,
      pattern: '14e4:1750',
      label: 'BCM57508',
      source: 'rule bcm57508-gro-gso-off in the shipped policy',
    });
  });

  it('takes the rest of the Thor family from the commented-out rule', () => {
    for (const [device, label] of [
      ['1751', 'BCM57504'],
      ['1752', 'BCM57502'],
      ['1760', 'Thor2 BCM57608'],
      ['1819', 'BCM5760X virtual function'],
      ['1803', null],
    ] as const) {
      const membership = familyMembership(pci(device), family);
      assert.equal(membership.member, true, device);
      assert.equal(membership.label, label, device);
      assert.equal(membership.source, 'commented-out rule bnxt-thor-family-gro-gso-off in the shipped policy');
    }
  });

  it('does not take other Broadcom ids, or interfaces without PCI', () => {
    assert.equal(familyMembership(pci('16d7'), family).member, false); // BCM57414, an older bnxt_en chip
    assert.equal(familyMembership(null, family).member, false);
  });

  it("reads only the loaded policy's active rules that turn GRO or GSO off for PCI ids", () => {
    const own = `rules:
  - name: by-name
    match: { name: "eno*" }
    features: { gro: off }
  - name: tso-only
    match: { pci: "8086:1572" }
    features: { tso: off }
  - name: mine
    match: { pci: ["14e4:16d7"] }   # my own NIC
    features: { gso: off }
# - name: later
#   match:
#     pci: "15b3:1017"   # ConnectX-5
#   features: { gro: off }
`;
    const patterns = familyOfPolicy(parsePolicy(own, 'own.yaml', KNOWN_KERNEL_FEATURES), 'own.yaml');
    assert.deepEqual(
      patterns.map((entry) => [entry.pattern.text, entry.label, entry.source]),
      [['14e4:16d7', null, 'rule mine in own.yaml']],
    );
  });
});

describe('the shipped policy and the family data agree', () => {
  const text = fs.readFileSync(defaultPolicyPath(), 'utf8');
  const shipped = parsePolicy(text, 'default.yaml', KNOWN_KERNEL_FEATURES);

  for (const familyRule of FAMILY_RULES) {
    const ids = AFFECTED_CHIPS.filter((chip) => chip.rule === familyRule.name).map((chip) => chip.pci);

    if (familyRule.shipped === 'active') {
      it(`rule ${familyRule.name}: on ${AFFECTED_DRIVER}, exactly the family's ids, turning the symptom's features off`, () => {
        const rule = shipped.rules.find((candidate) => candidate.name === familyRule.name);
        assert.ok(rule, `policy/default.yaml has no rule ${familyRule.name}`);
        assert.deepEqual(rule.match.driver, [AFFECTED_DRIVER]);
        assert.deepEqual(
          (rule.match.pci ?? []).map((pattern) => pattern.text),
          ids,
        );
        for (const feature of SYMPTOM_FEATURES)
          assert.ok(
            rule.features.some((wanted) => wanted.feature === feature && !wanted.on),
            `${rule.name} leaves ${feature} as it is`,
          );
      });
    } else {
      it(`commented-out rule ${familyRule.name}: names the family's ids, in order, and nothing else`, () => {
        assert.ok(
          !shipped.rules.some((candidate) => candidate.name === familyRule.name),
          `${familyRule.name} is active`,
        );
        const start = text.indexOf(`# - name: ${familyRule.name}`);
        assert.ok(start >= 0, `policy/default.yaml has no commented-out rule ${familyRule.name}`);
        const block = text.slice(start, text.indexOf('\n\n', start));
        const listed = [...block.matchAll(/"([0-9a-f]{4}:[0-9a-f]{4})"(?:[ \t]*#[ \t]*(.*\S))?/g)];
        assert.deepEqual(
          listed.map((match) => match[1]),
          ids,
        );
        for (const match of listed) {
          const chip = AFFECTED_CHIPS.find((candidate) => candidate.pci === match[1]);
          assert.equal(match[2] ?? null, chip?.label, `the comment next to ${match[1]}`);
        }
      });
    }
  }

  it('labels the active rule as the data does', () => {
    for (const chip of AFFECTED_CHIPS.filter((candidate) =>
      FAMILY_RULES.some((rule) => rule.name === candidate.rule && rule.shipped === 'active'),
    ))
      assert.match(text, new RegExp(`"${chip.pci}"[ \\t]*#[ \\t]*${chip.label ?? ''}`));
  });
});
