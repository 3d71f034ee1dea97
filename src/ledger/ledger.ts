/**
 * The drift ledger: append-only JSON lines under the state directory, made durable (fdatasync)
 * before a record is reported anywhere else, rotated by size, and read back after restarts.
 *
 *   STATE_DIR/ledger.jsonl       the active file
 *   STATE_DIR/ledger.jsonl.1..N  older files, .1 newest
 *
 * A crash can leave a torn last line: it is sealed with a newline and skipped with a warning.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OffloaddError } from '../errors';
import type { LedgerLimits } from '../policy/types';
import type { LedgerRecord, NewRecord } from './record';

const ACTIVE_FILE = 'ledger.jsonl';

export interface LedgerQuery {
  /** ISO time or Date: only records at or after it. */
  since?: Date;
  interface?: string;
  feature?: string;
  kind?: string;
  /** Newest N (after filtering). */
  limit?: number;
}

/** Called once records are on disk; `error` if the sync failed (they are then only written). */
export type DurableCallback = (records: LedgerRecord[], error: Error | null) => void;

interface PendingBatch {
  records: LedgerRecord[];
  onDurable: DurableCallback;
}

export class Ledger {
  private fd: number | null = null;
  private syncing = false;
  /** Written, waiting for the next sync. */
  private waiting: PendingBatch[] = [];
  /** Covered by the sync now running. */
  private inFlight: PendingBatch[] | null = null;
  private size = 0;
  private seq = 0;
  /** Problems found while loading (torn or malformed lines): the daemon logs them. */
  readonly loadWarnings: string[] = [];

  constructor(readonly dir: string, private limits: LedgerLimits) {}

  get activePath(): string {
    return path.join(this.dir, ACTIVE_FILE);
  }

  /** Last sequence number written (0 when empty). */
  get lastSeq(): number {
    return this.seq;
  }

  open(): void {
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o750 });
      this.fd = fs.openSync(this.activePath, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o640);
    } catch (error) {
      throw new OffloaddError('ERR_STATE_DIR', `cannot open the ledger in ${this.dir}: ${(error as Error).message}`, {
        hint: 'check --state-dir (default /var/lib/offloadd) exists and is writable by the daemon',
        cause: error,
      });
    }
    this.size = fs.fstatSync(this.fd).size;
    this.sealTornTail();
    this.seq = this.lastRecordSeq();
  }

  setLimits(limits: LedgerLimits): void {
    this.limits = limits;
  }

  /**
   * Stamps and writes the records now, and hands them to `onDurable` once an fdatasync that
   * covers them has completed. The sync runs on libuv's thread pool (it takes about a
   * millisecond), so link events are not held up by it; one sync covers every batch written
   * before it started, and batches are handed back in the order they were written.
   */
  append(records: readonly NewRecord[], onDurable: DurableCallback): void {
    if (records.length === 0) return;
    this.waiting.push({ records: this.write(records), onDurable });
    if (!this.syncing) this.startSync();
  }

  /** append() for shutdown and one-shot runs: written, synced and returned at once. */
  appendSync(records: readonly NewRecord[]): LedgerRecord[] {
    if (records.length === 0) return [];
    const stamped = this.write(records);
    this.syncNow();
    this.rotateIfDue();
    return stamped;
  }

  private write(records: readonly NewRecord[]): LedgerRecord[] {
    if (this.fd === null) throw new OffloaddError('ERR_LEDGER_CLOSED', 'the ledger is not open');
    const time = new Date().toISOString();
    const stamped = records.map((record): LedgerRecord => ({ seq: ++this.seq, time, ...record }));
    const bytes = Buffer.from(stamped.map((record) => `${JSON.stringify(record)}\n`).join(''));
    for (let written = 0; written < bytes.length; ) written += fs.writeSync(this.fd, bytes, written);
    this.size += bytes.length;
    return stamped;
  }

  private startSync(): void {
    if (this.fd === null) return;
    const batch = this.waiting.splice(0);
    this.inFlight = batch;
    this.syncing = true;
    fs.fdatasync(this.fd, (error) => {
      if (this.inFlight !== batch) return; // close() already synced and delivered these
      this.inFlight = null;
      this.syncing = false;
      for (const { records, onDurable } of batch) onDurable(records, error);
      this.rotateIfDue();
      if (this.waiting.length > 0) this.startSync();
    });
  }

  /** Synchronously makes everything written durable and delivers what was waiting for it. */
  private syncNow(): void {
    if (this.fd === null) return;
    let error: Error | null = null;
    try {
      fs.fdatasyncSync(this.fd);
    } catch (caught) {
      error = caught as Error;
    }
    const batches = [...(this.inFlight ?? []), ...this.waiting.splice(0)];
    this.inFlight = null;
    this.syncing = false;
    for (const { records, onDurable } of batches) onDurable(records, error);
  }

  /** Rotation waits for in-flight syncs: their file descriptor must stay open until they end. */
  private rotateIfDue(): void {
    if (this.syncing || this.size < this.limits.maxBytes) return;
    this.syncNow();
    this.rotate();
  }

  /** Newest first. Reads the files (bounded by rotation), newest file first. */
  query(query: LedgerQuery = {}): LedgerRecord[] {
    const limit = query.limit ?? Infinity;
    const found: LedgerRecord[] = [];
    for (const file of this.files()) {
      const records = this.readFile(file, false).reverse();
      for (const record of records) {
        if (query.since && Date.parse(record.time) < query.since.getTime()) return found;
        if (query.interface && record.interface !== query.interface) continue;
        if (query.feature && record.feature !== query.feature) continue;
        if (query.kind && record.kind !== query.kind) continue;
        found.push(record);
        if (found.length >= limit) return found;
      }
    }
    return found;
  }

  /** Syncs and delivers whatever is pending, then closes. */
  close(): void {
    this.syncNow();
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  /** Active file first, then .1, .2, ... (newest to oldest). */
  private files(): string[] {
    const files = [this.activePath];
    for (let index = 1; index <= this.limits.keepFiles; index++) {
      const file = `${this.activePath}.${index}`;
      if (fs.existsSync(file)) files.push(file);
    }
    return files;
  }

  private readFile(file: string, collectWarnings: boolean): LedgerRecord[] {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      return [];
    }
    const records: LedgerRecord[] = [];
    const lines = text.split('\n');
    lines.forEach((line, index) => {
      if (line === '') return;
      try {
        records.push(JSON.parse(line) as LedgerRecord);
      } catch {
        if (collectWarnings) {
          const torn = index === lines.length - 1 || (index === lines.length - 2 && lines[lines.length - 1] === '');
          this.loadWarnings.push(`${file}:${index + 1}: skipped a ${torn ? 'torn last' : 'malformed'} line (${line.length} bytes)`);
        }
      }
    });
    return records;
  }

  private sealTornTail(): void {
    if (this.size === 0 || this.fd === null) return;
    const last = Buffer.alloc(1);
    const reader = fs.openSync(this.activePath, 'r');
    try {
      fs.readSync(reader, last, 0, 1, this.size - 1);
    } finally {
      fs.closeSync(reader);
    }
    if (last[0] !== 0x0a) {
      fs.writeSync(this.fd, '\n');
      fs.fdatasyncSync(this.fd);
      this.size += 1;
    }
  }

  private lastRecordSeq(): number {
    for (const file of this.files()) {
      const records = this.readFile(file, file === this.activePath);
      const last = records[records.length - 1];
      if (last && typeof last.seq === 'number') return last.seq;
    }
    return 0;
  }

  private rotate(): void {
    this.close();
    const oldest = `${this.activePath}.${this.limits.keepFiles}`;
    if (this.limits.keepFiles === 0) fs.rmSync(this.activePath, { force: true });
    else {
      fs.rmSync(oldest, { force: true });
      for (let index = this.limits.keepFiles - 1; index >= 1; index--) {
        const from = `${this.activePath}.${index}`;
        if (fs.existsSync(from)) fs.renameSync(from, `${this.activePath}.${index + 1}`);
      }
      fs.renameSync(this.activePath, `${this.activePath}.1`);
    }
    this.fd = fs.openSync(this.activePath, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o640);
    this.size = 0;
    const dir = fs.openSync(this.dir, 'r');
    try {
      fs.fsyncSync(dir);
    } finally {
      fs.closeSync(dir);
    }
  }
}
