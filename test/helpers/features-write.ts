/**
 * Run inside a test namespace (`ip netns exec NS node features-write.js VIA IFNAME IFINDEX FEATURE on|off`):
 * sets one feature through FeatureTable over VIA (ethtool-netlink or ioctl) and prints
 * { ok: true, active } read back the same way, or { ok: false, code, message }.
 */
import { KernelError } from '../../src/errors';
import { FeatureTable, type FeatureInterface } from '../../src/reconcile/feature-state';

const [via, ifname, ifindexText, feature, value] = process.argv.slice(2) as [
  FeatureInterface,
  string,
  string,
  string,
  string,
];
const table = FeatureTable.fromKernel(via);
const ifindex = Number(ifindexText);
try {
  table.write(ifname, ifindex, [{ feature, on: value === 'on' }]);
  process.stdout.write(
    JSON.stringify({ ok: true, via: table.via, active: table.read(ifname, ifindex).get(feature)?.active }),
  );
} catch (error) {
  const kernel = error instanceof KernelError ? error : null;
  process.stdout.write(
    JSON.stringify({
      ok: false,
      code: kernel?.code ?? 'other',
      vanished: kernel?.vanished ?? false,
      message: (error as Error).message,
    }),
  );
}
