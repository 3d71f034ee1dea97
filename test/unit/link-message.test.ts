import { strict as assert } from 'node:assert';
import { LinkEventReason, parseLinkDatagram, type LinkMessage } from '../../src/events/link-message';
import { asShownName, kernelName, type NameEscape } from '../../src/events/link-name';
import { escapeControl } from '../../src/observe/escape';
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
      assert.equal(link?.nameEscaped, undefined);
    }
  });

  const named = (bytes: number[] | Buffer): LinkMessage | undefined =>
    parseLinkDatagram(linkMessage(16, 9, 1, [attribute(3, Buffer.concat([Buffer.from(bytes), Buffer.from([0])]))]))[0];

  it('interface names that are not UTF-8 are shown C-escaped (m\\xe9), and the escape turns back into the same bytes (issue 20 #11)', () => {
    const cases: Array<[label: string, bytes: number[], shown: string, why: NameEscape]> = [
      ['a latin1 byte', [0x6d, 0xe9], 'm\\xe9', 'not-utf8'],
      ['bytes that never start UTF-8', [0x72, 0xff, 0xfe], 'r\\xff\\xfe', 'not-utf8'],
      ['a truncated sequence', [0x61, 0xe2, 0x82], 'a\\xe2\\x82', 'not-utf8'],
      ['an overlong form', [0xc0, 0xaf, 0x61], '\\xc0\\xaf' + 'a', 'not-utf8'],
      ['a UTF-16 surrogate', [0xed, 0xa0, 0x80], '\\xed\\xa0\\x80', 'not-utf8'],
      ['valid UTF-8 beside a bad byte', [0xc3, 0xa9, 0xe9], '\u00e9\\xe9', 'not-utf8'],
      ['an escape sequence', [0x75, 0x70, 0x1b, 0x5b, 0x32, 0x4a], 'up\\x1b[2J', 'unsafe'],
      ['a C1 control (UTF-8)', [0x78, 0xc2, 0x9b], 'x\\xc2\\x9b', 'unsafe'],
      ['a right-to-left override', [0x65, 0xe2, 0x80, 0xae, 0x30], 'e\\xe2\\x80\\xae0', 'unsafe'],
      ['a backslash', [0x61, 0x5c, 0x62], 'a\\\\b', 'backslash'],
      ['what an escaped name looks like, literally', [...Buffer.from('m\\xe9')], 'm\\\\xe9', 'backslash'],
    ];
    const shownNames = new Set<string>();
    for (const [label, bytes, shown, why] of cases) {
      const link = named(bytes);
      assert.equal(link?.name, shown, label);
      assert.equal(link?.nameEscaped, why, label);
      assert.deepEqual(kernelName(shown), Buffer.from(bytes), `${label}: back to the same bytes`);
      assert.equal(escapeControl(shown), shown, `${label}: nothing left to escape for a terminal`);
      shownNames.add(shown);
    }
    assert.equal(shownNames.size, cases.length, 'no two names shown alike');
    assert.equal(kernelName('a\\q'), null, 'a backslash that starts no escape is no shown name');
    assert.deepEqual(kernelName('端口0'), Buffer.from('端口0'));
  });

  it('takes a name given raw or shown to the shown name (offloadctl show, drift --interface)', () => {
    assert.equal(asShownName('up\x1b[7mX'), 'up\\x1b[7mX', 'a raw escape character');
    assert.equal(asShownName('up\\x1b[7mX'), 'up\\x1b[7mX', 'already shown');
    assert.equal(asShownName('up"q\\z'), 'up"q\\\\z', 'a lone backslash');
    assert.equal(asShownName('eth0'), 'eth0');
  });

  it('every byte string the kernel accepts is shown so that it turns back into itself (seeded: OFFLOADD_FUZZ_SEED replays a run)', () => {
    const seed = Number(process.env['OFFLOADD_FUZZ_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
    const random = seededRandom(seed);
    const forbidden = new Set([0x00, 0x2f, 0x3a, 0x20, 0x09, 0x0a, 0x0b, 0x0c, 0x0d]);
    const seen = new Map<string, string>();
    for (let i = 0; i < 5000; i++) {
      const bytes: number[] = [];
      const length = 1 + Math.floor(random() * 15);
      while (bytes.length < length) {
        const byte = random() < 0.5 ? 0x41 + Math.floor(random() * 60) : Math.floor(random() * 256);
        if (!forbidden.has(byte)) bytes.push(byte);
      }
      const link = named(bytes);
      const context = `seed ${seed}, case ${i}: replay with OFFLOADD_FUZZ_SEED=${seed}`;
      assert.ok(link, context);
      assert.deepEqual(kernelName(link.name), Buffer.from(bytes), context);
      const hex = Buffer.from(bytes).toString('hex');
      assert.equal(seen.get(link.name) ?? hex, hex, `${context}: two names shown alike`);
      seen.set(link.name, hex);
    }
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

  it('reads a datagram that starts at an odd address (a slice of another Buffer) as any other', () => {
    const odd = Buffer.concat([Buffer.alloc(1), ens, Buffer.alloc(3)]).subarray(1, 1 + ens.length);
    assert.equal(odd.byteOffset % 2, 1);
    assert.deepEqual(parseLinkDatagram(odd), parseLinkDatagram(ens));
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
