/**
 * The native addon's contract: typed errors with errno, syscall and interface, no crashes on bad
 * arguments, no file descriptor leaks. Reads only: writes are exercised in the kernel tests,
 * inside their own namespaces.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as v8 from 'node:v8';
import { addon, FEATURE_BITSET, type FeatureBitsets, type FeaturesBatch } from '../../src/addon/binding';
import { KernelError } from '../../src/errors';
import { dumpLinks } from '../../src/events/link-events';
import { releaseBurstMemory } from '../../src/memory';
import { FeatureTable } from '../../src/reconcile/feature-state';

const openFds = (): number => fs.readdirSync('/proc/self/fd').length;
/** Request `item`'s answer in a readFeatures batch, as the ioctl's getFeatures gives it. */
function answerBitsets(batch: FeaturesBatch, item: number): FeatureBitsets {
  const bitset = (which: number): Uint32Array => {
    const at = (item * FEATURE_BITSET.count + which) * batch.words;
    return batch.bits.slice(at, at + batch.words);
  };
  return {
    available: bitset(FEATURE_BITSET.available),
    requested: bitset(FEATURE_BITSET.requested),
    active: bitset(FEATURE_BITSET.active),
    neverChanged: bitset(FEATURE_BITSET.neverChanged),
  };
}
/** Bad arguments are a clear error — a TypeError or RangeError, or a KernelError with its errno — never a crash. */
const bad = (call: () => unknown): void =>
  assert.throws(
    call,
    (error: unknown) =>
      error instanceof TypeError || error instanceof RangeError || (error instanceof KernelError && error.errno > 0),
  );

describe('native addon contract', () => {
  it("lists the kernel's feature names", () => {
    const names = addon.featureNames('lo');
    assert.ok(names.includes('rx-gro') && names.includes('tx-generic-segmentation'));
  });

  it('reads features of lo through the feature table', () => {
    const table = FeatureTable.fromKernel();
    const lo = table.read('lo', 1);
    assert.equal(typeof lo.get('rx-gro')?.active, 'boolean');
    assert.equal(lo.get('no-such-feature'), undefined);
  });

  it('fails with ENODEV, naming the interface, when the name is gone', () => {
    assert.throws(
      () => addon.getFeatures('offloadd-nope0', 0),
      (error: unknown) =>
        error instanceof KernelError &&
        error.code === 'ENODEV' &&
        error.vanished &&
        error.ifname === 'offloadd-nope0' &&
        error.syscall === 'ETHTOOL_GFEATURES' &&
        error.errno === 19,
    );
  });

  it('fails with ENODEV when the name now belongs to another ifindex (rename race guard)', () => {
    assert.throws(
      () => addon.getFeatures('lo', 99999),
      (error: unknown) => error instanceof KernelError && error.code === 'ENODEV',
    );
  });

  it('reads the same features over ethtool netlink, by ifindex, as over the ioctl', () => {
    assert.equal(addon.ethtoolNetlinkAvailable(), true, 'this kernel (>= 5.6) has the ethtool family');
    const overNetlink = addon.readFeatures([1]);
    assert.equal(overNetlink.errnos[0], 0);
    assert.equal(overNetlink.extacks, null, 'no extended ACK text when nothing was refused');
    assert.deepEqual(answerBitsets(overNetlink, 0), addon.getFeatures('lo', 1));
    assert.equal(FeatureTable.fromKernel().via, 'ethtool-netlink');
  });

  it("fails over netlink with ENODEV and the kernel's own explanation for an ifindex that does not exist", () => {
    assert.throws(
      () => FeatureTable.fromKernel('ethtool-netlink').read('gone', 2 ** 30),
      (error: unknown) =>
        error instanceof KernelError &&
        error.vanished &&
        error.syscall === 'ETHTOOL_MSG_FEATURES_GET' &&
        /ifindex|device/i.test(error.message),
    );
  });

  it('pipelines many FEATURES_GET in one call: each answer in its place, a failure only in its own', () => {
    const count = 600; // more than one window of requests
    const ifindexes = new Array<number>(count).fill(1);
    ifindexes[7] = 2 ** 30; // no such interface
    const answers = addon.readFeatures(ifindexes);
    const lo = addon.getFeatures('lo', 1);
    assert.equal(answers.errnos.length, count);
    assert.equal(answers.bits.length, count * FEATURE_BITSET.count * answers.words);
    for (let i = 0; i < count; i++) {
      if (i === 7) continue;
      assert.equal(answers.errnos[i], 0, `request ${i}`);
      assert.equal(answers.extacks?.[i], '', `request ${i}: no text`);
      assert.deepEqual(answerBitsets(answers, i), lo, `request ${i}`);
    }
    assert.equal(answers.errnos[7], os.constants.errno.ENODEV);
    assert.match(String(answers.extacks?.[7]), /ifindex|device/i, "the kernel's text is for the failed request");
    assert.ok(
      answerBitsets(answers, 7).active.every((word) => word === 0),
      "a refused request's bitsets stay zero",
    );
    const [failed] = FeatureTable.fromKernel().readMany([{ name: 'gone', ifindex: 2 ** 30 }]);
    assert.ok(failed instanceof KernelError && failed.vanished && /ifindex|device/i.test(failed.message));
  });

  it('rejects malformed arguments with a TypeError or EINVAL, never a crash', () => {
    const read = addon.readFeatures as unknown as (...args: unknown[]) => unknown;
    const write = addon.writeFeatures as unknown as (...args: unknown[]) => unknown;
    bad(() => read(new Int32Array([1])));
    bad(() => read([0]));
    bad(() => read([-1]));
    bad(() => read(['1']));
    bad(() => read());
    bad(() => write([{ ifindex: 1, enable: [3] }]));
    bad(() => write([{ ifindex: 1, enable: [2 ** 20], disable: [] }]));
    bad(() => write([{ ifindex: 1, enable: [-1], disable: [] }]));
    bad(() => write([{ ifindex: 1, enable: [0.5], disable: [] }]));
    bad(() => write([{ ifindex: 0, enable: [], disable: [] }]));
    bad(() => write([1]));
    bad(() => write(new Uint32Array(3)));
    const monitor = addon.openLinkMonitor(65536, () => undefined);
    try {
      bad(() => (monitor.dropDevicelessLinks as unknown as (...args: unknown[]) => unknown)('yes'));
    } finally {
      monitor.close();
    }
    bad(() => (addon.getFeatures as unknown as (...args: unknown[]) => unknown)(42, 'x'));
    bad(() => addon.getFeatures('a-name-longer-than-ifnamsiz', 0));
    bad(() => (addon.setFeatures as unknown as (...args: unknown[]) => unknown)('lo', 1, new Uint32Array(3)));
    bad(() => (addon.setFeatures as unknown as (...args: unknown[]) => unknown)('lo', 1, [1, 2]));
    bad(() => addon.setFeatures('lo', 1, { enable: [2 ** 20], disable: [] }));
    bad(() => addon.sendDatagram('', Buffer.from('x'), false));
    const sendDatagrams = addon.sendDatagrams as unknown as (...args: unknown[]) => unknown;
    const typeError = (call: () => unknown, message: RegExp): void =>
      assert.throws(call, (error: unknown) => error instanceof TypeError && message.test(error.message));
    typeError(() => sendDatagrams(42, [Buffer.from('x')], false), /expected \(path: string, datagrams: Buffer\[\]/);
    typeError(() => sendDatagrams('/nonexistent/socket', Buffer.from('x'), false), /datagrams: Buffer\[\]/);
    typeError(
      () => sendDatagrams('/nonexistent/socket', [Buffer.from('x'), 'y'], false),
      /datagrams\[1\] is not a Buffer/,
    );
    typeError(() => sendDatagrams('/nonexistent/socket'), /expected/);
    bad(() => sendDatagrams('', [Buffer.from('x')], false));
    bad(() => sendDatagrams(`/tmp/${'x'.repeat(200)}`, [Buffer.from('x')], false));
    assert.deepEqual(addon.sendDatagrams('/nonexistent/socket', [], false), { sent: 0 });
    bad(() => addon.listenUnix('', 1, () => undefined));
    bad(() => addon.listenUnix(`/tmp/${'x'.repeat(200)}`, 1, () => undefined));
  });

  it('dumps every link', () => {
    const links = dumpLinks();
    assert.ok(links.some((link) => link.name === 'lo' && link.ifindex === 1));
  });

  it('gives back the memory of a burst: the young generation shrinks, objects in use survive', () => {
    const youngGeneration = (): number => {
      const young = v8.getHeapSpaceStatistics().find((space) => space.space_name === 'new_space');
      assert.ok(young, 'V8 reports a new_space');
      return young.space_size;
    };
    const kept = Array.from({ length: 1000 }, (_, index) => ({ index, name: `m${index}` }));
    // A burst like a reconcile pass: objects that live through a few young collections before
    // they die, which is what makes V8 grow the young generation (garbage that dies at once does
    // not). Compared with its own size before and after, never with a version's constants.
    let recent: object[][] = [];
    for (let round = 0; round < 200; round++) {
      recent.push(Array.from({ length: 1000 }, (_, index) => ({ index, round })));
      if (recent.length > 20) recent.shift();
    }
    recent = [];
    const grown = youngGeneration();
    releaseBurstMemory();
    const released = youngGeneration();
    assert.ok(released < grown, `the young generation is ${released} bytes after the release, ${grown} before it`);
    assert.equal(recent.length, 0);
    assert.equal(kept[999]?.name, 'm999');
    assert.equal(typeof addon.trimNativeHeap(), 'boolean');
    assert.equal((globalThis as { gc?: unknown }).gc, undefined, "the daemon's own global gets no gc()");
  });

  it('leaks no file descriptors', () => {
    const before = openFds();
    for (let i = 0; i < 500; i++) {
      dumpLinks();
      try {
        addon.getFeatures('offloadd-nope0', 0);
      } catch {
        // expected
      }
      try {
        addon.readFeatures([2 ** 30]);
      } catch {
        // expected
      }
      const monitor = addon.openLinkMonitor(65536, () => undefined);
      monitor.close();
      monitor.close(); // twice is harmless
    }
    assert.ok(openFds() <= before + 2, `fds: ${before} → ${openFds()}`); // the cached ioctl/datagram and ethtool netlink sockets
  });
});
