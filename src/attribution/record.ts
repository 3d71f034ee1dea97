/**
 * The kernel side's records (native/attribution.cc, one fixed-size record per traced request),
 * read into plain objects. The layout is the addon's; `recordBytes` comes from the addon so the two
 * cannot drift apart silently.
 */

/** The system call a request came through. */
export type RequestSyscall = 'ioctl' | 'sendto' | 'sendmsg' | 'write';

const SYSCALLS: Readonly<Record<number, RequestSyscall>> = { 1: 'ioctl', 2: 'sendto', 3: 'sendmsg', 4: 'write' };

/** One feature-changing request as the kernel saw it, before any look-up in user space. */
export interface KernelRequest {
  /** bpf_ktime_get_ns() at the system call: CLOCK_MONOTONIC, the clock of process.hrtime.bigint(). */
  ktimeNs: bigint;
  /** bpf_get_current_cgroup_id(): the inode of the sender's cgroup2 directory. */
  cgroupId: bigint;
  /**
   * Thread group id (what ps calls the pid), in the daemon's PID namespace; 0 when the sender was
   * outside it (`outsidePidNamespace`).
   */
  pid: number;
  tid: number;
  uid: number;
  gid: number;
  syscall: RequestSyscall;
  /** ioctl: the ethtool command (ETHTOOL_SGRO, ...); netlink: the generic-netlink command. */
  command: number;
  /** ioctl: the u32 after the command (a legacy set's value); netlink: nlmsg_type (the family id). */
  argument: number;
  /** The sending thread's name (a thread may rename itself; the process's is in the Actor). */
  comm: string;
  /**
   * The sender's network namespace inode as the kernel saw it at the request, or null when the
   * programs were not given the BTF offsets to read it (or the task had none left).
   */
  netns: number | null;
  /** ioctl: ifr_name; netlink: the message's first bytes. Empty when the copy failed. */
  payload: Buffer;
  /**
   * The daemon runs in a PID namespace of its own (a container) and the sender was not in it (the
   * host's, or another container's): the kernel could not give its pid as the daemon sees pids.
   */
  outsidePidNamespace: boolean;
}

const OFFSET = {
  ktime: 0,
  cgroup: 8,
  tgid: 16,
  tid: 20,
  uid: 24,
  gid: 28,
  syscall: 32,
  command: 36,
  argument: 40,
  payloadLength: 44,
  comm: 48,
  netns: 64,
  flags: 68,
  payload: 72,
} as const;
const COMM_BYTES = 16;
/** native/attribution.cc's kRecordHasNetns: the program read the namespace. */
const FLAG_HAS_NETNS = 1;
/** kRecordOutsidePidNamespace: pid and tid are 0, the sender was not in the daemon's PID namespace. */
const FLAG_OUTSIDE_PID_NAMESPACE = 2;

/** NUL-terminated bytes as text (comm, ifr_name). */
export function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString('latin1');
}

/** Splits a batch of `count` records of `recordBytes` each; a record of an unknown kind is skipped. */
export function parseRecords(batch: Buffer, count: number, recordBytes: number): KernelRequest[] {
  const requests: KernelRequest[] = [];
  for (let i = 0; i < count && (i + 1) * recordBytes <= batch.length; i++) {
    const record = batch.subarray(i * recordBytes, (i + 1) * recordBytes);
    const syscall = SYSCALLS[record.readUInt32LE(OFFSET.syscall)];
    if (!syscall) continue;
    const payloadLength = Math.min(record.readUInt32LE(OFFSET.payloadLength), recordBytes - OFFSET.payload);
    requests.push({
      ktimeNs: record.readBigUInt64LE(OFFSET.ktime),
      cgroupId: record.readBigUInt64LE(OFFSET.cgroup),
      pid: record.readUInt32LE(OFFSET.tgid),
      tid: record.readUInt32LE(OFFSET.tid),
      uid: record.readUInt32LE(OFFSET.uid),
      gid: record.readUInt32LE(OFFSET.gid),
      syscall,
      command: record.readUInt32LE(OFFSET.command),
      argument: record.readUInt32LE(OFFSET.argument),
      comm: cString(record.subarray(OFFSET.comm, OFFSET.comm + COMM_BYTES)),
      netns:
        (record.readUInt32LE(OFFSET.flags) & FLAG_HAS_NETNS) !== 0 && record.readUInt32LE(OFFSET.netns) !== 0
          ? record.readUInt32LE(OFFSET.netns)
          : null,
      payload: Buffer.from(record.subarray(OFFSET.payload, OFFSET.payload + payloadLength)),
      outsidePidNamespace: (record.readUInt32LE(OFFSET.flags) & FLAG_OUTSIDE_PID_NAMESPACE) !== 0,
    });
  }
  return requests;
}
