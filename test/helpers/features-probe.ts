/**
 * Run inside a test namespace (`ip netns exec NS node features-probe.js`): prints
 * { ifname: { feature: active } } for every link, read with ETHTOOL_GFEATURES. Lets a test check
 * thousands of interfaces in one process instead of one ethtool process each.
 */
import { dumpLinks } from '../../src/events/link-events';
import { FeatureTable } from '../../src/reconcile/feature-state';

const table = FeatureTable.fromKernel();
const wanted = process.argv.slice(2);
const result: Record<string, Record<string, boolean>> = {};
for (const link of dumpLinks()) {
  try {
    const snapshot = table.read(link.name, link.ifindex);
    result[link.name] = Object.fromEntries(wanted.map((feature) => [feature, snapshot.get(feature)?.active ?? false]));
  } catch {
    // vanished meanwhile
  }
}
process.stdout.write(JSON.stringify(result));
