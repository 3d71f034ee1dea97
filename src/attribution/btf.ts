/**
 * The kernel's own type information (BTF, /sys/kernel/btf/vmlinux), read just far enough to find
 * where a task's network namespace inode lies: task_struct.nsproxy → nsproxy.net_ns → net.ns
 * (struct ns_common) → ns_common.inum. The hand-written programs (native/attribution.cc) follow
 * those offsets with bpf_probe_read_kernel, so each record carries the sender's namespace as the
 * kernel saw it at the request, and the daemon need not read /proc/PID/ns/net before the sender
 * exits. Pure: parses a buffer, so it is tested without the kernel (docs: the kernel's
 * Documentation/bpf/btf.rst, "Type encoding").
 */
import * as fs from 'node:fs';

export const KERNEL_BTF_FILE = '/sys/kernel/btf/vmlinux';

const BTF_MAGIC = 0xeb9f;
const HEADER_MIN_BYTES = 24;
const TYPE_HEADER_BYTES = 12;

/** BTF_KIND_* (include/uapi/linux/btf.h). */
const KIND = {
  int: 1,
  ptr: 2,
  array: 3,
  struct: 4,
  union: 5,
  enum: 6,
  fwd: 7,
  typedef: 8,
  volatile: 9,
  const: 10,
  restrict: 11,
  func: 12,
  funcProto: 13,
  var: 14,
  datasec: 15,
  float: 16,
  declTag: 17,
  typeTag: 18,
  enum64: 19,
} as const;

/** Kinds that only name or qualify another type. */
const QUALIFIERS: ReadonlySet<number> = new Set([KIND.typedef, KIND.volatile, KIND.const, KIND.restrict, KIND.typeTag]);

/**
 * Bytes that follow a type's 12-byte header, by kind: a fixed part plus a part per member or
 * parameter (vlen). -1: not a kind this reader knows.
 */
const FIXED_TRAILING_BYTES: readonly number[] = kindTable(-1, {
  [KIND.int]: 4,
  [KIND.var]: 4,
  [KIND.declTag]: 4,
  [KIND.array]: 12,
  ...Object.fromEntries(
    [
      ...[KIND.struct, KIND.union, KIND.datasec, KIND.enum64, KIND.enum, KIND.funcProto], // members only
      ...[
        KIND.ptr,
        KIND.fwd,
        KIND.typedef,
        KIND.volatile,
        KIND.const,
        KIND.restrict,
        KIND.func,
        KIND.float,
        KIND.typeTag,
      ],
    ].map((kind) => [kind, 0]),
  ),
});
const PER_MEMBER_BYTES: readonly number[] = kindTable(0, {
  [KIND.struct]: 12,
  [KIND.union]: 12,
  [KIND.datasec]: 12,
  [KIND.enum64]: 12,
  [KIND.enum]: 8,
  [KIND.funcProto]: 8,
});

/** A table indexed by the 5-bit kind. */
function kindTable(otherwise: number, values: Record<number, number>): number[] {
  return Array.from({ length: 32 }, (_, kind) => values[kind] ?? otherwise);
}

/**
 * The type section as 32-bit words in the host's order, which is the BTF's (its magic is checked
 * little-endian, as offloadd's hosts are); copied only when the blob is not 4-aligned.
 */
function alignedWords(blob: Buffer, start: number, bytes: number): Uint32Array {
  const count = Math.floor(bytes / 4);
  if ((blob.byteOffset + start) % 4 === 0) return new Uint32Array(blob.buffer, blob.byteOffset + start, count);
  return new Uint32Array(Uint8Array.prototype.slice.call(blob, start, start + count * 4).buffer, 0, count);
}

/** Why the BTF could not be used: a sentence for the attribution status. */
export class BtfError extends Error {}

interface Member {
  name: string;
  type: number;
  /** In bits from the start of the enclosing struct. */
  bitOffset: number;
  bitfieldSize: number;
}

/** The types of one BTF blob, by id (1-based; 0 is void). */
export class Btf {
  private readonly view: DataView;
  private readonly typesStart: number;
  private readonly stringsStart: number;
  private readonly stringsEnd: number;
  /** Byte offset of type id i (at index i - 1). */
  private readonly typeAt: Uint32Array;
  private readonly count: number = 0;
  /** Name offset → the lowest id of a struct with that name: one pass instead of one per look-up. */
  private readonly firstStructByName = new Map<number, number>();

  constructor(private readonly blob: Buffer) {
    if (blob.length < HEADER_MIN_BYTES) throw new BtfError('the BTF is shorter than its header');
    this.view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const magic = this.view.getUint16(0, true);
    if (magic !== BTF_MAGIC) throw new BtfError(`not BTF (magic 0x${magic.toString(16)}, or not little-endian)`);
    const headerBytes = this.view.getUint32(4, true);
    const [typeOff, typeLen, strOff, strLen] = [8, 12, 16, 20].map((at) => this.view.getUint32(at, true)) as [
      number,
      number,
      number,
      number,
    ];
    this.typesStart = headerBytes + typeOff;
    const typesEnd = this.typesStart + typeLen;
    this.stringsStart = headerBytes + strOff;
    this.stringsEnd = this.stringsStart + strLen;
    if (headerBytes < HEADER_MIN_BYTES || typesEnd > blob.length || this.stringsEnd > blob.length)
      throw new BtfError('the BTF header points past the end of the data');
    // Every type takes at least its 12-byte header: a bound on their number.
    this.typeAt = new Uint32Array(Math.floor(typeLen / TYPE_HEADER_BYTES));
    // The kernel's BTF has ~150,000 types, walked once before attribution starts: 32-bit words
    // and table look-ups instead of a DataView call and a switch per field (the daemon runs
    // --jitless, where each call is interpreted).
    const words = alignedWords(blob, this.typesStart, typeLen);
    for (let at = this.typesStart; at < typesEnd;) {
      if (at + TYPE_HEADER_BYTES > typesEnd) throw new BtfError(`a type at byte ${at} runs past the type section`);
      const word = (at - this.typesStart) >>> 2;
      const info = words[word + 1] as number;
      const kind = (info >>> 24) & 0x1f;
      const fixed = FIXED_TRAILING_BYTES[kind] ?? -1;
      if (fixed < 0) throw new BtfError(`unknown BTF kind ${kind} at byte ${at}`);
      this.typeAt[this.count++] = at;
      if (kind === KIND.struct) {
        const nameOffset = words[word] as number;
        if (!this.firstStructByName.has(nameOffset)) this.firstStructByName.set(nameOffset, this.count);
      }
      at += TYPE_HEADER_BYTES + fixed + (PER_MEMBER_BYTES[kind] as number) * (info & 0xffff);
    }
  }

  private name(offset: number): string {
    const start = this.stringsStart + offset;
    if (start >= this.stringsEnd) return '';
    const end = this.blob.indexOf(0, start);
    return this.blob.toString('latin1', start, end < 0 || end > this.stringsEnd ? this.stringsEnd : end);
  }

  private kindOf(id: number): number {
    if (id < 1 || id > this.count) return 0;
    return (this.view.getUint32((this.typeAt[id - 1] as number) + 4, true) >>> 24) & 0x1f;
  }

  /** Follows typedefs and qualifiers (const, volatile, restrict, type tags) to the type itself. */
  private resolve(id: number): number {
    for (let hops = 0; hops < 32; hops++) {
      if (!QUALIFIERS.has(this.kindOf(id))) return id;
      id = this.view.getUint32((this.typeAt[id - 1] as number) + 8, true);
    }
    return 0;
  }

  /** The id of the struct named `name` (the first with members, not a forward declaration), or null. */
  structId(name: string): number | null {
    // Every place the name is written whole in the string section (a NUL before it, or the
    // section's start, and one after it); the strings are usually deduplicated, so one.
    const wanted = Buffer.from(`\0${name}\0`, 'latin1');
    let found: number | null = null;
    const consider = (nameOffset: number): void => {
      const id = this.firstStructByName.get(nameOffset);
      if (id !== undefined && (found === null || id < found)) found = id;
    };
    const first = this.stringsStart + wanted.length - 1;
    if (first <= this.stringsEnd && this.blob.compare(wanted, 1, wanted.length, this.stringsStart, first) === 0)
      consider(0);
    for (let at = this.blob.indexOf(wanted, this.stringsStart); at >= 0 && at + wanted.length <= this.stringsEnd;) {
      consider(at + 1 - this.stringsStart);
      at = this.blob.indexOf(wanted, at + 1);
    }
    return found;
  }

  private members(id: number): Member[] {
    const at = this.typeAt[id - 1] as number;
    const info = this.view.getUint32(at + 4, true);
    const bitfieldsInOffset = info >>> 31 === 1;
    const list: Member[] = [];
    for (let i = 0; i < (info & 0xffff); i++) {
      const member = at + TYPE_HEADER_BYTES + 12 * i;
      const offset = this.view.getUint32(member + 8, true);
      list.push({
        name: this.name(this.view.getUint32(member, true)),
        type: this.view.getUint32(member + 4, true),
        bitOffset: bitfieldsInOffset ? offset & 0xffffff : offset,
        bitfieldSize: bitfieldsInOffset ? offset >>> 24 : 0,
      });
    }
    return list;
  }

  /**
   * The member `name` of struct or union `id`, looked for also inside anonymous structs and unions
   * (as C lets one name it), with its byte offset from the start of `id`; or null.
   */
  member(id: number, name: string): { byteOffset: number; type: number; kind: number; size: number } | null {
    for (const member of this.members(id)) {
      if (member.name === name) {
        if (member.bitfieldSize !== 0 || member.bitOffset % 8 !== 0) return null;
        const type = this.resolve(member.type);
        return { byteOffset: member.bitOffset / 8, type, kind: this.kindOf(type), size: this.sizeOf(type) };
      }
      const inner = this.resolve(member.type);
      const kind = this.kindOf(inner);
      if (member.name === '' && (kind === KIND.struct || kind === KIND.union)) {
        const found = this.member(inner, name);
        if (found) return { ...found, byteOffset: found.byteOffset + member.bitOffset / 8 };
      }
    }
    return null;
  }

  /** The pointed-to type of a pointer, resolved; or 0. */
  pointee(id: number): number {
    if (this.kindOf(id) !== KIND.ptr) return 0;
    return this.resolve(this.view.getUint32((this.typeAt[id - 1] as number) + 8, true));
  }

  sizeOf(id: number): number {
    const kind = this.kindOf(id);
    if (kind === KIND.ptr) return 8;
    if (kind === KIND.int || kind === KIND.struct || kind === KIND.union || kind === KIND.enum || kind === KIND.float)
      return this.view.getUint32((this.typeAt[id - 1] as number) + 8, true);
    return 0;
  }

  isStruct(id: number, name: string): boolean {
    return this.kindOf(id) === KIND.struct && this.structId(name) === id;
  }
}

/**
 * Byte offsets the programs follow from bpf_get_current_task() to the network namespace inode:
 * *(task + taskNsproxy) → nsproxy, *(nsproxy + nsproxyNetNs) → net, *(u32 *)(net + netInum).
 */
export interface NetnsOffsets {
  taskNsproxy: number;
  nsproxyNetNs: number;
  /** net.ns + ns_common.inum. */
  netInum: number;
}

/** The offsets from a parsed BTF, or a BtfError saying which member is missing or not as expected. */
export function netnsOffsets(btf: Btf): NetnsOffsets {
  const pointerTo = (structName: string, memberName: string, target: string): number => {
    const id = btf.structId(structName);
    if (id === null) throw new BtfError(`no struct ${structName} in the kernel's BTF`);
    const found = btf.member(id, memberName);
    if (!found) throw new BtfError(`no member ${structName}.${memberName} in the kernel's BTF`);
    const pointee = btf.pointee(found.type);
    if (pointee === 0 || !btf.isStruct(pointee, target))
      throw new BtfError(`${structName}.${memberName} is not a pointer to struct ${target}`);
    return found.byteOffset;
  };
  const taskNsproxy = pointerTo('task_struct', 'nsproxy', 'nsproxy');
  const nsproxyNetNs = pointerTo('nsproxy', 'net_ns', 'net');
  const net = btf.structId('net') as number;
  const ns = btf.member(net, 'ns');
  if (!ns || !btf.isStruct(ns.type, 'ns_common')) throw new BtfError('no member net.ns of type struct ns_common');
  const inum = btf.member(ns.type, 'inum');
  if (!inum || inum.size !== 4) throw new BtfError('no 32-bit member ns_common.inum in the kernel BTF');
  return { taskNsproxy, nsproxyNetNs, netInum: ns.byteOffset + inum.byteOffset };
}

const known = new Map<string, NetnsOffsets | { missing: string }>();

/**
 * The offsets of the running kernel, or why they cannot be known (a sentence). Read once per file
 * (attribution may be turned off and on again by a policy): the kernel's BTF is megabytes.
 */
export function kernelNetnsOffsets(file = KERNEL_BTF_FILE): NetnsOffsets | { missing: string } {
  let offsets = known.get(file);
  if (offsets === undefined) {
    offsets = readNetnsOffsets(file);
    known.set(file, offsets);
  }
  return offsets;
}

function readNetnsOffsets(file: string): NetnsOffsets | { missing: string } {
  let blob: Buffer;
  try {
    blob = fs.readFileSync(file);
  } catch (error) {
    return {
      missing: `the kernel has no BTF to find the sender's network namespace (${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)})`,
    };
  }
  try {
    return netnsOffsets(new Btf(blob));
  } catch (error) {
    // RangeError: a member or name that points outside the blob (a damaged file).
    if (error instanceof BtfError || error instanceof RangeError)
      return { missing: `the kernel's BTF does not say where the network namespace is: ${error.message}` };
    throw error;
  }
}
