/**
 * The ledger's files as a set: the active file and its rotated predecessors (.1 newest to .N),
 * how rotation renames them, and reading records back from them newest first (the tail at open,
 * the history index, deep queries). What is appended and when is the Ledger's (ledger.ts).
 */
import * as fs from 'node:fs';
import {
  isMissing,
  openRegular,
  openRegularAsync,
  OPEN_READ,
  readBackward,
  readBackwardSync,
  type AsyncReadFile,
} from './files';
import { matches, rawNeedles, type LedgerQuery, type SinceScan } from './query';
import { parseRecord, type LedgerRecord } from './record';

/** Warnings about one file's lines at start-up beyond this are summed up in one line. */
const MAX_LINE_WARNINGS = 20;
/**
 * Bytes of history read and parsed per slice of the index build (about 50 records of ~300 bytes,
 * ~1 ms): between slices the event loop runs, so link events and corrections never wait long.
 */
const INDEX_CHUNK_BYTES = 16 * 1024;
/** Lines the ledger writes start like this: records already in memory are skipped without parsing. */
const SEQ_PREFIX = /^\{"seq":(\d+),/;

interface OpenedFile {
  file: string;
  handle: AsyncReadFile;
  size: number;
}

export class LedgerFileSet {
  /** Unreadable files already logged (a query repeats, the log line need not). */
  private readonly loggedUnreadable = new Set<string>();

  /**
   * @param keepFiles how many rotated files there are (the policy's limit, which a reload may change)
   * @param warn where problems with the files are said
   */
  constructor(
    readonly activePath: string,
    private readonly keepFiles: () => number,
    private readonly warn: (message: string) => void,
  ) {}

  /** Active file first, then .1, .2, ... (newest to oldest); whatever is at those names. */
  files(): string[] {
    const files = [this.activePath];
    for (let index = 1; index <= this.keepFiles(); index++) {
      const file = `${this.activePath}.${index}`;
      if (fs.lstatSync(file, { throwIfNoEntry: false })) files.push(file);
    }
    return files;
  }

  /**
   * The active file becomes .1, each older one moves up a number and the oldest beyond
   * keepFiles goes; with keepFiles 0 the active file is removed. Throws what the file system said.
   */
  rotate(): void {
    const keep = this.keepFiles();
    if (keep === 0) {
      fs.rmSync(this.activePath, { force: true });
      return;
    }
    fs.rmSync(`${this.activePath}.${keep}`, { force: true });
    for (let index = keep - 1; index >= 1; index--) {
      const from = `${this.activePath}.${index}`;
      if (fs.lstatSync(from, { throwIfNoEntry: false })) fs.renameSync(from, `${this.activePath}.${index + 1}`);
    }
    fs.renameSync(this.activePath, `${this.activePath}.1`);
  }

  /**
   * Before READY: the newest record's sequence number in the files (reading the newest file
   * backwards to its last valid line; 0 when none) and the active file's length (0 when it cannot
   * be opened). A torn last line of the active file is said once.
   */
  readTail(): { newestSeq: number; activeBytes: number } {
    let newestSeq = 0;
    let activeBytes = 0;
    for (const file of this.files()) {
      let opened;
      try {
        opened = openRegular(file, OPEN_READ);
      } catch {
        continue; // named by the Ledger's openActive() (the active file) or by the index build (the others)
      }
      if (file === this.activePath) activeBytes = opened.stat.size;
      try {
        readBackwardSync(opened.fd, opened.stat.size, (line, fromEnd) => {
          if (line === '') return true;
          const parsed = parseRecord(line);
          if ('problem' in parsed) {
            if (file === this.activePath && fromEnd === 0)
              this.warn(`${file}: skipped a torn last line (${parsed.problem}, ${Buffer.byteLength(line)} bytes)`);
            return true;
          }
          newestSeq = parsed.record.seq;
          return false;
        });
      } catch {
        // unreadable: the index build names it
      } finally {
        fs.closeSync(opened.fd);
      }
      if (newestSeq > 0) break;
    }
    return { newestSeq, activeBytes };
  }

  /**
   * The newest `count` valid records numbered `below` or lower (newest first), for the history
   * index: the active file is read no further than `activeBytes` (its length at open). `complete`
   * when they are every record the files hold; null when `stopped()` turned true meanwhile.
   */
  async readNewest(
    below: number,
    count: number,
    activeBytes: number,
    stopped: () => boolean,
  ): Promise<{ newestFirst: LedgerRecord[]; complete: boolean } | null> {
    const newestFirst: LedgerRecord[] = [];
    let complete = true;
    const opened = await this.openAll(() => {
      complete = false;
    });
    try {
      for (const { file, handle, size } of opened) {
        const problems: string[] = [];
        try {
          await readBackward(
            handle,
            file === this.activePath ? Math.min(size, activeBytes) : size,
            (line, fromEnd) => {
              if (line === '' || stopped()) return !stopped();
              const prefix = SEQ_PREFIX.exec(line);
              if (prefix && Number(prefix[1]) > below) return true; // in memory already
              const parsed = parseRecord(line);
              if ('problem' in parsed) {
                // A torn last line was said at open.
                if (!(file === this.activePath && fromEnd === 0))
                  problems.push(`skipped a malformed line (${parsed.problem}, ${Buffer.byteLength(line)} bytes)`);
                return true;
              }
              if (parsed.record.seq > below) return true;
              newestFirst.push(parsed.record);
              return newestFirst.length < count;
            },
            INDEX_CHUNK_BYTES,
          );
        } catch (error) {
          this.unreadable(file, error);
          complete = false;
        }
        for (const problem of problems.slice(0, MAX_LINE_WARNINGS)) this.warn(`${file}: ${problem}`);
        if (problems.length > MAX_LINE_WARNINGS)
          this.warn(`${file}: ${problems.length - MAX_LINE_WARNINGS} more lines skipped`);
        if (newestFirst.length >= count) {
          complete = false;
          break;
        }
        if (stopped()) return null;
      }
    } finally {
      await Promise.all(opened.map(({ handle }) => handle.close().catch(() => undefined)));
    }
    return { newestFirst, complete };
  }

  /**
   * A deep query: the records numbered below `below` (those above were answered from memory),
   * newest first, added to `found` until `limit`; files that cannot be read go to `warnings`.
   */
  async scan(
    query: LedgerQuery,
    since: SinceScan,
    below: number,
    limit: number,
    found: LedgerRecord[],
    warnings: string[],
  ): Promise<void> {
    const opened = await this.openAll((warning) => warnings.push(warning));
    const needles = rawNeedles(query);
    try {
      for (const { file, handle, size } of opened) {
        let done = false;
        try {
          await readBackward(handle, size, (line) => {
            const prefix = SEQ_PREFIX.exec(line);
            if (line === '' || (prefix && Number(prefix[1]) >= below)) return true; // already answered from memory
            // A line as the daemon writes it that lacks a filter's exact text cannot match: not parsed.
            if (prefix && !since.active && !needles.every((group) => group.some((needle) => line.includes(needle))))
              return true;
            const parsed = parseRecord(line);
            if ('problem' in parsed || parsed.record.seq >= below) return true;
            const verdict = since.judge(parsed.record);
            if (verdict === 'end') {
              done = true;
              return false;
            }
            if (verdict === 'take') {
              found.push(...since.release(), ...(matches(parsed.record, query) ? [parsed.record] : []));
            } else if (verdict === 'maybe' && matches(parsed.record, query)) since.holdBack(parsed.record);
            done = found.length >= limit;
            if (found.length > limit) found.length = limit;
            return !done;
          });
        } catch (error) {
          warnings.push(this.unreadable(file, error));
        }
        if (done) break;
      }
    } finally {
      await Promise.all(opened.map(({ handle }) => handle.close().catch(() => undefined)));
    }
  }

  /**
   * Every ledger file opened before any is read, so a rotation during a scan cannot make it read
   * one twice or skip one. A missing active file is simply empty; any other that cannot be opened
   * is logged and passed to `onUnreadable`.
   */
  private async openAll(onUnreadable: (warning: string) => void): Promise<OpenedFile[]> {
    const opened: OpenedFile[] = [];
    for (const file of this.files()) {
      try {
        opened.push({ file, ...(await openRegularAsync(file)) });
      } catch (error) {
        if (file === this.activePath && isMissing(error)) continue;
        onUnreadable(this.unreadable(file, error));
      }
    }
    return opened;
  }

  /** Logged once per file and problem; returned for the query's answer. */
  private unreadable(file: string, error: unknown): string {
    const message = `${file} cannot be read (${(error as Error).message}); history from it is left out`;
    if (!this.loggedUnreadable.has(message)) {
      this.loggedUnreadable.add(message);
      this.warn(message);
    }
    return message;
  }
}

/** The sequence number of the last valid record in an open file (0 if none). */
export function lastSeqIn(fd: number, size: number): number {
  let seq = 0;
  readBackwardSync(fd, size, (line) => {
    if (line === '') return true;
    const parsed = parseRecord(line);
    if ('problem' in parsed) return true;
    seq = parsed.record.seq;
    return false;
  });
  return seq;
}
