/**
 * Records stamped but not yet in the ledger file, while it cannot be written: held in memory and,
 * so that a disk full until exit loses nothing, also written into the reserve (reserve.ts), which
 * needs no new space. The next start takes back what the reserve kept. When to write them to the
 * ledger is the Ledger's (ledger.ts).
 */
import type { OffloaddError } from '../errors';
import type { LedgerRecord } from './record';
import { LedgerReserve } from './reserve';

/**
 * Records held in memory only (not in the reserve) while the ledger cannot be written; beyond
 * this the oldest of those are dropped.
 */
export const MAX_HELD_RECORDS = 10_000;

export class HeldRecords {
  /** In sequence order. */
  private held: LedgerRecord[] = [];
  /** held[0, inReserve) are also in the reserve file. */
  private inReserve = 0;
  private reserve: LedgerReserve | null = null;
  /** The reserve was found full in this episode (said once). */
  private reserveFullSaid = false;
  /** Dropped in this episode (the first drop is said). */
  private dropped = 0;

  constructor(
    readonly reservePath: string,
    /** The ledger file they are held back from (for messages). */
    private readonly ledgerPath: string,
    private readonly warn: (message: string) => void,
  ) {}

  get records(): readonly LedgerRecord[] {
    return this.held;
  }

  get count(): number {
    return this.held.length;
  }

  /** Every held record is in the reserve too. */
  get allInReserve(): boolean {
    return this.inReserve === this.held.length;
  }

  /**
   * Opens the reserve (allocating it) and holds what the last run kept there and the ledger's
   * files lack (numbered above `lastSeqInFiles`); returns those, in sequence order.
   */
  open(lastSeqInFiles: number): readonly LedgerRecord[] {
    try {
      this.reserve = LedgerReserve.open(this.reservePath);
    } catch (error) {
      const hint = (error as OffloaddError).hint;
      this.warn(
        `${(error as Error).message}${hint ? ` (${hint})` : ''}; records the ledger cannot take are held in memory only`,
      );
      return [];
    }
    if (this.reserve.problem !== null) this.warn(this.reserve.problem);
    if (this.reserve.skippedLines > 0)
      this.warn(`${this.reservePath}: skipped ${this.reserve.skippedLines} torn lines`);
    // A crash between writing them to the ledger and clearing the reserve leaves some in both.
    const pending = this.reserve.found.filter((record) => record.seq > lastSeqInFiles);
    if (pending.length === 0) {
      if (!this.reserve.empty) this.clearReserve();
      return [];
    }
    pending.sort((a, b) => a.seq - b.seq);
    this.held = pending;
    this.inReserve = pending.length;
    this.warn(
      `${pending.length} records the last run could not write to the ledger (#${(pending[0] as LedgerRecord).seq} to ` +
        `#${(pending[pending.length - 1] as LedgerRecord).seq}) were kept in ${this.reservePath}; writing them to the ledger`,
    );
    return pending;
  }

  /** Holds `records` after those held already: into the reserve if it takes them, else in memory (bounded). */
  hold(records: readonly LedgerRecord[]): void {
    this.held.push(...records);
    this.keepInReserve();
    const memoryOnly = this.held.length - this.inReserve;
    if (memoryOnly > MAX_HELD_RECORDS) {
      const dropped = memoryOnly - MAX_HELD_RECORDS;
      this.held.splice(this.inReserve, dropped);
      if (this.dropped === 0)
        this.warn(
          `ledger unwritable for too long: dropping the oldest held records (only in the log now); keeping the newest ${MAX_HELD_RECORDS}`,
        );
      this.dropped += dropped;
    }
  }

  /**
   * The held records are in the ledger file now: forgotten here, and once `syncLedger()` made them
   * durable there, the reserve is emptied. Returns how many there were.
   */
  written(syncLedger: () => void): number {
    const written = this.held.length;
    this.held = [];
    if (this.inReserve > 0) {
      try {
        syncLedger();
      } catch (error) {
        // Left in the reserve: the next start skips those the ledger has by their numbers.
        this.warn(`could not sync ${this.ledgerPath} (${(error as Error).message})`);
        return written;
      }
      this.clearReserve();
    }
    return written;
  }

  /** Writing works again: a later drop is said again. */
  endEpisode(): void {
    this.dropped = 0;
  }

  /** At exit: what is still held goes to the reserve if it fits, and where each record is left is said. */
  close(lastSeq: number): void {
    if (this.held.length > 0) {
      this.keepInReserve();
      const first = (this.held[0] as LedgerRecord).seq;
      if (this.inReserve > 0) {
        this.warn(
          `${this.inReserve} records (#${first} to #${(this.held[this.inReserve - 1] as LedgerRecord).seq}) could not be ` +
            `written to ${this.ledgerPath}: they are kept in ${this.reservePath} and written to the ledger at the next start`,
        );
      }
      const memoryOnly = this.held.slice(this.inReserve);
      if (memoryOnly.length > 0) {
        this.warn(
          `${memoryOnly.length} records (#${(memoryOnly[0] as LedgerRecord).seq} to #${lastSeq}) could not be written ` +
            `to ${this.ledgerPath} nor to its reserve: they are only in the log`,
        );
      }
    }
    this.reserve?.close();
    this.reserve = null;
  }

  /** Held records not yet in the reserve go there (all or none, in order). */
  private keepInReserve(): void {
    if (this.reserve === null || this.reserveFullSaid || this.inReserve >= this.held.length) return;
    let kept = 0;
    try {
      kept = this.reserve.keep(this.held.slice(this.inReserve));
    } catch (error) {
      this.warn(`could not write to ${this.reservePath} (${(error as Error).message})`);
      return;
    }
    this.inReserve += kept;
    if (kept === 0 && !this.reserveFullSaid) {
      this.reserveFullSaid = true;
      this.warn(
        `${this.reservePath} is full: records from #${(this.held[this.inReserve] as LedgerRecord).seq} on are held in memory only`,
      );
    }
  }

  private clearReserve(): void {
    this.inReserve = 0;
    this.reserveFullSaid = false;
    try {
      this.reserve?.clear();
    } catch (error) {
      this.warn(`could not clear ${this.reservePath} (${(error as Error).message})`);
    }
  }
}
