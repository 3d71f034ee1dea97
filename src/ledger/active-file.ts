/**
 * The ledger's active file (STATE_DIR/ledger.jsonl) as open for appending: how long it is up to
 * the last complete append, whether it ends in a torn line, and whether the file at its path is
 * still the one open. An append is whole or not at all: a failed or partial one is cut back, so
 * no record is ever glued onto a torn line; a torn line left by a crash is terminated by the next.
 */
import * as fs from 'node:fs';
import { lastSeqIn } from './file-set';
import { openRegular, OPEN_APPEND, sameFile, type FileIdentity } from './files';

export class ActiveFile {
  private fd: number | null = null;
  /** The open file's device and inode (set with `fd`). */
  private identity: FileIdentity = { dev: 0, ino: 0 };
  /** Length up to the last complete append. */
  private length = 0;
  /** The file ends in a torn line: the next append starts with a newline. */
  private needsNewline = false;

  /**
   * @param close closes a descriptor no longer written to (the Ledger's group sync may still need it)
   * @param warn where problems with the file are said
   */
  constructor(
    readonly path: string,
    private readonly close: (fd: number) => void,
    private readonly warn: (message: string) => void,
  ) {}

  /** The open descriptor, null when closed. */
  get descriptor(): number | null {
    return this.fd;
  }

  /** Bytes up to the last complete append. */
  get size(): number {
    return this.length;
  }

  /**
   * Opens (creating) the file: no links, regular files only. Returns the sequence number of its
   * last valid record (0 if none). Throws what opening or reading it threw.
   */
  open(): number {
    const { fd, stat } = openRegular(this.path, OPEN_APPEND);
    this.fd = fd;
    this.identity = { dev: stat.dev, ino: stat.ino };
    this.length = stat.size;
    this.needsNewline = stat.size > 0 && lastByte(fd, stat.size) !== 0x0a;
    return lastSeqIn(fd, stat.size);
  }

  /** Appends `text` (whole lines) to the open file, whole or not at all; throws the write's error. */
  append(text: string): void {
    const fd = this.fd as number;
    const bytes = Buffer.from(`${this.needsNewline ? '\n' : ''}${text}`);
    try {
      for (let written = 0; written < bytes.length;) written += fs.writeSync(fd, bytes, written);
    } catch (error) {
      this.restoreLength(fd);
      throw error;
    }
    this.length += bytes.length;
    this.needsNewline = false;
  }

  /** fdatasync(2) of the open file; throws its error. */
  syncNow(): void {
    fs.fdatasyncSync(this.fd as number);
  }

  /**
   * The file at the path was deleted or replaced while open (said, and the old one closed): true,
   * and the caller reopens. False when it is the same or none is open.
   */
  replaced(): boolean {
    if (this.fd === null) return false;
    let same: boolean;
    try {
      same = sameFile(this.path, this.identity);
    } catch {
      same = false;
    }
    if (same) return false;
    this.warn(
      `${this.path} was deleted or replaced while the daemon ran; reopening it (records before this point went to the old file)`,
    );
    this.closeFile();
    return true;
  }

  /** Closes the open descriptor (through `close`, which may wait for a sync running on it). */
  closeFile(): void {
    if (this.fd === null) return;
    this.close(this.fd);
    this.fd = null;
  }

  /** After a failed or partial append: cut the file back so the next record starts on a fresh line. */
  private restoreLength(fd: number): void {
    try {
      fs.ftruncateSync(fd, this.length);
    } catch (error) {
      // Cannot cut it back: reopen later; the file's torn end is then terminated with a newline.
      this.warn(
        `could not cut ${this.path} back to ${this.length} bytes after a failed write (${(error as Error).message}); it will be reopened`,
      );
      this.closeFile();
    }
  }
}

function lastByte(fd: number, size: number): number {
  const buffer = Buffer.alloc(1);
  fs.readSync(fd, buffer, 0, 1, size - 1);
  return buffer[0] as number;
}
