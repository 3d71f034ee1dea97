/**
 * The ledger's file handling, apart from what a ledger means: opening without following links
 * and only regular files, reading lines backwards in bounded chunks, and the small side file that
 * carries the last sequence number across rotation.
 */
import * as fs from 'node:fs';
import { OffloaddError } from '../errors';

const { O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_WRONLY, O_APPEND, O_CREAT, O_TRUNC } = fs.constants;

/** Bytes read per step when reading a file backwards. */
export const CHUNK_BYTES = 64 * 1024;
/** A "line" longer than this is no record: it is skipped instead of buffered. */
export const MAX_LINE_BYTES = 1024 * 1024;
export const FILE_MODE = 0o640;
/** Stands for a line longer than MAX_LINE_BYTES (not JSON, so it is reported as malformed). */
export const OVERLONG_LINE = '\u0000(overlong line)';

/** Read-write: the torn-tail check reads the last byte through the same descriptor. */
export const OPEN_APPEND = fs.constants.O_RDWR | O_APPEND | O_CREAT;
export const OPEN_READ = O_RDONLY;

/**
 * open(2) that never follows a symbolic link (ELOOP) and never blocks on a FIFO (O_NONBLOCK; a
 * FIFO without a reader even fails with ENXIO), then refuses anything but a regular file.
 */
export function openRegular(file: string, flags: number): { fd: number; stat: fs.Stats } {
  let fd: number;
  try {
    fd = fs.openSync(file, flags | O_NOFOLLOW | O_NONBLOCK, FILE_MODE);
  } catch (error) {
    throw openError(file, error);
  }
  const stat = fs.fstatSync(fd);
  if (!stat.isFile()) {
    fs.closeSync(fd);
    throw notRegular(file, stat);
  }
  return { fd, stat };
}

/**
 * A file open for reading on the thread pool, over fs's callback API: the first use of
 * `fs.promises` loads seven more internal modules (readline, the REPL history, the file
 * watchers), resident for the daemon's whole life (~1 MiB), for the history index alone.
 */
export interface AsyncReadFile {
  /** Reads into `buffer` from `position`; resolves with the bytes read. */
  read(buffer: Buffer, position: number): Promise<number>;
  close(): Promise<void>;
}

function callback<T>(run: (done: (error: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => run((error, value) => (error ? reject(error) : resolve(value))));
}

function asyncReadFile(fd: number): AsyncReadFile {
  return {
    read: (buffer, position) => callback<number>((done) => fs.read(fd, buffer, 0, buffer.length, position, done)),
    close: () => callback<void>((done) => fs.close(fd, (error) => done(error, undefined))),
  };
}

/** openRegular() for reading on the thread pool. */
export async function openRegularAsync(file: string): Promise<{ handle: AsyncReadFile; size: number }> {
  let fd: number;
  try {
    fd = await callback<number>((done) => fs.open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, done));
  } catch (error) {
    throw openError(file, error);
  }
  const handle = asyncReadFile(fd);
  const stat = await callback<fs.Stats>((done) => fs.fstat(fd, done)).catch(async (error: unknown) => {
    await handle.close();
    throw error;
  });
  if (!stat.isFile()) {
    await handle.close();
    throw notRegular(file, stat);
  }
  return { handle, size: stat.size };
}

/** The error says the file does not exist (also when openRegular() wrapped it). */
export function isMissing(error: unknown): boolean {
  return (
    ((error as { cause?: NodeJS.ErrnoException }).cause?.code ?? (error as NodeJS.ErrnoException).code) === 'ENOENT'
  );
}

function openError(file: string, error: unknown): OffloaddError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ELOOP') {
    return new OffloaddError('ERR_LEDGER_FILE', `${file} is a symbolic link; the ledger never follows links`, {
      hint: `remove the link (rm ${file}); the daemon creates a fresh file`,
      cause: error,
    });
  }
  return new OffloaddError('ERR_LEDGER_FILE', `cannot open ${file}: ${(error as Error).message}`, { cause: error });
}

function notRegular(file: string, stat: fs.Stats): OffloaddError {
  const what = stat.isFIFO()
    ? 'a FIFO'
    : stat.isDirectory()
      ? 'a directory'
      : stat.isSocket()
        ? 'a socket'
        : 'not a regular file';
  return new OffloaddError('ERR_LEDGER_FILE', `${file} is ${what}; the ledger only uses regular files`, {
    hint: `move it away (mv ${file} ${file}.bad); the daemon creates a fresh file`,
  });
}

/** Device and inode: what a file is, whatever its name. */
export interface FileIdentity {
  dev: number;
  ino: number;
}

/**
 * Whether `file` still names the open file whose identity is `open` (same device and inode, not
 * replaced or deleted). An open descriptor's identity never changes, so the caller keeps it from
 * opening: one lstat per call instead of lstat + fstat (this runs on every ledger append).
 */
export function sameFile(file: string, open: FileIdentity): boolean {
  const named = fs.lstatSync(file, { throwIfNoEntry: false });
  return named !== undefined && named.dev === open.dev && named.ino === open.ino;
}

/**
 * Splits a file into lines from its end to its start, one chunk at a time. Feed chunks in
 * reverse file order; each call returns the lines completed by that chunk, newest first. The
 * very first piece returned is what follows the file's last newline: '' for a well-formed file,
 * otherwise a torn (or unterminated) last line.
 */
export class BackwardLines {
  private carry: Buffer = Buffer.alloc(0);
  private skipping = false;

  /** `chunk` ends where the previous chunk began; `atStart` when it begins at offset 0. */
  feed(chunk: Buffer, atStart: boolean): string[] {
    const data = this.carry.length > 0 ? Buffer.concat([chunk, this.carry]) : chunk;
    const lines: string[] = [];
    let end = data.length;
    while (end > 0) {
      const newline = data.lastIndexOf(0x0a, end - 1);
      if (newline < 0) break;
      this.emit(lines, data.subarray(newline + 1, end));
      end = newline;
    }
    this.carry = data.subarray(0, end);
    if (this.carry.length > MAX_LINE_BYTES) {
      this.carry = Buffer.alloc(0);
      this.skipping = true; // the rest of this overlong line, up to the previous newline, is dropped
    }
    if (atStart) {
      this.emit(lines, this.carry);
      this.carry = Buffer.alloc(0);
    }
    return lines;
  }

  private emit(lines: string[], bytes: Buffer): void {
    if (this.skipping) {
      this.skipping = false;
      lines.push(OVERLONG_LINE);
      return;
    }
    lines.push(bytes.toString('utf8'));
  }
}

/** Reads `file` backwards, calling `onLine` newest first until it returns false. Synchronous (start-up only). */
export function readBackwardSync(fd: number, size: number, onLine: (line: string, fromEnd: number) => boolean): void {
  const splitter = new BackwardLines();
  const buffer = Buffer.alloc(CHUNK_BYTES);
  let fromEnd = 0;
  for (let position = size; position > 0;) {
    const start = Math.max(0, position - CHUNK_BYTES);
    const length = position - start;
    let got = 0;
    while (got < length) {
      const read = fs.readSync(fd, buffer, got, length - got, start + got);
      if (read === 0) break;
      got += read;
    }
    for (const line of splitter.feed(Buffer.from(buffer.subarray(0, got)), start === 0)) {
      if (!onLine(line, fromEnd++)) return;
    }
    position = start;
  }
}

/** Asynchronous backward reader for queries: yields to the event loop between chunks (of `chunkBytes`). */
export async function readBackward(
  handle: AsyncReadFile,
  size: number,
  onLine: (line: string, fromEnd: number) => boolean,
  chunkBytes = CHUNK_BYTES,
): Promise<void> {
  const splitter = new BackwardLines();
  let fromEnd = 0;
  for (let position = size; position > 0;) {
    const start = Math.max(0, position - chunkBytes);
    const buffer = Buffer.alloc(position - start);
    const bytesRead = await handle.read(buffer, start);
    for (const line of splitter.feed(buffer.subarray(0, bytesRead), start === 0)) {
      if (!onLine(line, fromEnd++)) return;
    }
    position = start;
  }
}

/** The last sequence number handed out, kept beside the ledger so rotation (even `keep: 0`) cannot lose it. */
export function readSeqFile(file: string): number | null {
  let opened;
  try {
    opened = openRegular(file, OPEN_READ);
  } catch (error) {
    if (((error as OffloaddError).cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return null;
    throw error;
  }
  try {
    const buffer = Buffer.alloc(64);
    const length = fs.readSync(opened.fd, buffer, 0, buffer.length, 0);
    const seq = Number(buffer.subarray(0, length).toString('utf8').trim());
    if (!Number.isSafeInteger(seq) || seq < 0)
      throw new OffloaddError('ERR_LEDGER_FILE', `${file} does not hold a sequence number`);
    return seq;
  } finally {
    fs.closeSync(opened.fd);
  }
}

/** Written to a temporary file, synced and renamed over: a crash leaves the old or the new number. */
export function writeSeqFile(file: string, seq: number): void {
  const temporary = `${file}.tmp`;
  fs.rmSync(temporary, { force: true });
  const { fd } = openRegular(temporary, O_WRONLY | O_CREAT | O_TRUNC);
  try {
    try {
      fs.writeSync(fd, `${seq}\n`);
      fs.fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temporary, file);
  } catch (error) {
    // A full disk must not leave ledger.seq.tmp behind.
    fs.rmSync(temporary, { force: true });
    throw error;
  }
}

/** fsync of a directory, so renames and new files in it survive a crash. */
export function syncDirectory(dir: string): void {
  const fd = fs.openSync(dir, O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
