/**
 * Which PID namespace the kernel side gives pids in. The BPF programs run in the sender's context,
 * and bpf_get_current_pid_tgid() answers with the initial namespace's pids (the host's). A daemon
 * in a PID namespace of its own (a container without the host's PIDs) sees other pids in its
 * /proc and in process.pid: there the programs ask bpf_get_ns_current_pid_tgid() for the pid in
 * the daemon's namespace instead, identified by the device and inode of /proc/self/ns/pid.
 */
import * as fs from 'node:fs';

/** PROC_PID_INIT_INO (include/linux/proc_ns.h): the initial PID namespace's inode, fixed. */
export const INITIAL_PID_NAMESPACE_INODE = 0xeffffffc;

/** A namespace file's identity as stat() gives it (st_dev in user space's encoding). */
export interface PidNamespaceIdentity {
  dev: number;
  ino: number;
}

/**
 * The daemon's PID namespace when it is not the initial one (then pids must be translated into
 * it), else null: the programs keep bpf_get_current_pid_tgid(), at no extra cost. Null too when
 * the file cannot be read (no /proc): nothing better is known.
 */
export function pidNamespaceToTranslate(file = '/proc/self/ns/pid'): PidNamespaceIdentity | null {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    return null;
  }
  return stat.ino === INITIAL_PID_NAMESPACE_INODE ? null : { dev: stat.dev, ino: stat.ino };
}
