import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Btf, BtfError, kernelNetnsOffsets, netnsOffsets } from '../../src/attribution/btf';

/** Writes BTF as the kernel lays it out (Documentation/bpf/btf.rst), type ids from 1. */
class BtfBuilder {
  private readonly types: Buffer[] = [];
  private strings = Buffer.from([0]);

  private name(text: string): number {
    if (text === '') return 0;
    const at = this.strings.length;
    this.strings = Buffer.concat([this.strings, Buffer.from(`${text}\0`, 'latin1')]);
    return at;
  }

  private add(
    name: string,
    kind: number,
    vlen: number,
    sizeOrType: number,
    trailing = Buffer.alloc(0),
    kflag = 0,
  ): number {
    const head = Buffer.alloc(12);
    head.writeUInt32LE(this.name(name), 0);
    head.writeUInt32LE(((kflag << 31) | (kind << 24) | vlen) >>> 0, 4);
    head.writeUInt32LE(sizeOrType, 8);
    this.types.push(Buffer.concat([head, trailing]));
    return this.types.length;
  }

  int(name: string, bytes: number): number {
    const encoding = Buffer.alloc(4);
    encoding.writeUInt32LE(bytes * 8, 0);
    return this.add(name, 1, 0, bytes, encoding);
  }
  ptr(to: number): number {
    return this.add('', 2, 0, to);
  }
  typedef(name: string, to: number): number {
    return this.add(name, 8, 0, to);
  }
  const(to: number): number {
    return this.add('', 10, 0, to);
  }
  fwd(name: string): number {
    return this.add(name, 7, 0, 0);
  }
  /** Members: [name, type id, byte offset]; kflag: offsets carry a bitfield size (0 here). */
  struct(name: string, size: number, members: Array<[string, number, number]>, kflag = 0): number {
    const trailing = Buffer.alloc(12 * members.length);
    members.forEach(([member, type, offset], i) => {
      trailing.writeUInt32LE(this.name(member), 12 * i);
      trailing.writeUInt32LE(type, 12 * i + 4);
      trailing.writeUInt32LE(offset * 8, 12 * i + 8);
    });
    return this.add(name, 4, members.length, size, trailing, kflag);
  }
  build(): Buffer {
    const types = Buffer.concat(this.types);
    const header = Buffer.alloc(24);
    header.writeUInt16LE(0xeb9f, 0);
    header.writeUInt8(1, 2);
    header.writeUInt32LE(24, 4);
    header.writeUInt32LE(0, 8);
    header.writeUInt32LE(types.length, 12);
    header.writeUInt32LE(types.length, 16);
    header.writeUInt32LE(this.strings.length, 20);
    return Buffer.concat([header, types, this.strings]);
  }
}

/** task_struct → nsproxy → net → ns_common.inum, with the detours the real kernel's BTF takes. */
function kernelLike(change: { inumBytes?: number; netNsType?: 'ptr' | 'int' } = {}): Buffer {
  const b = new BtfBuilder();
  const u32 = b.int('unsigned int', 4);
  const u64 = b.int('long long unsigned int', 8);
  b.fwd('net'); // a forward declaration first: not the struct
  const nsCommon = b.struct('ns_common', 80, [
    ['stashed', u64, 8],
    ['inum', change.inumBytes === 8 ? u64 : b.typedef('u32', u32), 24],
  ]);
  const net = b.struct('net', 4224, [
    ['passive', u32, 0],
    ['ns', nsCommon, 152],
  ]);
  const netPtr = change.netNsType === 'int' ? u64 : b.ptr(net);
  const nsproxy = b.struct('nsproxy', 72, [
    ['count', u32, 0],
    ['net_ns', netPtr, 40],
  ]);
  const nsproxyPtr = b.ptr(b.const(nsproxy));
  // An anonymous struct inside task_struct, as randomize_layout groups members.
  const inner = b.struct('', 16, [
    ['fs', u64, 0],
    ['nsproxy', nsproxyPtr, 8],
  ]);
  b.struct('task_struct', 3264, [
    ['state', u32, 0],
    ['', inner, 1832],
  ]);
  return b.build();
}

describe('attribution: BTF (where the network namespace is)', () => {
  it('finds task_struct.nsproxy, nsproxy.net_ns and net.ns.inum through anonymous members and typedefs', () => {
    assert.deepEqual(netnsOffsets(new Btf(kernelLike())), { taskNsproxy: 1840, nsproxyNetNs: 40, netInum: 176 });
  });

  it('says which member is missing or not as expected', () => {
    const b = new BtfBuilder();
    b.struct('task_struct', 8, [['state', b.int('int', 4), 0]]);
    assert.throws(() => netnsOffsets(new Btf(b.build())), /no member task_struct\.nsproxy/);
    assert.throws(() => netnsOffsets(new Btf(kernelLike({ netNsType: 'int' }))), /nsproxy\.net_ns is not a pointer/);
    assert.throws(() => netnsOffsets(new Btf(kernelLike({ inumBytes: 8 }))), /32-bit member ns_common\.inum/);
    assert.throws(() => netnsOffsets(new Btf(new BtfBuilder().build())), /no struct task_struct/);
  });

  it('refuses a blob that is not BTF, or is cut short, with a BtfError', () => {
    assert.throws(() => new Btf(Buffer.alloc(10)), BtfError);
    assert.throws(() => new Btf(Buffer.alloc(64)), /not BTF/);
    const whole = kernelLike();
    assert.throws(() => new Btf(whole.subarray(0, whole.length - 40)), /past the end/);
    const unknownKind = Buffer.from(whole);
    unknownKind.writeUInt32LE(31 << 24, 24 + 4); // the first type's kind
    assert.throws(() => new Btf(unknownKind), /unknown BTF kind 31/);
  });

  it('kernelNetnsOffsets: a sentence, never an exception, for a missing or damaged file; read once', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-btf-'));
    try {
      const missing = kernelNetnsOffsets(path.join(dir, 'vmlinux'));
      assert.ok('missing' in missing);
      assert.match(missing.missing, /no BTF .*ENOENT/);
      fs.writeFileSync(path.join(dir, 'damaged'), Buffer.alloc(100, 0xff));
      const damaged = kernelNetnsOffsets(path.join(dir, 'damaged'));
      assert.ok('missing' in damaged);
      assert.match(damaged.missing, /does not say where the network namespace is: not BTF/);
      fs.writeFileSync(path.join(dir, 'good'), kernelLike());
      assert.deepEqual(kernelNetnsOffsets(path.join(dir, 'good')), {
        taskNsproxy: 1840,
        nsproxyNetNs: 40,
        netInum: 176,
      });
      fs.rmSync(path.join(dir, 'good'));
      assert.ok(!('missing' in kernelNetnsOffsets(path.join(dir, 'good'))), 'the first answer is kept');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
