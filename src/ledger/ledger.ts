/**
 * The drift ledger: append-only JSON lines under the state directory, made durable (fdatasync)
 * before a record is reported anywhere else, rotated by size, and read back after restarts.
 *
 *   STATE_DIR/ledger.jsonl       the active file
 *   STATE_DIR/ledger.jsonl.1..N  older files, .1 newest
 *   STATE_DIR/ledger.seq         the last sequence number, saved at rotation and at exit
 *   STATE_DIR/ledger.reserve     space allocated at start for records the ledger cannot take
 *   STATE_DIR/ledger.intent      a pass's changes, synced before they are made (intents.ts)
 *
 * The ledger never stands between the daemon and enforcement: a ledger that cannot be opened or
 * written (full disk, read-only, a FIFO or a link at its path) is reported through the observer
 * and in `health`, records are held in memory and written once writing works again. So that a
 * disk full until exit loses nothing, held records are also written into the reserve (reserve.ts),
 * which needs no new space; the next start replays them into the ledger, numbers unchanged.
 * A failed or partial append is cut back to the last good length, so no record is ever glued
 * onto a torn line; a torn line left by a crash is terminated by the next append.
 */
import * as path from 'node:path';
import { OffloaddError } from '../errors';
import type { LedgerLimits } from '../policy/types';
import { ActiveFile } from './active-file';
import { LedgerFileSet } from './file-set';
import { readSeqFile, syncDirectory, writeSeqFile } from './files';
import { HistoryIndex } from './history-index';
import { IntentLog, recordsAfter, type ChangeIntent } from './intents';
import { GroupSync, type DurableCallback } from './group-sync';
import { HeldRecords } from './held-records';
import type { LedgerQuery, LedgerQueryResult } from './query';
import type { LedgerRecord, NewRecord } from './record';

export type { DurableCallback } from './group-sync';
export type { LedgerQuery, LedgerQueryResult } from './query';

const ACTIVE_FILE = 'ledger.jsonl';
const SEQ_FILE = 'ledger.seq';
const RESERVE_FILE = 'ledger.reserve';
const INTENT_FILE = 'ledger.intent';
/** While unwritable, how often writing the held records is retried without new records. */
export const RETRY_INTERVAL_MS = 1000;
/** The error code records are delivered with when they could not be written (the observer already heard why). */
export const HELD = 'ERR_LEDGER_HELD';
export interface LedgerHealth {
  path: string;
  writable: boolean;
  /** ISO time of the first failure of the current episode, null while writable. */
  unwritableSince: string | null;
  /** Why, while not writable. */
  problem: string | null;
  /** Records stamped but not yet written (kept in memory until writing works again). */
  heldRecords: number;
}

export interface LedgerObserver {
  warning(message: string): void;
  /** Writing stopped working (once per episode). */
  unwritable(health: LedgerHealth): void;
  /** Writing works again; `written` held records were written. */
  writable(health: LedgerHealth, unwritableSince: string, written: number): void;
}

const SILENT: LedgerObserver = { warning: () => undefined, unwritable: () => undefined, writable: () => undefined };

export class Ledger {
  private readonly groupSync = new GroupSync(
    () => this.active.descriptor,
    () => this.rotateIfDue(),
  );
  private seq = 0;
  private readonly held: HeldRecords;
  /** The highest sequence number found in the ledger's files at start. */
  private lastSeqInFiles = 0;
  private unwritableSince: Date | null = null;
  private problem: string | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private rotationRetryAt = 0;
  private closed = true;
  private readonly intents: IntentLog;
  private readonly fileSet: LedgerFileSet;
  /** The newest records in memory: built once, after READY or at the first query. */
  private readonly index: HistoryIndex;
  private readonly active: ActiveFile;
  /** Writing intents failed in this episode (said once). */
  private intentProblemSaid = false;

  constructor(
    readonly dir: string,
    private limits: LedgerLimits,
    private readonly observer: LedgerObserver = SILENT,
  ) {
    const warn = (message: string): void => this.observer.warning(message);
    this.active = new ActiveFile(path.join(dir, ACTIVE_FILE), (fd) => this.groupSync.retire(fd), warn);
    this.intents = new IntentLog(path.join(dir, INTENT_FILE));
    this.held = new HeldRecords(path.join(dir, RESERVE_FILE), this.activePath, warn);
    this.fileSet = new LedgerFileSet(this.activePath, () => this.limits.keepFiles, warn);
    this.index = new HistoryIndex(this.fileSet, () => this.closed, warn);
  }

  get activePath(): string {
    return this.active.path;
  }

  get reservePath(): string {
    return this.held.reservePath;
  }

  private get seqPath(): string {
    return path.join(this.dir, SEQ_FILE);
  }

  /** Last sequence number handed out (0 when none ever was). */
  get lastSeq(): number {
    return this.seq;
  }

  get health(): LedgerHealth {
    return {
      path: this.activePath,
      writable: this.unwritableSince === null,
      unwritableSince: this.unwritableSince?.toISOString() ?? null,
      problem: this.problem,
      heldRecords: this.held.count,
    };
  }

  /**
   * Reads only what enforcement needs (the sequence number to continue from, the newest file's
   * tail, the reserve), then opens the active file for appending: the history index is built
   * later (buildIndex()), so a long history never delays READY. Never throws for the files: an
   * unusable ledger is reported (observer, `health`) and the daemon runs on.
   */
  open(): void {
    this.closed = false;
    this.readTail();
    this.takeBackReserve();
    if (this.openActive() && this.held.count > 0) this.writeOut([]);
    this.recoverIntents();
  }

  /**
   * Before a batch of changes is asked of the kernel: its intents are made durable (one
   * fdatasync, which also covers every record written before). A failure is said once and the
   * changes go ahead: the ledger never stands between the daemon and enforcement.
   */
  intend(changes: readonly ChangeIntent[]): void {
    if (this.closed || changes.length === 0) return;
    try {
      this.intents.write(changes, this.seq);
      this.intentProblemSaid = false;
    } catch (error) {
      if (this.intentProblemSaid) return;
      this.intentProblemSaid = true;
      this.observer.warning(
        `could not write ${this.intents.file} (${(error as Error).message}); a crash in the middle of a pass may leave changes without a record`,
      );
    }
  }

  /** Intents written so far (a counter for intentsDurable()). */
  get intentsWritten(): number {
    return this.intents.written;
  }

  /** Intents are written whose records are not known to be durable yet. */
  get intentsPending(): boolean {
    return this.intents.pending;
  }

  /**
   * The records of the first `upTo` intents are durable: the intents can go, if none came since
   * and no record is held (a held record may yet be lost; its intent stands for it).
   */
  intentsDurable(upTo: number): void {
    if (this.held.count > 0) return;
    try {
      this.intents.clear(upTo);
    } catch (error) {
      this.observer.warning(`could not empty ${this.intents.file} (${(error as Error).message})`);
    }
  }

  /** Calls `onDurable` once everything written before is durable (with the sync's error, if any). */
  whenDurable(onDurable: (error: Error | null) => void): void {
    if (this.closed) return;
    this.groupSync.add({ records: [], barrier: true, onDurable: (_records, error) => onDurable(error), error: null });
    this.groupSync.kick();
  }

  /**
   * Builds the history index from the files, newest first, in slices of one chunk that yield to
   * the event loop between them, so link events and corrections go first. Called after READY;
   * a query that comes earlier starts it and waits for it. Idempotent.
   */
  buildIndex(): Promise<void> {
    return this.index.build();
  }

  setLimits(limits: LedgerLimits): void {
    this.limits = limits;
  }

  /**
   * Stamps and writes the records now, and hands them to `onDurable` once an fdatasync that
   * covers them has completed (on libuv's thread pool, so link events are not held up; one sync
   * covers every batch written before it started; batches are handed back in order). With
   * `sync`, the fdatasync runs now and `onDurable` is called before this returns.
   */
  append(records: readonly NewRecord[], onDurable: DurableCallback, sync = false): void {
    if (records.length === 0) return;
    if (this.closed) {
      onDurable(
        records.map((record, index) => ({ seq: -1 - index, time: new Date().toISOString(), ...record })),
        new Error('the ledger is closed'),
      );
      return;
    }
    this.checkActiveFile();
    const time = new Date().toISOString();
    const stamped = records.map((record): LedgerRecord => ({ seq: ++this.seq, time, ...record }));
    for (let i = 0; i < stamped.length; i++) this.index.add(stamped[i] as LedgerRecord);
    this.groupSync.add({ records: stamped, onDurable, error: this.writeOut(stamped) });
    if (sync) {
      this.groupSync.syncNow();
      this.rotateIfDue();
    } else {
      this.groupSync.kick();
    }
  }

  /** Newest first: from memory, and from the files (backwards, in chunks, stopping at the limit) only when needed. */
  query(query: LedgerQuery = {}): Promise<LedgerQueryResult> {
    return this.index.query(query);
  }

  /** Syncs and delivers whatever is pending, tries once more to write held records, saves the sequence number, closes. */
  close(): void {
    this.stopRetryTimer();
    if (this.closed) return;
    this.closed = true;
    if (this.held.count > 0) this.writeOut([]);
    const syncError = this.groupSync.syncNow();
    if (this.held.count === 0 && syncError === null) this.intentsDurable(this.intents.written);
    this.intents.close();
    this.held.close(this.seq);
    try {
      if (this.seq > 0) writeSeqFile(this.seqPath, this.seq);
    } catch {
      // best effort: the ledger's own last record usually carries the number too
    }
    this.active.closeFile();
    this.groupSync.closeRetired();
  }

  // --- writing -----------------------------------------------------------------------------

  /** Returns null when written (with anything held before), else the error; the records are then held. */
  private writeOut(records: LedgerRecord[]): Error | null {
    if (this.active.descriptor === null && !this.openActive()) return this.hold(records, null);
    const pending = this.held.count > 0 ? [...this.held.records, ...records] : records;
    try {
      let lines = '';
      for (let i = 0; i < pending.length; i++) lines += `${JSON.stringify(pending[i])}\n`;
      this.active.append(lines);
    } catch (error) {
      return this.hold(records, error as Error);
    }
    const heldWritten = this.held.written(() => this.active.syncNow());
    if (this.unwritableSince !== null) this.markWritable(heldWritten);
    return null;
  }

  private hold(records: LedgerRecord[], error: Error | null): Error {
    this.held.hold(records);
    if (error) this.markUnwritable(error);
    return new OffloaddError(
      HELD,
      `not written to the ledger (${this.problem ?? 'unwritable'}); held until it can be written` +
        (this.held.allInReserve ? ` (kept in ${this.reservePath} meanwhile)` : ''),
    );
  }

  private markUnwritable(error: unknown): void {
    const hint = (error as { hint?: string }).hint;
    this.problem = `${(error as Error).message}${hint ? ` (${hint})` : ''}`;
    if (this.unwritableSince !== null) return;
    this.unwritableSince = new Date();
    this.observer.unwritable(this.health);
    this.startRetryTimer();
  }

  private markWritable(written: number): void {
    const since = (this.unwritableSince as Date).toISOString();
    this.unwritableSince = null;
    this.problem = null;
    this.held.endEpisode();
    this.stopRetryTimer();
    this.observer.writable(this.health, since, written);
  }

  private startRetryTimer(): void {
    if (this.retryTimer) return;
    this.retryTimer = setInterval(() => {
      this.checkActiveFile();
      if (this.writeOut([]) !== null) return;
      this.groupSync.add({ records: [], onDurable: () => undefined, error: null }); // a sync for what was held
      this.groupSync.kick();
    }, RETRY_INTERVAL_MS);
    this.retryTimer.unref();
  }

  private stopRetryTimer(): void {
    if (this.retryTimer) clearInterval(this.retryTimer);
    this.retryTimer = null;
  }

  /** Opens (creating) the active file. On failure the ledger is marked unwritable and false returned. */
  private openActive(): boolean {
    try {
      this.seq = Math.max(this.seq, this.active.open());
      return true;
    } catch (error) {
      this.markUnwritable(error);
      return false;
    }
  }

  /** A ledger deleted or replaced under the daemon is noticed at the next append and reopened. */
  private checkActiveFile(): void {
    if (this.active.replaced()) this.openActive();
  }

  /** Rotation waits for in-flight syncs: their file descriptor must stay open until they end. */
  private rotateIfDue(): void {
    const { descriptor, size } = this.active;
    if (this.groupSync.syncing || descriptor === null || size < Math.max(this.limits.maxBytes, this.rotationRetryAt))
      return;
    this.groupSync.syncNow();
    this.rotate();
  }

  private rotate(): void {
    try {
      writeSeqFile(this.seqPath, this.seq); // before the active file goes: `keep: 0` leaves no record to continue from
    } catch (error) {
      this.observer.warning(`could not save the sequence number in ${this.seqPath} (${(error as Error).message})`);
    }
    try {
      this.fileSet.rotate();
    } catch (error) {
      this.rotationRetryAt = this.active.size + this.limits.maxBytes;
      this.observer.warning(
        `could not rotate ${this.activePath} (${(error as Error).message}); appending to it beyond max_bytes, retried later`,
      );
      return;
    }
    this.rotationRetryAt = 0;
    this.active.closeFile();
    if (this.limits.keepFiles === 0) this.index.clear();
    this.openActive();
    try {
      syncDirectory(this.dir);
    } catch (error) {
      this.observer.warning(`could not sync ${this.dir} after rotating (${(error as Error).message})`);
    }
  }

  // --- reading -----------------------------------------------------------------------------

  /**
   * Before READY: the sequence number to continue from (ledger.seq, and the newest record in the
   * files), and the active file's length, which the index build reads no further than.
   */
  private readTail(): void {
    const tail = this.fileSet.readTail();
    let saved: number | null = null;
    try {
      saved = readSeqFile(this.seqPath);
    } catch (error) {
      this.observer.warning(`${this.seqPath}: ${(error as Error).message}; continuing from the records' numbers`);
    }
    this.lastSeqInFiles = tail.newestSeq;
    this.seq = Math.max(this.seq, tail.newestSeq, saved ?? 0);
    this.index.opened(tail.newestSeq, tail.activeBytes);
  }

  /** What the last run kept in the reserve, not in the files: held again, to be written first. */
  private takeBackReserve(): void {
    const kept = this.held.open(this.lastSeqInFiles);
    for (const record of kept) this.index.add(record);
    if (kept.length > 0) this.seq = Math.max(this.seq, (kept[kept.length - 1] as LedgerRecord).seq);
  }

  /** Changes a crash left without a record are recorded from their intents (see IntentLog.recoverLeft). */
  private recoverIntents(): void {
    this.intents.recoverLeft(
      (after) => [...recordsAfter(this.fileSet.files(), after), ...this.held.records],
      (records, onDurable) => this.append(records, onDurable, true),
      (message) => this.observer.warning(message),
    );
  }
}
