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

  for (const via of ['ethtool-netlink', 'ioctl']) {
    it(`${via}: sets a feature and reads it back, as ethtool sees it`, () => {
      ns.addVeth('fa0');
      const result = write(via, 'fa0', ifindexOf('fa0'), 'tx-generic-segmentation', 'off');
      assert.deepEqual(result, { ok: true, via, active: false });
      assert.equal(ns.features('fa0')['generic-segmentation-offload'], false);
    });

    it(`${via}: an interface deleted before the request is ENODEV (vanished), and nothing else is touched`, () => {
      ns.addVeth('fa0');
      const gone = ifindexOf('fa0');
      ns.ip('link', 'del', 'fa0');
      ns.addVeth('fa1');
      const result = write(via, 'fa0', gone, 'tx-generic-segmentation', 'off');
      assert.equal(result.ok, false);
      assert.equal(result.code, 'ENODEV', result.message);
      assert.equal(result.vanished, true);
      assert.equal(ns.features('fa1')['generic-segmentation-offload'], true, 'the other interface is untouched');
    });
  }

  it("ethtool-netlink: after a rename, the request by ifindex still reaches the interface meant, never the name's new owner", () => {
    ns.addVeth('fa0');
    const meant = ifindexOf('fa0');
    ns.ip('link', 'set', 'dev', 'fa0', 'name', 'fa-moved');
    ns.addVeth('fa0', 'fb0'); // the old name now belongs to another interface
    const result = write('ethtool-netlink', 'fa0', meant, 'tx-generic-segmentation', 'off');
    assert.equal(result.ok, true, result.message);
    assert.equal(ns.features('fa-moved')['generic-segmentation-offload'], false, 'the interface meant');
    assert.equal(ns.features('fa0')['generic-segmentation-offload'], true, 'not the new owner of the name');
  });

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
