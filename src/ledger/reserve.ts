/**
 * The ledger's reserve: STATE_DIR/ledger.reserve, a file of RESERVE_BYTES allocated at start (by
 * writing zeros, which allocates on every file system that is not copy-on-write) so that records
 * the ledger cannot take on a full disk still reach the disk: they are written over the zeros,
 * which needs no new space. The next start replays them into the ledger, in sequence order, and
 * clears the reserve. Records are JSON lines as in the ledger; the first NUL byte ends them.
 *
 * The reserve is a fallback, never a reason to refuse work: if it cannot be made (the disk is
 * already full at start), records are held in memory as before and the observer is told.
 */
import * as fs from 'node:fs';
import { OffloaddError } from '../errors';
import { openRegular } from './files';
import { parseRecord, type LedgerRecord } from './record';

/** About 3,000 records of a typical 300 bytes: far more than a full disk usually outlasts. */
export const RESERVE_BYTES = 1024 * 1024;
/** Zeros written per call while allocating. */
const ALLOCATION_CHUNK_BYTES = 64 * 1024;
const NUL = 0x00;

export class LedgerReserve {
  private constructor(
    readonly file: string,
    private readonly fd: number,
    /** Bytes of records at the file's start; the rest is zeros. */
    private used: number,
    /** The records found there at open, for replay. */
    readonly found: readonly LedgerRecord[],
    /** Lines that were not records (a crash mid-write). */
    readonly skippedLines: number,
    /** Bytes allocated: RESERVE_BYTES, or less when the disk was too full at start. */
    private readonly capacity: number,
    /** Why the reserve is smaller than RESERVE_BYTES, or null. */
    readonly problem: string | null,
  ) {}

  /**
   * Opens or creates the reserve, reads what it keeps and allocates it in full; when the disk is
   * too full for that, it stays the size it was (`problem` says why). Throws OffloaddError
   * ERR_LEDGER_FILE when it cannot be opened or read.
   */
  static open(file: string): LedgerReserve {
    const { fd, stat } = openRegular(file, fs.constants.O_RDWR | fs.constants.O_CREAT);
    try {
      const contents = Buffer.alloc(Math.min(stat.size, RESERVE_BYTES));
      let got = 0;
      while (got < contents.length) {
        const read = fs.readSync(fd, contents, got, contents.length - got, got);
        if (read === 0) break;
        got += read;
      }
      const end = contents.indexOf(NUL) < 0 ? got : Math.min(got, contents.indexOf(NUL));
      const found: LedgerRecord[] = [];
      let skipped = 0;
      for (const line of contents.subarray(0, end).toString('utf8').split('\n')) {
        if (line === '') continue;
        const parsed = parseRecord(line);
        if ('problem' in parsed) skipped++;
        else found.push(parsed.record);
      }
      let capacity = RESERVE_BYTES;
      let problem: string | null = null;
      try {
        allocate(fd, stat.size, RESERVE_BYTES);
      } catch (error) {
        // Give the space back: the ledger needs it more than a reserve that cannot be whole.
        fs.ftruncateSync(fd, stat.size);
        capacity = Math.min(stat.size, RESERVE_BYTES);
        problem = `could not allocate ${RESERVE_BYTES} bytes for ${file} (${(error as Error).message}); it holds ${capacity}`;
      }
      return new LedgerReserve(file, fd, end, found, skipped, capacity, problem);
    } catch (error) {
      fs.closeSync(fd);
      throw new OffloaddError('ERR_LEDGER_FILE', `cannot read ${file} (${(error as Error).message})`, {
        cause: error,
      });
    }
  }

  /** Room left, in bytes. */
  get free(): number {
    return this.capacity - this.used;
  }

  get empty(): boolean {
    return this.used === 0;
  }

  /**
   * Writes the records after those already kept and makes them durable. Returns how many were
   * kept: all, or none when they do not fit (the caller holds those in memory).
   */
  keep(records: readonly LedgerRecord[]): number {
    if (records.length === 0) return 0;
    const bytes = Buffer.from(records.map((record) => `${JSON.stringify(record)}\n`).join(''));
    if (bytes.length > this.free) return 0;
    for (let written = 0; written < bytes.length;) {
      written += fs.writeSync(this.fd, bytes, written, bytes.length - written, this.used + written);
    }
    fs.fdatasyncSync(this.fd);
    this.used += bytes.length;
    return records.length;
  }

  /** Zeros what was kept (the records are in the ledger now, durably) and syncs. */
  clear(): void {
    if (this.used === 0) return;
    const zeros = Buffer.alloc(Math.min(this.used, ALLOCATION_CHUNK_BYTES));
    for (let offset = 0; offset < this.used;) {
      offset += fs.writeSync(this.fd, zeros, 0, Math.min(zeros.length, this.used - offset), offset);
    }
    fs.fdatasyncSync(this.fd);
    this.used = 0;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** Writes zeros from `from` to `size`: real blocks, unlike ftruncate's hole. */
function allocate(fd: number, from: number, size: number): void {
  if (from >= size) return;
  const zeros = Buffer.alloc(ALLOCATION_CHUNK_BYTES);
  for (let offset = from; offset < size;) {
    offset += fs.writeSync(fd, zeros, 0, Math.min(zeros.length, size - offset), offset);
  }
  fs.fdatasyncSync(fd);
}
