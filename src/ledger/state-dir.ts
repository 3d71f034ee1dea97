/**
 * The state directory: checked (owned by the daemon's user, writable by nobody else) and locked
 * (flock on the directory itself, so the lock works on a read-only file system too) before the
 * daemon changes anything, so two daemons never share one ledger. The holder's pid is kept in
 * STATE_DIR/offloadd.pid for the refusal message; the lock itself dies with the process.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { addon } from '../addon/binding';
import { OffloaddError } from '../errors';
import { openRegular } from './files';

export const STATE_DIR_MODE = 0o750;
const PID_FILE = 'offloadd.pid';
/** Group- or world-writable: anyone with that access could replace the ledger. */
const UNSAFE_MODE_BITS = 0o022;
/** S_ISVTX: in a sticky directory only an entry's owner may rename or remove it. */
const STICKY_BIT = 0o1000;

/** The directory is unsafe or another daemon holds it: the daemon must not run on it. */
export class StateDirRefused extends OffloaddError {}

export class StateDirLock {
  private constructor(
    readonly dir: string,
    private fd: number | null,
  ) {}

  /**
   * Creates the directory if missing, checks it and takes the lock. Throws StateDirRefused when
   * it is unsafe or held; OffloaddError ERR_STATE_DIR when it cannot be used at all.
   */
  static acquire(given: string): StateDirLock {
    const dir = followTrustedLink(given);
    let fd: number;
    try {
      fs.mkdirSync(dir, { recursive: true, mode: STATE_DIR_MODE });
      // Never through a link at the last component: whoever can write the parent could point it
      // anywhere. Owner and mode are then checked on this descriptor, not on the path.
      fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
    } catch (error) {
      throw unusable(dir, error);
    }
    try {
      checkOwnership(dir, fs.fstatSync(fd));
      checkAncestors(dir);
      if (!addon.tryLockExclusive(fd)) {
        const holder = readHolder(dir);
        throw new StateDirRefused(
          'ERR_STATE_DIR_LOCKED',
          `another offloadd (${holder === null ? 'pid unknown' : `pid ${holder}`}) holds ${dir}`,
          {
            hint: 'stop the other daemon first, or give this one its own --state-dir (and --socket)',
          },
        );
      }
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
    const lock = new StateDirLock(dir, fd);
    lock.writePid();
    return lock;
  }

  get held(): boolean {
    return this.fd !== null;
  }

  release(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  /** Best effort: on a read-only or full file system the lock still holds; the message then says "pid unknown". */
  private writePid(): void {
    const file = path.join(this.dir, PID_FILE);
    try {
      fs.rmSync(file, { force: true });
      const { fd } = openRegular(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC);
      try {
        fs.writeSync(fd, `${process.pid}\n`);
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      // the pid is only for the message another daemon prints
    }
  }
}

/**
 * A link at the state directory is followed only when nobody but root or the daemon's user can
 * have made it or can replace it: the link is theirs and its directory passes checkAncestors.
 * That is systemd's own layout for DynamicUser= (/var/lib/NAME -> private/NAME, made by PID 1).
 * Any other link is left for acquire() to refuse. Returns the directory to open.
 */
function followTrustedLink(dir: string): string {
  let link: fs.Stats | undefined;
  try {
    link = fs.lstatSync(dir, { throwIfNoEntry: false });
  } catch {
    return dir; // acquire() reports why it cannot be used
  }
  if (link === undefined || !link.isSymbolicLink()) return dir;
  const euid = process.geteuid?.() ?? 0;
  if (link.uid !== 0 && link.uid !== euid) return dir;
  try {
    checkAncestors(dir);
    return fs.realpathSync(dir);
  } catch {
    return dir; // an untrusted parent or a dangling link: refused as a link, with the hint
  }
}

/** Why the directory cannot be opened; an untrusted link or a non-directory is refused, not worked around. */
function unusable(dir: string, error: unknown): OffloaddError {
  const code = (error as NodeJS.ErrnoException).code;
  // O_NOFOLLOW|O_DIRECTORY on a link fails with ENOTDIR (or ELOOP): look at what is there.
  let isLink = code === 'ELOOP';
  try {
    isLink ||= code === 'ENOTDIR' && fs.lstatSync(dir).isSymbolicLink();
  } catch {
    // gone meanwhile: reported as it failed
  }
  if (isLink) {
    let target = '?';
    try {
      target = fs.readlinkSync(dir);
    } catch {
      // gone meanwhile: the message still says what was found
    }
    return new StateDirRefused('ERR_STATE_DIR_UNSAFE', `state directory ${dir} is a symbolic link (to ${target})`, {
      hint:
        `the daemon follows a link at its state directory only when root or its own user made it, in a directory only they can write: give the real directory as --state-dir ` +
        `(e.g. --state-dir "$(readlink -f ${dir})"), or replace the link with a directory (rm ${dir}; mkdir -m 750 ${dir})`,
      cause: error,
    });
  }
  if (code === 'ENOTDIR' || code === 'EEXIST') {
    return new StateDirRefused('ERR_STATE_DIR_UNSAFE', `state directory ${dir} exists and is not a directory`, {
      hint: `move it away, or choose another --state-dir`,
      cause: error,
    });
  }
  return new OffloaddError('ERR_STATE_DIR', `cannot use the state directory ${dir}: ${(error as Error).message}`, {
    hint: 'check --state-dir (default /var/lib/offloadd): it must be a directory the daemon can create or open',
    cause: error,
  });
}

/**
 * Each directory above the state directory (links there resolved: /var/lib may be one) must be
 * writable only by root or the daemon's user, unless it is sticky (/tmp): otherwise its group
 * could rename the state directory away and put a link in its place after this check.
 */
function checkAncestors(dir: string): void {
  const euid = process.geteuid?.() ?? 0;
  let ancestor: string;
  try {
    ancestor = fs.realpathSync(path.dirname(path.resolve(dir)));
  } catch {
    return; // the directory was just opened, so its parent exists; a race is refused at the next start
  }
  for (;;) {
    const stat = fs.statSync(ancestor);
    const trustedOwner = stat.uid === 0 || stat.uid === euid;
    const othersMayRename = (stat.mode & UNSAFE_MODE_BITS) !== 0 && (stat.mode & STICKY_BIT) === 0;
    if (!trustedOwner || othersMayRename) {
      const why = trustedOwner
        ? `is writable by its group or by everyone without the sticky bit (mode ${(stat.mode & 0o7777).toString(8)})`
        : `is owned by uid ${stat.uid}`;
      throw new StateDirRefused(
        'ERR_STATE_DIR_UNSAFE',
        `${ancestor}, above state directory ${dir}, ${why}: another user could replace the state directory with a link`,
        {
          hint: trustedOwner
            ? `chmod go-w ${ancestor} (or chmod +t ${ancestor}), or choose a --state-dir under a directory only root can write`
            : `choose a --state-dir under directories owned by root`,
        },
      );
    }
    const parent = path.dirname(ancestor);
    if (parent === ancestor) return;
    ancestor = parent;
  }
}

function checkOwnership(dir: string, stat: fs.Stats): void {
  const euid = process.geteuid?.() ?? 0;
  if (stat.uid !== euid) {
    throw new StateDirRefused(
      'ERR_STATE_DIR_UNSAFE',
      `state directory ${dir} is owned by uid ${stat.uid}, not by the daemon's user (uid ${euid})`,
      {
        hint: `another user could rewrite the ledger: chown ${euid} ${dir} (or choose another --state-dir)`,
      },
    );
  }
  if ((stat.mode & UNSAFE_MODE_BITS) !== 0) {
    throw new StateDirRefused(
      'ERR_STATE_DIR_UNSAFE',
      `state directory ${dir} is writable by its group or by everyone (mode ${(stat.mode & 0o7777).toString(8)})`,
      {
        hint: `others could replace the ledger: chmod go-w ${dir} (e.g. chmod ${STATE_DIR_MODE.toString(8)} ${dir})`,
      },
    );
  }
}

function readHolder(dir: string): number | null {
  try {
    const { fd } = openRegular(path.join(dir, PID_FILE), fs.constants.O_RDONLY);
    try {
      const buffer = Buffer.alloc(32);
      const pid = Number(
        buffer
          .subarray(0, fs.readSync(fd, buffer, 0, buffer.length, 0))
          .toString('utf8')
          .trim(),
      );
      return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return null;
  }
}
