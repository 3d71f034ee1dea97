/**
 * `--metrics-textfile PATH`: node-exporter's textfile collector convention. The exposition is
 * written to a new temporary file next to PATH (the collector reads only `*.prom`), then renamed
 * over PATH, so a reader sees the old file or the new one, never half of one. Written when
 * something changed, at most once a second (on the monotonic clock: a step of the wall clock
 * neither stops nor hastens it), and every minute regardless, so the file's mtime
 * (node_textfile_mtime_seconds) tells a running daemon from a dead one. Written asynchronously:
 * enforcement never waits for the disk.
 *
 * The directory may be writable by others (the metrics drop-in makes it group-writable for
 * node-exporter): the temporary file has a random name and is created with O_CREAT|O_EXCL|
 * O_NOFOLLOW, so nothing planted there (a symbolic link, a file) is ever followed, truncated or
 * chmod-ed; the mode is set on our own descriptor. The file renamed into place is remembered
 * (device and inode): if another process replaces PATH (a second daemon given the same file),
 * that is logged, and on stop PATH is removed only if it is still the file this process wrote.
 *
 * With fs's callback API, not `fs.promises`: the first use of `fs.promises` loads seven more
 * internal modules (FileHandle's readLines and watch bring readline, the REPL history and the
 * file watchers), which a daemon that never otherwise touches them pays for in resident memory
 * (docs/METRICS.md, the metrics budget).
 *
 * On a clean stop the file is removed: left behind, it would go on telling Prometheus that every
 * interface is compliant long after nothing enforces that; absent, `absent(offloadd_build_info)`
 * alerts. After a crash it stays, and its mtime stops moving.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError } from '../errors';
import type { Log } from '../observe/log';
import type { Exposition } from '../observe/metrics';
import { MIN_TEXTFILE_INTERVAL_MS, TEXTFILE_HEARTBEAT_MS } from './limits';
import { monotonicMs } from '../clock';

export { MIN_TEXTFILE_INTERVAL_MS, TEXTFILE_HEARTBEAT_MS } from './limits';

/** The collector's rule: it reads `*.prom` only. */
export const TEXTFILE_SUFFIX = '.prom';
/** node-exporter usually runs as its own user: the file must be readable by others (the unit's UMask is 0077). */
const TEXTFILE_MODE = 0o644;
/** A new file only: never one that is there, never through a symbolic link. */
const CREATE_NEW_FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
/** Names tried before giving up when each is taken (by chance, or planted). */
const TEMPORARY_NAME_ATTEMPTS = 4;

/** The kernel's randomness, read as a file: node:crypto would keep ~3.5 MiB resident (OpenSSL) for this. */
const RANDOM_DEVICE = '/dev/urandom';
const TEMPORARY_NAME_RANDOM_BYTES = 8;

/** A fresh, unpredictable name next to `file`, which the collector does not read (no .prom suffix). */
export function temporaryPath(file: string): string {
  return `${file}.tmp.${process.pid}.${randomHex(TEMPORARY_NAME_RANDOM_BYTES)}`;
}

function randomHex(count: number): string {
  const bytes = Buffer.alloc(count);
  try {
    const fd = fs.openSync(RANDOM_DEVICE, fs.constants.O_RDONLY);
    try {
      fs.readSync(fd, bytes);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // No /dev/urandom (a bare chroot): V8's generator, seeded from the kernel. The name is then
    // less unpredictable, but O_EXCL|O_NOFOLLOW still never let anything planted be used.
    for (let i = 0; i < count; i++) bytes[i] = Math.floor(Math.random() * 256);
  }
  return bytes.toString('hex');
}

/** Device and inode: which file a path names. */
interface FileIdentity {
  dev: number;
  ino: number;
}

/**
 * Creates a new temporary file next to `file` for writing, mode `mode` whatever the umask:
 * O_EXCL|O_NOFOLLOW, so a name that is taken (a planted symbolic link or file) fails with EEXIST
 * and another random name is tried. Returns the descriptor and the name.
 */
export function createTemporarySync(file: string, mode: number): { fd: number; name: string } {
  for (let attempt = 1; ; attempt++) {
    const name = temporaryPath(file);
    try {
      const fd = fs.openSync(name, CREATE_NEW_FLAGS, mode);
      fs.fchmodSync(fd, mode); // the mode above is filtered by the umask; this is our own descriptor
      return { fd, name };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= TEMPORARY_NAME_ATTEMPTS) throw error;
    }
  }
}

async function createTemporary(file: string, mode: number): Promise<{ fd: number; name: string }> {
  for (let attempt = 1; ; attempt++) {
    const name = temporaryPath(file);
    try {
      const fd = await call<number>((done) => fs.open(name, CREATE_NEW_FLAGS, mode, done));
      return { fd, name };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= TEMPORARY_NAME_ATTEMPTS) throw error;
    }
  }
}

function identityOf(file: string): FileIdentity | null {
  try {
    const stats = fs.lstatSync(file);
    return { dev: stats.dev, ino: stats.ino };
  } catch {
    return null;
  }
}

function sameFile(a: FileIdentity | null, b: FileIdentity | null): boolean {
  return a !== null && b !== null && a.dev === b.dev && a.ino === b.ino;
}

function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
}

/**
 * Everything writing PATH needs, checked before the daemon changes anything (throws
 * UsageError): the name ends in .prom, its directory exists, and a file can be created there
 * (tried for real: as root, permission bits say nothing, a read-only mount does).
 */
export function checkTextfilePath(file: string): void {
  const hint = `node-exporter's textfile collector reads *${TEXTFILE_SUFFIX} in its --collector.textfile.directory, e.g. /var/lib/prometheus/node-exporter/offloadd.prom`;
  if (!file.endsWith(TEXTFILE_SUFFIX) || path.basename(file) === TEXTFILE_SUFFIX)
    throw new UsageError(`--metrics-textfile: ${JSON.stringify(file)} does not end in ${TEXTFILE_SUFFIX}`, { hint });
  const directory = path.dirname(path.resolve(file));
  let stats: fs.Stats;
  try {
    stats = fs.statSync(directory);
  } catch (error) {
    throw new UsageError(`--metrics-textfile: directory ${directory} is not there (${codeOf(error)})`, { hint });
  }
  if (!stats.isDirectory()) throw new UsageError(`--metrics-textfile: ${directory} is not a directory`, { hint });
  try {
    const probe = createTemporarySync(path.resolve(file), TEXTFILE_MODE);
    fs.closeSync(probe.fd);
    fs.unlinkSync(probe.name); // created by us a moment ago, under a name nobody could guess
  } catch (error) {
    throw new UsageError(`--metrics-textfile: cannot create files in ${directory} (${codeOf(error)})`, {
      hint: 'choose a writable directory; under systemd, add it to ReadWritePaths= (see the metrics drop-in)',
    });
  }
  try {
    if (fs.statSync(file).isDirectory())
      throw new UsageError(`--metrics-textfile: ${file} is a directory`, { hint: 'give a file name ending in .prom' });
  } catch (error) {
    if (error instanceof UsageError) throw error;
    // Not there yet: written at start.
  }
}

export class MetricsTextfile {
  private readonly file: string;
  /** The temporary file being written, if any. */
  private temporary: string | null = null;
  /** The file this process last renamed into place. */
  private written: FileIdentity | null = null;
  /** A replacement of PATH by another process was logged (once until we write it again unreplaced). */
  private replacedLogged = false;
  private timer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  /** When the last write began, on the monotonic clock; -Infinity before the first. */
  private lastWriteMs = -Infinity;
  private writing: Promise<void> | null = null;
  /** A change arrived while writing: write again once done. */
  private dirty = false;
  private stopped = false;
  /** The last failure logged, so a disk that stays full logs once, and recovery once. */
  private failure: string | null = null;

  constructor(
    file: string,
    private readonly render: () => Exposition,
    private readonly log: Log,
  ) {
    this.file = path.resolve(file);
  }

  /** Writes the first file now and refreshes from then on. */
  start(): void {
    this.heartbeat = setInterval(() => this.changed(), TEXTFILE_HEARTBEAT_MS);
    this.heartbeat.unref();
    this.changed();
  }

  /** Something the exposition shows changed: write within a second. Cheap to call often. */
  changed(): void {
    if (this.stopped) return;
    if (this.writing) {
      this.dirty = true;
      return;
    }
    if (this.timer !== null) return;
    const wait = Math.min(
      MIN_TEXTFILE_INTERVAL_MS,
      Math.max(0, this.lastWriteMs + MIN_TEXTFILE_INTERVAL_MS - monotonicMs()),
    );
    this.timer = setTimeout(() => {
      this.timer = null;
      this.writing = this.write().finally(() => {
        this.writing = null;
        if (this.dirty) {
          this.dirty = false;
          this.changed();
        }
      });
    }, wait);
  }

  /** Stops refreshing and removes the file (see the header for why). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    this.timer = null;
    this.heartbeat = null;
    await this.writing;
    const current = identityOf(this.file);
    if (current === null) return;
    if (!sameFile(current, this.written)) {
      // Not ours (another daemon's, or one we never wrote): theirs to remove.
      this.log.log('notice', `Metrics: left ${this.file} in place: another process wrote it after this one`);
      return;
    }
    try {
      fs.unlinkSync(this.file);
    } catch (error) {
      this.log.log('warning', `Metrics: could not remove ${this.file} (${codeOf(error)}); its values are stale`);
    }
  }

  private async write(): Promise<void> {
    this.lastWriteMs = monotonicMs();
    this.noticeReplacement();
    const exposition = this.render();
    const parts = exposition.parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'utf8') : part));
    try {
      const { fd, name } = await createTemporary(this.file, TEXTFILE_MODE);
      this.temporary = name;
      let identity: FileIdentity;
      try {
        await call((done) => fs.fchmod(fd, TEXTFILE_MODE, done)); // the mode above is filtered by the umask
        await writeAll(fd, parts);
        const stats = await call<fs.Stats>((done) => fs.fstat(fd, done));
        identity = { dev: stats.dev, ino: stats.ino };
      } finally {
        await call((done) => fs.close(fd, done));
      }
      if (this.stopped) return;
      await call((done) => fs.rename(name, this.file, done));
      this.temporary = null;
      this.written = identity;
      if (this.failure !== null) {
        this.log.log('notice', `Metrics: writing ${this.file} works again`);
        this.failure = null;
      }
    } catch (error) {
      const code = codeOf(error);
      if (this.failure !== code) {
        this.failure = code;
        this.log.log(
          'warning',
          `Metrics: could not write ${this.file} (${code}); it keeps its previous content, retrying on the next change`,
        );
      }
    } finally {
      // Only ever a name this process created (O_EXCL) and has not renamed yet.
      const leftover = this.temporary;
      this.temporary = null;
      if (leftover !== null) await call((done) => fs.unlink(leftover, done)).catch(() => undefined);
    }
  }

  /** PATH is no longer the file this process wrote last: someone else writes it too. Said once per episode. */
  private noticeReplacement(): void {
    if (this.written === null) return;
    const current = identityOf(this.file);
    if (current === null || sameFile(current, this.written)) {
      this.replacedLogged = false;
      return;
    }
    if (this.replacedLogged) return;
    this.replacedLogged = true;
    this.log.log(
      'warning',
      `Metrics: ${this.file} was replaced by another process since this daemon wrote it: is a second offloadd (or another tool) writing the same --metrics-textfile? Their values alternate; give each its own file`,
    );
  }
}

/** One fs callback call as a promise (the error, or the value it passes). */
function call<T = void>(start: (done: (error: NodeJS.ErrnoException | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => start((error, value) => (error ? reject(error) : resolve(value as T))));
}

/** Every byte of the parts, in order, with as few writev(2) calls as the kernel allows (a short write continues). */
async function writeAll(fd: number, parts: Buffer[]): Promise<void> {
  let pending = parts.filter((part) => part.length > 0);
  while (pending.length > 0) {
    let written = await call<number>((done) => fs.writev(fd, pending, done));
    if (written === 0) throw Object.assign(new Error('writev wrote nothing'), { code: 'EIO' }); // never loop forever
    const rest: Buffer[] = [];
    for (const part of pending) {
      if (written >= part.length) written -= part.length;
      else {
        rest.push(written === 0 ? part : part.subarray(written));
        written = 0;
      }
    }
    pending = rest;
  }
}
