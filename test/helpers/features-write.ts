/**
 * Run inside a test namespace (`ip netns exec NS node features-write.js VIA IFNAME IFINDEX FEATURE on|off`):
 * sets one feature through FeatureTable over VIA (ethtool-netlink or ioctl) and prints
 * { ok: true, active, replied } — `active` read back the same way, `replied` what the write's own
 * answer says (the FEATURES_SET reply; null over the ioctl, which has none) — or
 * { ok: false, code, message }. VIA `ethtool-netlink-batch` goes through readMany/writeMany.
 * When IFNAME/IFINDEX cannot be read (it is gone), the write is still attempted, planned on lo's
 * snapshot, so the write's own failure is what is reported.
 */
import { KernelError } from '../../src/errors';
import {
  FeatureTable,
  UnparsedReply,
  type FeatureInterface,
  type FeatureSnapshot,
  type WriteReadBack,
} from '../../src/reconcile/feature-state';

const [mode, ifname, ifindexText, feature, value] = process.argv.slice(2) as [
  FeatureInterface | 'ethtool-netlink-batch',
  string,
  string,
  string,
  string,
];
const batch = mode === 'ethtool-netlink-batch';
const table = FeatureTable.fromKernel(batch ? 'ethtool-netlink' : mode);
const ifindex = Number(ifindexText);
const target = { name: ifname, ifindex };
const changes = [{ feature, on: value === 'on' }];
try {
  let before: FeatureSnapshot;
  try {
    const [read] = batch ? table.readMany([target]) : [table.read(ifname, ifindex)];
    if (read instanceof KernelError) throw read;
    before = read as FeatureSnapshot;
  } catch (error) {
    if (!(error instanceof KernelError) || !error.vanished) throw error;
    before = table.read('lo', 1);
  }
  let answer: WriteReadBack | KernelError;
  if (batch) [answer] = table.writeMany([{ target, changes, before }]) as [WriteReadBack | KernelError];
  else answer = table.write(ifname, ifindex, changes, before);
  if (answer instanceof KernelError) throw answer;
  const replied = answer === null || answer instanceof UnparsedReply ? null : (answer.get(feature)?.active ?? null);
  process.stdout.write(
    JSON.stringify({ ok: true, via: table.via, active: table.read(ifname, ifindex).get(feature)?.active, replied }),
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
