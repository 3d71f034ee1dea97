/**
 * Records on their way to the ledger: collected through the current synchronous stretch of work
 * and written with one fdatasync per batch, and only then handed on (logged, counted, streamed),
 * so nothing is reported that a crash could lose. A long synchronous pass (start-up over
 * thousands of links) writes every FLUSH_BATCH_RECORDS records as it goes, so a stop or a crash
 * mid-pass keeps every change made so far.
 */
import { OffloaddError } from '../errors';
import { HELD, type Ledger } from './ledger';
import type { LedgerRecord, NewRecord } from './record';

export const FLUSH_BATCH_RECORDS = 128;

export interface RecordQueueObserver {
  /** In order, once on disk (or held in memory while the ledger cannot be written). */
  onDurable(records: LedgerRecord[]): void;
  /** The sync failed: the records are written but may not survive a crash. */
  onSyncFailed(records: LedgerRecord[], error: Error): void;
  /** The ledger cannot be written now: the records are kept in memory (the ledger says so). */
  onHeld(records: LedgerRecord[], error: OffloaddError): void;
}

export class RecordQueue {
  private readonly waiting: NewRecord[] = [];
  private flushQueued = false;

  constructor(
    private readonly ledger: Ledger,
    private readonly observer: RecordQueueObserver,
  ) {}

  add(records: NewRecord[]): void {
    if (records.length === 0) return;
    this.waiting.push(...records);
    if (this.waiting.length >= FLUSH_BATCH_RECORDS) {
      this.flush('sync');
      return;
    }
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** 'sync' waits for the fdatasync (stop, --once, a full batch); 'async' syncs on the thread pool. */
  flush(wait: 'async' | 'sync' = 'async'): void {
    this.flushQueued = false;
    if (this.waiting.length === 0) return;
    const records = this.waiting.splice(0);
    this.ledger.append(
      records,
      (durable, error) => {
        if (error instanceof OffloaddError && error.code === HELD) this.observer.onHeld(durable, error);
        else if (error) this.observer.onSyncFailed(durable, error);
        this.observer.onDurable(durable);
      },
      wait === 'sync',
    );
  }
}
