/**
 * Reading and writing features over both paths the daemon can use, against the real kernel in a
 * test namespace: ethtool netlink (by ifindex) and the ioctls (by name, checked against the
 * ifindex). A rename between the event and the request must never reach another interface.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { type Netns, eachTestInItsOwnNetns } from '../helpers/netns';

const WRITER = path.resolve(__dirname, '..', 'helpers', 'features-write.js');

interface WriteResult {
  ok: boolean;
  via?: string;
  active?: boolean;
  replied?: boolean | null;
  code?: string;
  vanished?: boolean;
  message?: string;
}

describe('feature access over ethtool netlink and the ioctls (real kernel, own namespace)', function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  const ifindexOf = (name: string): number =>
    (JSON.parse(ns.ip('-j', 'link', 'show', 'dev', name)) as Array<{ ifindex: number }>)[0]?.ifindex ?? 0;
  const write = (via: string, name: string, ifindex: number, feature: string, value: 'on' | 'off'): WriteResult =>
    JSON.parse(ns.exec(process.execPath, WRITER, via, name, String(ifindex), feature, value)) as WriteResult;

  for (const mode of ['ethtool-netlink', 'ethtool-netlink-batch', 'ioctl']) {
    const via = mode === 'ioctl' ? 'ioctl' : 'ethtool-netlink';
    it(`${mode}: sets a feature, and the write's own answer (netlink's reply) agrees with ethtool`, () => {
      ns.addVeth('fa0');
      const result = write(mode, 'fa0', ifindexOf('fa0'), 'tx-generic-segmentation', 'off');
      assert.deepEqual(result, { ok: true, via, active: false, replied: via === 'ioctl' ? null : false });
      assert.equal(ns.features('fa0')['generic-segmentation-offload'], false);
    });

    it(`${mode}: a request a dependency overrides is answered as not granted (TSO needs checksumming)`, () => {
      ns.addVeth('fa0');
      ns.exec('ethtool', '-K', 'fa0', 'tx', 'off'); // takes TSO down with it
      const result = write(mode, 'fa0', ifindexOf('fa0'), 'tx-tcp-segmentation', 'on');
      assert.deepEqual(result, { ok: true, via, active: false, replied: via === 'ioctl' ? null : false });
    });

    it(`${mode}: an interface deleted before the request is ENODEV (vanished), and nothing else is touched`, () => {
      ns.addVeth('fa0');
      const gone = ifindexOf('fa0');
      ns.ip('link', 'del', 'fa0');
      ns.addVeth('fa1');
      const result = write(mode, 'fa0', gone, 'tx-generic-segmentation', 'off');
      assert.equal(result.ok, false);
      assert.equal(result.code, 'ENODEV', result.message);
      assert.equal(result.vanished, true);
      if (via === 'ethtool-netlink')
        // The kernel's extended ACK text, carried into the message (and so into records and logs).
        assert.match(result.message ?? '', /^ETHTOOL_MSG_FEATURES_SET on fa0 failed: .+ \(.*ifindex.*\)$/);
      assert.equal(ns.features('fa1')['generic-segmentation-offload'], true, 'the other interface is untouched');
    });
  }

  for (const mode of ['ethtool-netlink', 'ethtool-netlink-batch']) {
    it(`${mode}: after a rename, the request by ifindex still reaches the interface meant, never the name's new owner`, () => {
      ns.addVeth('fa0');
      const meant = ifindexOf('fa0');
      ns.ip('link', 'set', 'dev', 'fa0', 'name', 'fa-moved');
      ns.addVeth('fa0', 'fb0'); // the old name now belongs to another interface
      const result = write(mode, 'fa0', meant, 'tx-generic-segmentation', 'off');
      assert.equal(result.ok, true, result.message);
      assert.equal(result.replied, false);
      assert.equal(ns.features('fa-moved')['generic-segmentation-offload'], false, 'the interface meant');
      assert.equal(ns.features('fa0')['generic-segmentation-offload'], true, 'not the new owner of the name');
    });
  }

  it("ioctl: after a rename, the name check refuses the request (ENODEV) instead of touching the name's new owner", () => {
    ns.addVeth('fa0');
    const meant = ifindexOf('fa0');
    ns.ip('link', 'set', 'dev', 'fa0', 'name', 'fa-moved');
    ns.addVeth('fa0', 'fb0');
    const result = write('ioctl', 'fa0', meant, 'tx-generic-segmentation', 'off');
    assert.equal(result.code, 'ENODEV', result.message);
    assert.equal(ns.features('fa0')['generic-segmentation-offload'], true);
  });
});
