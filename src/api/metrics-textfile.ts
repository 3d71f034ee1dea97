/**
 * `--metrics-textfile PATH`: node-exporter's textfile collector convention. The exposition is
 * written to `PATH.tmp.<pid>` (the collector reads only `*.prom`), then renamed over PATH, so a
 * reader sees the old file or the new one, never half of one. Written when something changed,
 * at most once a second, and every minute regardless, so the file's mtime
 * (node_textfile_mtime_seconds) tells a running daemon from a dead one. Written asynchronously:
 * enforcement never waits for the disk.
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

/** The collector's rule: it reads `*.prom` only. */
export const TEXTFILE_SUFFIX = '.prom';
/** The contract: refreshed on change, at most once a second. */
export const MIN_TEXTFILE_INTERVAL_MS = 1000;
/** Rewritten at least this often, so its mtime shows the daemon is alive. */
export const TEXTFILE_HEARTBEAT_MS = 60_000;
/** node-exporter usually runs as its own user: the file must be readable by others (the unit's UMask is 0077). */
const TEXTFILE_MODE = 0o644;

function temporaryPath(file: string): string {
  return `${file}.tmp.${process.pid}`;
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
  const probe = temporaryPath(path.resolve(file));
  try {
    fs.closeSync(fs.openSync(probe, 'w', TEXTFILE_MODE));
    fs.rmSync(probe, { force: true });
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
  private readonly temporary: string;
  private timer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private lastWriteMs = 0;
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
    this.temporary = temporaryPath(this.file);
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
    const wait = Math.max(0, this.lastWriteMs + MIN_TEXTFILE_INTERVAL_MS - Date.now());
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
    fs.rmSync(this.temporary, { force: true });
    try {
      fs.rmSync(this.file, { force: true });
    } catch (error) {
      this.log.log('warning', `Metrics: could not remove ${this.file} (${codeOf(error)}); its values are stale`);
    }
  }

  private async write(): Promise<void> {
    this.lastWriteMs = Date.now();
    const exposition = this.render();
    const parts = exposition.parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'utf8') : part));
    try {
      const fd = await call<number>((done) => fs.open(this.temporary, 'w', TEXTFILE_MODE, done));
      try {
        await call((done) => fs.fchmod(fd, TEXTFILE_MODE, done)); // the mode above is filtered by the umask
        await writeAll(fd, parts);
      } finally {
        await call((done) => fs.close(fd, done));
      }
      if (this.stopped) return;
      await call((done) => fs.rename(this.temporary, this.file, done));
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
      await call((done) => fs.rm(this.temporary, { force: true }, done)).catch(() => undefined);
    } finally {
      exposition.done(); // nothing reads the parts any more
    }
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
