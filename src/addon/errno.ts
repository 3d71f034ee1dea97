/**
 * Errno names and descriptions for messages, records and API answers: libuv's, os.constants',
 * and the kernel's own (ENOTSUPP and the rest from 512 up), never an empty or "Unknown error"
 * text. Pure: no addon needed.
 */
import * as os from 'node:os';
import { getSystemErrorMap } from 'node:util';

/** os.constants' names for the errnos libuv does not name (EBADMSG). */
const ERRNO_NAMES = new Map(Object.entries(os.constants.errno).map(([name, errno]) => [errno, name]));

/**
 * The kernel's own errnos (include/linux/errno.h), which some drivers and BPF hand to user space
 * anyway (ENOTSUPP above all). No C library or libuv names them: strerror() says "Unknown error
 * 524" and libuv "Unknown system error -524", which named nothing in a log line or an API answer.
 */
const FIRST_KERNEL_INTERNAL_ERRNO = 512;
const KERNEL_ERRNOS = new Map<number, [name: string, description: string]>([
  [512, ['ERESTARTSYS', 'interrupted, to be restarted']],
  [513, ['ERESTARTNOINTR', 'interrupted, to be restarted']],
  [514, ['ERESTARTNOHAND', 'interrupted, to be restarted if no handler']],
  [515, ['ENOIOCTLCMD', 'no such ioctl for this device']],
  [516, ['ERESTART_RESTARTBLOCK', 'interrupted, to be restarted by sys_restart_syscall']],
  [517, ['EPROBE_DEFER', 'driver requests probe retry']],
  [518, ['EOPENSTALE', 'open found a stale dentry']],
  [519, ['ENOPARAM', 'parameter not supported']],
  [521, ['EBADHANDLE', 'illegal NFS file handle']],
  [522, ['ENOTSYNC', 'update synchronization mismatch']],
  [523, ['EBADCOOKIE', 'cookie is stale']],
  [524, ['ENOTSUPP', 'operation is not supported (by the driver)']],
  [525, ['ETOOSMALL', 'buffer or request is too small']],
  [526, ['ESERVERFAULT', 'an untranslatable error occurred']],
  [527, ['EBADTYPE', 'type not supported by server']],
  [528, ['EJUKEBOX', 'request initiated, but will not complete before timeout']],
  [529, ['EIOCBQUEUED', 'iocb queued, will get completion event']],
  [530, ['ERECALLCONFLICT', 'conflict with recalled state']],
  [531, ['ENOGRACE', 'NFS file lock reclaim refused']],
]);

/** ENOTSUPP: the kernel's own "not supported", which some drivers return for a feature they cannot change. */
export const ENOTSUPP = 524;

/**
 * An errno's name and a description: libuv's, os.constants' name, the kernel's own, and never an
 * empty or "Unknown ..." text: at worst `errno N`.
 */
export function describeErrno(errno: number): { name: string; description: string } {
  // From 512 up libuv's map holds its own codes (EAI_*, EOF), not the kernel's.
  const known = errno < FIRST_KERNEL_INTERNAL_ERRNO ? getSystemErrorMap().get(-errno) : undefined;
  if (known) return { name: known[0], description: known[1] || known[0] };
  const kernel = KERNEL_ERRNOS.get(errno);
  if (kernel) return { name: kernel[0], description: `${kernel[1]} (${kernel[0]}, errno ${errno})` };
  const name = ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
  return { name, description: name === `errno ${errno}` ? name : `${name} (errno ${errno})` };
}

/** errno name for an errno number delivered as data (e.g. the link monitor's ENOBUFS). */
export function errnoName(errno: number): string {
  return describeErrno(errno).name;
}
