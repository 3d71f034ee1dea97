/**
 * Device facts of virtual interfaces: where the driver is taken from the link message's kind
 * (no ETHTOOL_GDRVINFO), it must be exactly what GDRVINFO says. Real kernel, own namespace.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { eachTestInItsOwnNetns, type Netns } from '../helpers/netns';

const DIST_SRC = path.resolve(__dirname, '..', '..', 'src');

/** Run in the namespace: for each link, the facts the daemon takes and what GDRVINFO says. */
const COMPARE = `const { dumpLinks } = require(${JSON.stringify(path.join(DIST_SRC, 'events', 'link-events'))});
const { addon } = require(${JSON.stringify(path.join(DIST_SRC, 'addon', 'binding'))});
const { InterfaceFactsSource } = require(${JSON.stringify(path.join(DIST_SRC, 'facts', 'interface-facts'))});
const facts = new InterfaceFactsSource('/sys');
const result = {};
for (const link of dumpLinks()) {
  if (link.name === 'lo') continue;
  const info = addon.driverInfo(link.name, link.ifindex);
  const device = facts.device(link);
  result[link.name] = { kind: link.kind, taken: [device.driver, device.busInfo], asked: [info.driver || null, info.busInfo || null] };
}
process.stdout.write(JSON.stringify(result));`;

describe('device facts of virtual interfaces (real kernel, own namespace)', function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  it('the driver taken from the link message is the one ETHTOOL_GDRVINFO names, for every kind it is taken for', () => {
    ns.addVeth('v0');
    const tried = ['macvlan', 'vxlan', 'ifb'];
    for (const kind of tried) {
      try {
        if (kind === 'macvlan') ns.ip('link', 'add', 'k-macvlan', 'link', 'v0', 'type', 'macvlan');
        else if (kind === 'vxlan') ns.ip('link', 'add', 'k-vxlan', 'type', 'vxlan', 'id', '5', 'dstport', '4789');
        else ns.ip('link', 'add', `k-${kind}`, 'type', kind);
      } catch {
        // This kernel has no such kind (module not loaded): nothing to compare.
      }
    }
    ns.ip('tuntap', 'add', 'k-tap', 'mode', 'tap');
    ns.ip('link', 'add', 'k-bridge', 'type', 'bridge');
    const compared = JSON.parse(ns.exec(process.execPath, '-e', COMPARE)) as Record<
      string,
      { kind: string | null; taken: unknown[]; asked: unknown[] }
    >;
    assert.ok(compared['v0'] && compared['k-tap'] && compared['k-bridge'], JSON.stringify(compared));
    for (const [name, { kind, taken, asked }] of Object.entries(compared))
      assert.deepEqual(taken, asked, `${name} (kind ${kind ?? 'none'})`);
  });
});
