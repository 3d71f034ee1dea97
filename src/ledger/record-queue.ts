/**
 * Records on their way to the ledger: collected through the current synchronous stretch of work
 * and written with one fdatasync, and only then handed on (logged, counted, streamed), so nothing
 * is reported that a crash could lose.
 *
 * A pass (start-up over thousands of links, reload, resync, sweep, enforce) writes ahead: before
 * each batch's requests go out, its intents are made durable (intend(); one fdatasync, which also
 * covers the records written before), so a crash mid-pass leaves every change it made on disk,
 * as a record or as an intent the next start records (intents.ts). Its records then need no sync
 * of their own until the pass ends. Records of other work (a drift, a hot-plug) are synced
 * every FLUSH_BATCH_RECORDS as they come, and at the end of each stretch.
 */
import { OffloaddError } from '../errors';
import { WRITE_AHEAD_TRIGGERS, type ChangeIntent } from './intents';
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
  /** Waiting records that no intent covers (they are synced every FLUSH_BATCH_RECORDS). */
  private uncovered = 0;
  private flushQueued = false;
  /** The intents counter a flush's sync will clear up to (a later flush need not ask again). */
  private clearing = -1;
  /** Made once: a closure per queued flush would be an allocation per check. */
  private readonly flushLater = (): void => this.flush();

  constructor(
    private readonly ledger: Ledger,
    private readonly observer: RecordQueueObserver,
  ) {}

  /** Before a batch's changes are asked of the kernel: a pass's are made durable first. */
  intend(changes: readonly ChangeIntent[]): void {
    const ahead = changes.filter((change) => WRITE_AHEAD_TRIGGERS.has(change.trigger));
    if (ahead.length > 0) this.ledger.intend(ahead);
  }

  add(records: NewRecord[]): void {
    if (records.length === 0) return;
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as NewRecord;
      this.waiting.push(record);
      if (!WRITE_AHEAD_TRIGGERS.has(record.trigger)) this.uncovered++;
    }
    if (this.uncovered >= FLUSH_BATCH_RECORDS) {
      this.write(true); // within a stretch: its intents stay until the stretch's flush
      return;
    }
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushLater);
    }
  }

  /**
   * At the end of a stretch of work: 'sync' waits for the fdatasync (stop, --once), 'async' syncs
   * on the thread pool. Once durable, the intents of the stretch are no longer needed (the same
   * sync covers both).
   */
  flush(wait: 'async' | 'sync' = 'async'): void {
    this.flushQueued = false;
    const intents = this.ledger.intentsWritten;
    const clearIntents = (durable: boolean): void => {
      if (durable) this.ledger.intentsDurable(intents);
    };
    if (this.write(wait === 'sync', clearIntents)) {
      this.clearing = intents;
      return;
    }
    // Nothing to write: once what was written before is durable (a sync may be running). A
    // synchronous flush leaves that to the ledger's close(), which follows it.
    if (wait === 'async' && this.ledger.intentsPending && this.clearing !== intents) {
      this.clearing = intents;
      this.ledger.whenDurable((error) => clearIntents(error === null));
    }
  }

  /** Appends what waits (false: nothing waited); `onDone` hears whether the records became durable. */
  private write(sync: boolean, onDone: (durable: boolean) => void = () => undefined): boolean {
    this.uncovered = 0;
    if (this.waiting.length === 0) return false;
    const records = this.waiting.splice(0);
    this.ledger.append(
      records,
      (written, error) => {
        if (error instanceof OffloaddError && error.code === HELD) this.observer.onHeld(written, error);
        else if (error) this.observer.onSyncFailed(written, error);
        this.observer.onDurable(written);
        onDone(error === null);
      },
      sync,
    );
    return true;
  }
}
