/**
 * What the ledger keeps in memory: the most recent records (bounded), so that `drift` queries
 * are answered without touching the disk in the common case. (What each interface's features
 * were last seen as, across restarts, is last-seen.ts's job.)
 */
import type { LedgerRecord } from './record';

/** Recent records kept in memory; deeper queries read the files. */
export const RECENT_RECORDS = 20_000;
export class RecentHistory {
  /** Oldest first. */
  private records: LedgerRecord[] = [];
  /** True while `records` holds every record that exists (nothing older was dropped or left unread). */
  complete = true;
  /** Changes whenever records are dropped: older records read before then may no longer join on without a gap. */
  generation = 0;

  constructor(private readonly capacity = RECENT_RECORDS) {}

  /** In sequence order, oldest first. */
  add(record: LedgerRecord): void {
    this.records.push(record);
    // Trimmed in steps, not one shift per record.
    if (this.records.length > this.capacity * 1.25) {
      this.records = this.records.slice(this.records.length - this.capacity);
      this.complete = false;
      this.generation++;
    }
  }

  /**
   * Records older than every one held (oldest first), read from the files; `complete` when they
   * are all the files hold. The newest `capacity` are kept.
   */
  addOlder(records: LedgerRecord[], complete: boolean): void {
    this.records = records.length === 0 ? this.records : [...records, ...this.records];
    this.complete = complete;
    if (this.records.length > this.capacity) {
      this.records = this.records.slice(this.records.length - this.capacity);
      this.complete = false;
    }
  }

  /** Forget the records: they no longer exist on disk (`keep: 0` rotation). */
  clearRecords(): void {
    this.records = [];
    this.complete = true;
    this.generation++;
  }

  get oldestSeq(): number | null {
    return this.records[0]?.seq ?? null;
  }

  /** Newest first. */
  *newestFirst(): Generator<LedgerRecord> {
    for (let index = this.records.length - 1; index >= 0; index--) yield this.records[index] as LedgerRecord;
  }
}
