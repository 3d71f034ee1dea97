/**
 * Interface names as the kernel takes them (bytes, at most 15): names that are not ASCII are
 * managed like any other. Real daemon, own namespace.
 */
import { strict as assert } from 'node:assert';
import { eachTestInItsOwnNetns, type Netns, waitFor } from '../helpers/netns';

const GSO = 'generic-segmentation-offload';

describe('interface names that are not ASCII (real daemon, own namespace)', function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  for (const [name, pattern] of [
    ['mé', 'm*'],
    ['uplink-ü', 'uplink-*'],
    ['端口0', '端口*'],
    ['é', '[!a-z]*'],
  ] as const) {
    it(`interface names that are not ASCII are managed: a veth named ${name} gets gso off (issue 20 #11)`, async () => {
      ns.addVeth(name);
      assert.equal(ns.features(name)[GSO], true, 'gso starts on');
      const policy = `rules:\n  - name: by-name\n    match: { name: ${JSON.stringify(pattern)}, kind: veth }\n    features: { gso: off }\n`;
      const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', policy)]);
      await daemon.ready();
      await waitFor(() => ns.features(name)[GSO] === false, `gso off on ${name}`);
      ns.setFeatures(name, 'gso', 'on');
      await waitFor(() => ns.features(name)[GSO] === false, `drift on ${name} corrected`);
    });
  }
});
