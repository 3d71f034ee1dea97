/**
 * The API socket file: checked before the daemon changes anything, created in its directory,
 * and told apart (by device and inode) from a socket bound later at the same path.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { OffloaddError } from '../errors';

/** Device and inode of a socket file: what tells our socket from one bound later at the same path. */
export interface SocketIdentity {
  dev: number;
  ino: number;
}

const SOCKET_PATH_HINT =
  'give --socket a path where nothing but an old offloadd socket is (default /run/offloadd/offloadd.sock)';

/** Whether something accepts connections on the socket at `socketPath`. */
function socketAnswers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    // Only "refused" proves nobody listens; EAGAIN (a full backlog) or EACCES mean someone may.
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code !== 'ECONNREFUSED'));
  });
}

function describeFileType(stats: fs.Stats): string {
  if (stats.isFile()) return 'a regular file';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isSymbolicLink()) return 'a symbolic link';
  if (stats.isFIFO()) return 'a FIFO';
  return 'a device';
}

/**
 * Pre-flight for --socket, run before the daemon changes anything: the path must be free or
 * hold a stale socket (a socket nobody answers on, left by a crash). Anything else — a regular
 * file (even the policy), a directory, a symbolic link (dangling or not), a socket another
 * process answers on — is an OffloaddError that names it. Returns the stale socket's stats (to
 * be replaced by listen()), or null when the path is free.
 */
export async function checkSocketPath(socketPath: string): Promise<fs.Stats | null> {
  const parent = path.dirname(socketPath);
  if (!isDirectoryOrAbsent(parent)) {
    throw new OffloaddError(
      'ERR_SOCKET_PATH',
      `cannot create the API socket ${socketPath}: ${parent} is not a directory`,
      { hint: SOCKET_PATH_HINT },
    );
  }
  const stats = lstatOrNull(socketPath);
  if (stats === null) return null;
  if (!stats.isSocket()) {
    throw new OffloaddError(
      'ERR_SOCKET_PATH',
      `refusing to replace ${socketPath} with the API socket: it is ${describeFileType(stats)}`,
      { hint: SOCKET_PATH_HINT },
    );
  }
  if (await socketAnswers(socketPath)) {
    throw new OffloaddError('ERR_SOCKET_IN_USE', `another process (offloadd?) is already listening on ${socketPath}`, {
      hint: 'stop it first (systemctl stop offloadd), or give this one another --socket',
    });
  }
  return stats;
}

/** False when `dir` exists (after links) and is not a directory; an absent one is created later. */
function isDirectoryOrAbsent(dir: string): boolean {
  try {
    return fs.statSync(dir).isDirectory();
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

export function lstatOrNull(file: string): fs.Stats | null {
  try {
    return fs.lstatSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new OffloaddError(
      'ERR_SOCKET_PATH',
      `cannot check ${file} for the API socket: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      { hint: SOCKET_PATH_HINT, cause: error },
    );
  }
}

export function makeSocketDirectory(socketPath: string): void {
  try {
    fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o755 });
  } catch (error) {
    throw new OffloaddError(
      'ERR_SOCKET_PATH',
      `cannot create the directory of ${socketPath}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      { hint: SOCKET_PATH_HINT, cause: error },
    );
  }
}

/** Unlinks the stale socket found by checkSocketPath, unless something else took its place since. */
export function removeIfSame(socketPath: string, stale: fs.Stats): void {
  const now = lstatOrNull(socketPath);
  if (now === null) return;
  if (!now.isSocket() || now.dev !== stale.dev || now.ino !== stale.ino) {
    throw new OffloaddError('ERR_SOCKET_PATH', `${socketPath} changed while offloadd was starting`, {
      hint: SOCKET_PATH_HINT,
    });
  }
  fs.unlinkSync(socketPath);
}
