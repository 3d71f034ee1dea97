/**
 * Reading a policy file's bytes safely: only a regular file, bounded in size, never blocking.
 * Parsing them is load.ts's job.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { PolicyError } from '../errors';
import { SHIPPED_POLICY_PATH } from '../generated/build-info';
import { MAX_POLICY_BYTES } from './limits';
import { sha256 } from './sha256';

/** Where the shipped default lives: policy/default.yaml in a checkout, its installed copy in a package. */
export function defaultPolicyPath(): string {
  return SHIPPED_POLICY_PATH;
}

/** A policy over MAX_POLICY_BYTES, whether read from a file or given as text. */
export function policyTooLarge(path: string, hint: string): PolicyError {
  return new PolicyError(path, `the policy is larger than the ${MAX_POLICY_BYTES} bytes allowed`, { hint });
}

function readHint(code: string | undefined, path: string): string {
  switch (code) {
    case 'ENOENT':
      return `create it, e.g. by copying the shipped default: cp ${defaultPolicyPath()} ${path}`;
    case 'EACCES':
    case 'EPERM':
      return 'make it readable by the daemon (e.g. chmod 0644) or run as root';
    case 'ENXIO':
      return 'give the path of a YAML file, not a socket';
    default:
      return 'check that the path names a readable YAML file';
  }
}

function unreadable(path: string, error: unknown): PolicyError {
  const code = (error as NodeJS.ErrnoException).code;
  return new PolicyError(path, `cannot read the policy: ${code ?? (error as Error).message}`, {
    hint: readHint(code, path),
    cause: error,
  });
}

/**
 * Opening never blocks (O_NONBLOCK: a FIFO without a writer opens at once) and never claims a
 * terminal; symbolic links are followed, since configuration tools manage policies through them.
 */
const OPEN_FLAGS = fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY;

function fileType(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * The bytes of a policy file: only a regular file (checked on the opened descriptor, so a swap
 * after the check cannot matter), and never more than MAX_POLICY_BYTES + 1 bytes read, so a
 * path naming /dev/zero, a FIFO or a huge file costs nothing and blocks nothing.
 */
export function readPolicyBytes(path: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (error) {
    throw unreadable(path, error);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) {
      throw new PolicyError(path, `the policy is ${fileType(stats)}, not a regular file`, {
        hint: 'give the path of a YAML file (a symbolic link to one is fine)',
      });
    }
    const buffer = Buffer.alloc(MAX_POLICY_BYTES + 1);
    let length = 0;
    for (;;) {
      const count = readSync(fd, buffer, length, buffer.length - length, null);
      if (count === 0) break;
      length += count;
      if (length > MAX_POLICY_BYTES) throw policyTooLarge(path, 'check that the path names the policy file');
    }
    return buffer.subarray(0, length);
  } catch (error) {
    throw error instanceof PolicyError ? error : unreadable(path, error);
  } finally {
    closeSync(fd);
  }
}

/**
 * The sha256 of a policy file's bytes, as a loaded Policy's `checksum` has it (for telling a real
 * change from a touch). Throws PolicyError as loadPolicyFile does.
 */
export function policyFileChecksum(path: string): string {
  return sha256(readPolicyBytes(path));
}
