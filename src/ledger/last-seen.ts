/**
 * What the daemon last saw of each managed interface's features, kept across restarts in
 * STATE_DIR/last-seen.json, so that a change made while the daemon was stopped (or the host was
 * down) is recognised as drift at the next start rather than taken for a first enforcement.
 *
 * Interfaces are known by name and MAC: ifindexes are not stable across reboots, and a name
 * that now belongs to a device with another MAC is a different interface. The file is a cache
 * of observations, not a record: losing it (or its last minutes, in a crash) only means the next
 * start calls a difference `initial` instead of `drift`; the ledger remains the history.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isMissing, OPEN_READ, openRegular } from './files';

export const LAST_SEEN_FILE = 'last-seen.json';
const FORMAT_VERSION = 1;
/** Far above any real host (10,000 interfaces x a dozen features is ~2 MiB). */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

export interface SeenInterface {
  name: string;
  mac: string | null;
  /** Active state per kernel feature name. */
  features: Record<string, boolean>;
}

interface FileShape {
  version: number;
  interfaces: SeenInterface[];
}

export class LastSeenStore {
  private readonly byName = new Map<string, SeenInterface>();

  constructor(readonly dir: string) {}

  get file(): string {
    return path.join(this.dir, LAST_SEEN_FILE);
  }

  /**
   * Reads the file left by the previous run. Returns a warning for a file that is not usable
   * (it is then ignored: every difference found at start is `initial`); null when all is well
   * or there is no file yet.
   */
  load(): string | null {
    this.byName.clear();
    let text: string;
    try {
      text = readRegularFile(this.file, MAX_FILE_BYTES);
    } catch (error) {
      if (isMissing(error)) return null;
      return `cannot read ${this.file} (${(error as Error).message}); changes made while offloadd was stopped will be recorded as initial`;
    }
    try {
      const parsed = JSON.parse(text) as FileShape;
      if (parsed?.version !== FORMAT_VERSION || !Array.isArray(parsed.interfaces)) throw new Error('unknown format');
      for (const entry of parsed.interfaces) if (isSeenInterface(entry)) this.byName.set(entry.name, entry);
      return null;
    } catch (error) {
      return `ignoring ${this.file}: ${(error as Error).message}`;
    }
  }

  /**
   * The features last seen on the interface now called `name`, if it is the same interface
   * (same MAC); each entry is handed out once, for the interface's first check in this run.
   */
  take(name: string, mac: string | null): Map<string, boolean> | null {
    const entry = this.byName.get(name);
    if (!entry) return null;
    this.byName.delete(name);
    if (entry.mac !== mac) return null;
    return new Map(Object.entries(entry.features));
  }

  /**
   * Replaces the file atomically (write a new file, then rename over the old one) so a crash
   * leaves either the old or the new content. Throws on I/O errors; the caller logs them.
   */
  save(interfaces: SeenInterface[]): void {
    const body: FileShape = { version: FORMAT_VERSION, interfaces };
    const temporary = `${this.file}.${process.pid}.tmp`;
    fs.rmSync(temporary, { force: true });
    try {
      // 'wx' is O_CREAT|O_EXCL: never follows a link planted at the temporary name.
      fs.writeFileSync(temporary, JSON.stringify(body), { flag: 'wx', mode: 0o640 });
      fs.renameSync(temporary, this.file);
    } catch (error) {
      // A full disk must not leave a partial temporary file behind.
      fs.rmSync(temporary, { force: true });
      throw error;
    }
  }
}

/** Reads a regular file of at most `limit` bytes, refusing links, FIFOs and devices. */
function readRegularFile(file: string, limit: number): string {
  const { fd, stat } = openRegular(file, OPEN_READ);
  try {
    if (stat.size > limit) throw new Error(`larger than ${limit} bytes`);
    const buffer = Buffer.alloc(stat.size);
    const length = fs.readSync(fd, buffer, 0, stat.size, 0);
    return buffer.toString('utf8', 0, length);
  } finally {
    fs.closeSync(fd);
  }
}

function isSeenInterface(value: unknown): value is SeenInterface {
  const entry = value as SeenInterface;
  return (
    typeof entry === 'object' &&
    entry !== null &&
    typeof entry.name === 'string' &&
    (entry.mac === null || typeof entry.mac === 'string') &&
    typeof entry.features === 'object' &&
    entry.features !== null &&
    Object.values(entry.features).every((active) => typeof active === 'boolean')
  );
}

/** How stale last-seen.json may get while running (it is also written at stop). */
export const LAST_SEEN_SAVE_INTERVAL_MS = 10_000;

export type LastSeenLog = (level: 'info' | 'warning', message: string) => void;

/**
 * Keeps last-seen.json current for the daemon: loads it at start, writes it when something was
 * checked (at most every LAST_SEEN_SAVE_INTERVAL_MS, and at stop), and says once when writing
 * starts or stops working. Never throws: the file only sharpens drift versus initial.
 */
export class LastSeenKeeper {
  private changed = false;
  private failing = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly store: LastSeenStore,
    private readonly entries: () => SeenInterface[],
    private readonly log: LastSeenLog,
  ) {}

  load(): void {
    const warning = this.store.load();
    if (warning) this.log('warning', `Last seen state: ${warning}`);
  }

  markChanged(): void {
    this.changed = true;
  }

  startAutosave(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.save(), LAST_SEEN_SAVE_INTERVAL_MS);
    this.timer.unref();
  }

  /** Writes the file if anything was checked since the last write. */
  save(): void {
    if (!this.changed) return;
    this.changed = false;
    try {
      this.store.save(this.entries());
      if (this.failing) this.log('info', `Last seen state: writing ${this.store.file} works again`);
      this.failing = false;
    } catch (error) {
      if (!this.failing) {
        this.log(
          'warning',
          `Last seen state: cannot write ${this.store.file} (${(error as Error).message}); changes made while offloadd is stopped may be recorded as initial, not drift`,
        );
      }
      this.failing = true;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.save();
  }
}
