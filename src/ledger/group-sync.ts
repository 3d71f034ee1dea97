/**
 * Group commit for the ledger's appends: the Ledger writes each batch of records at once, and
 * the batch waits here for an fdatasync that covers it. One sync, on libuv's thread pool so link
 * events are not held up, covers every batch written before it started; batches are handed back
 * in order, with their write's error if it failed, else the sync's.
 */
import * as fs from 'node:fs';
import type { LedgerRecord } from './record';

/** Called once records are durable; `error` if they are not (write or sync failed; they may be held in memory). */
export type DurableCallback = (records: LedgerRecord[], error: Error | null) => void;

export interface PendingBatch {
  records: LedgerRecord[];
  /** Called also without records (a barrier: "everything written before is durable"). */
  barrier?: boolean;
  onDurable: DurableCallback;
  /** Set when the write itself failed: delivered with this error, whatever the sync says. */
  error: Error | null;
}

export class GroupSync {
  /** Written, waiting for the next sync. */
  private waiting: PendingBatch[] = [];
  /** Covered by the sync now running. */
  private inFlight: PendingBatch[] | null = null;
  private running = false;
  /** Descriptors replaced while a sync ran on them: closed once it ends. */
  private retired: number[] = [];

  /**
   * @param currentFd the file the batches were written to; null: nothing to sync, they are delivered at once
   * @param afterSync called after a background sync delivered its batches, before the next one starts
   */
  constructor(
    private readonly currentFd: () => number | null,
    private readonly afterSync: () => void,
  ) {}

  /** A background sync runs: its descriptor must stay open until it ends. */
  get syncing(): boolean {
    return this.running;
  }

  /** A batch written: it waits for the next sync (kick() or syncNow()). */
  add(batch: PendingBatch): void {
    this.waiting.push(batch);
  }

  /** Starts a background sync for the batches waiting, unless one runs (its end starts the next). */
  kick(): void {
    if (this.running || this.waiting.length === 0) return;
    const fd = this.currentFd();
    if (fd === null) {
      deliver(this.waiting.splice(0), null);
      return;
    }
    const batch = this.waiting.splice(0);
    this.inFlight = batch;
    this.running = true;
    fs.fdatasync(fd, (error) => {
      if (this.inFlight !== batch) return; // syncNow() already synced and delivered these
      this.inFlight = null;
      this.running = false;
      if (this.retired.length > 0) for (const retired of this.retired.splice(0)) fs.closeSync(retired);
      deliver(batch, error);
      this.afterSync();
      this.kick();
    });
  }

  /** Synchronously makes everything written durable and delivers what was waiting for it. */
  syncNow(): Error | null {
    let error: Error | null = null;
    const fd = this.currentFd();
    if (fd !== null) {
      try {
        fs.fdatasyncSync(fd);
      } catch (caught) {
        error = caught as Error;
      }
    }
    const batches = [...(this.inFlight ?? []), ...this.waiting.splice(0)];
    this.inFlight = null;
    this.running = false;
    deliver(batches, error);
    return error;
  }

  /** Closes a descriptor no longer written to: now, or once the sync running on it ends. */
  retire(fd: number): void {
    if (this.running) this.retired.push(fd);
    else fs.closeSync(fd);
  }

  /** At close, after syncNow(): closes the descriptors a sync still held. */
  closeRetired(): void {
    for (const fd of this.retired.splice(0)) fs.closeSync(fd);
  }
}

function deliver(batches: PendingBatch[], syncError: Error | null): void {
  // Indexed: once per sync, in code V8 rarely optimises, where a for-of allocates as it goes.
  for (let i = 0; i < batches.length; i++) {
    const { records, barrier, onDurable, error } = batches[i] as PendingBatch;
    if (records.length > 0 || barrier) onDurable(records, error ?? syncError);
  }
}
