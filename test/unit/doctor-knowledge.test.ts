import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { commentedRules, familyFromPolicyText, familyMembership } from '../../src/doctor/knowledge';
import type { PciId } from '../../src/facts/types';
import { KNOWN_KERNEL_FEATURES } from '../../src/policy/feature-names';
import { defaultPolicyPath, parsePolicy } from '../../src/policy/load';

const pci = (device: string): PciId => ({ vendor: '14e4', device, subsystemVendor: '14e4', subsystemDevice: '5208' });

describe('doctor: the affected family, from the policy files', () => {
  const text = fs.readFileSync(defaultPolicyPath(), 'utf8');
  const shipped = parsePolicy(text, 'default.yaml', KNOWN_KERNEL_FEATURES);
  const family = familyFromPolicyText(shipped, text, 'the shipped policy', KNOWN_KERNEL_FEATURES);

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

  it('reads only rules that turn GRO or GSO off for PCI ids, active or commented', () => {
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
# Prose that mentions - name: things is skipped.
`;
    const patterns = familyFromPolicyText(
      parsePolicy(own, 'own.yaml', KNOWN_KERNEL_FEATURES),
      own,
      'own.yaml',
      KNOWN_KERNEL_FEATURES,
    );
    assert.deepEqual(
      patterns.map((entry) => [entry.pattern.text, entry.label, entry.source]),
      [
        ['14e4:16d7', null, 'rule mine in own.yaml'],
        ['15b3:1017', 'ConnectX-5', 'commented-out rule later in own.yaml'],
      ],
    );
  });

  it('skips commented blocks that are not valid rules, without throwing', () => {
    assert.deepEqual(
      commentedRules(
        '# - name: broken\n#   match: { pci: "zz" }\n#   features: { gro: off }\n',
        'x.yaml',
        KNOWN_KERNEL_FEATURES,
      ),
      [],
    );
    assert.deepEqual(commentedRules('# just words\n# - name: [unclosed\n', 'x.yaml', KNOWN_KERNEL_FEATURES), []);
  });
});
