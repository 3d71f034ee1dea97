import { strict as assert } from 'node:assert';
import { LinkEventReason, parseLinkDatagram } from '../../src/events/link-message';
import { seededRandom } from '../helpers/random';

function attribute(type: number, value: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt16LE(4 + value.length, 0);
  header.writeUInt16LE(type, 2);
  const padding = Buffer.alloc((4 - ((4 + value.length) % 4)) % 4);
  return Buffer.concat([header, value, padding]);
}

function u32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32LE(value);
  return buffer;
}

function linkMessage(type: number, ifindex: number, flags: number, attributes: Buffer[]): Buffer {
  const ifinfo = Buffer.alloc(16);
  ifinfo.writeInt32LE(ifindex, 4);
  ifinfo.writeUInt32LE(flags, 8);
  const body = Buffer.concat([ifinfo, ...attributes]);
  const header = Buffer.alloc(16);
  header.writeUInt32LE(16 + body.length, 0);
  header.writeUInt16LE(type, 4);
  return Buffer.concat([header, body]);
}

const ens = linkMessage(16, 7, 1, [
  attribute(3, Buffer.from('ens1f0np0\0')),
  attribute(1, Buffer.from([0x00, 0x0a, 0xf7, 0x12, 0x34, 0x56])),
  attribute(16, Buffer.from([6])),
  attribute(10, u32(3)),
  attribute(18 | 0x8000, attribute(1, Buffer.from('veth\0'))),
  attribute(44, u32(2)),
  attribute(56, Buffer.from('0000:3b:00.0\0')),
  attribute(57, Buffer.from('pci\0')),
]);

describe('rtnetlink link message parser', () => {
  it('reads the attributes matching needs', () => {
    assert.deepEqual(parseLinkDatagram(ens), [
      {
        type: 'new',
        ifindex: 7,
        name: 'ens1f0np0',
        up: true,
        operstate: 'up',
        kind: 'veth',
        mac: '00:0a:f7:12:34:56',
        master: 3,
        event: LinkEventReason.features,
        parentDevice: '0000:3b:00.0',
        parentBus: 'pci',
      },
    ]);
  });

  it('reads a name that is not ASCII as the UTF-8 text the addon and sysfs paths write back (issue 20 #11)', () => {
    for (const name of ['mé', '端口0', 'uplink-ü']) {
      const [link] = parseLinkDatagram(linkMessage(16, 9, 1, [attribute(3, Buffer.from(`${name}\0`))]));
      assert.equal(link?.name, name);
      assert.equal(Buffer.from(link?.name ?? '', 'utf8').equals(Buffer.from(name)), true, 'the same bytes again');
      assert.equal(link?.nameNotUtf8, undefined);
    }
    // Bytes the kernel accepts that are no UTF-8: flagged, one character per byte.
    const [odd] = parseLinkDatagram(linkMessage(16, 9, 1, [attribute(3, Buffer.from([0x6d, 0xff, 0xe9, 0]))]));
    assert.equal(odd?.name, 'm\u00ff\u00e9');
    assert.equal(odd?.nameNotUtf8, true);
  });

  it('reads several messages in one datagram, and deletions', () => {
    const deleted = linkMessage(17, 9, 0, [attribute(3, Buffer.from('tap0\0'))]);
    assert.deepEqual(
      parseLinkDatagram(Buffer.concat([ens, deleted])).map((link) => [link.type, link.name]),
      [
        ['new', 'ens1f0np0'],
        ['del', 'tap0'],
      ],
    );
  });

  it('skips messages without a name and stops at a truncated one', () => {
    assert.deepEqual(parseLinkDatagram(linkMessage(16, 7, 0, [])), []);
    const parsed = parseLinkDatagram(Buffer.concat([ens, ens.subarray(0, 40)]));
    assert.equal(parsed.length, 1);
  });

  it('never throws on garbage (seeded: OFFLOADD_FUZZ_SEED replays a run)', () => {
    const seed = Number(process.env['OFFLOADD_FUZZ_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
    const random = seededRandom(seed);
    for (let i = 0; i < 2000; i++) {
      const garbage = Buffer.from(Array.from({ length: Math.floor(random() * 300) }, () => Math.floor(random() * 256)));
      if (garbage.length >= 6 && random() < 0.5) garbage.writeUInt16LE(16, 4); // looks like RTM_NEWLINK
      assert.doesNotThrow(
        () => parseLinkDatagram(garbage),
        `seed ${seed}, case ${i}: replay with OFFLOADD_FUZZ_SEED=${seed}`,
      );
    }
    for (let cut = 0; cut < ens.length; cut++) assert.doesNotThrow(() => parseLinkDatagram(ens.subarray(0, cut)));
  });
});
