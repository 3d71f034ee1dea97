/**
 * What the ledger keeps in memory: the most recent records (bounded), so that `drift` queries
 * are answered without touching the disk in the common case, and the last recorded active state
 * of each interface's features, so that start-up can tell a drift made while the daemon was
 * down from a first enforcement.
 */
import type { LedgerRecord } from './record';

/** Recent records kept in memory; deeper queries read the files. */
export const RECENT_RECORDS = 20_000;
/** Interface × feature pairs remembered; the least recently recorded is forgotten first. */
export const MAX_REMEMBERED_STATES = 100_000;

export interface RecordedState {
  active: 'on' | 'off';
  seq: number;
  time: string;
}

/** The state a feature was in after the recorded action: set as wanted, or left as found. */
function activeAfter(record: LedgerRecord): 'on' | 'off' | null {
  if (record.action === 'enforced') return record.expected ?? null;
  return record.observed ?? null;
}

export class RecentHistory {
  /** Oldest first. */
  private records: LedgerRecord[] = [];
  private readonly states = new Map<string, RecordedState>();
  /** True while `records` holds every record that exists (nothing older was dropped or left unread). */
  complete = true;

  constructor(private readonly capacity = RECENT_RECORDS) {}

  /** In sequence order, oldest first. */
  add(record: LedgerRecord): void {
    this.records.push(record);
    // Trimmed in steps, not one shift per record.
    if (this.records.length > this.capacity * 1.25) {
      this.records = this.records.slice(this.records.length - this.capacity);
      this.complete = false;
    }
    this.noteState(record);
  }

  /** Forget the records (not the states): they no longer exist on disk (`keep: 0` rotation). */
  clearRecords(): void {
    this.records = [];
    this.complete = true;
  }

  get oldestSeq(): number | null {
    return this.records[0]?.seq ?? null;
  }

  /** Newest first. */
  *newestFirst(): Generator<LedgerRecord> {
    for (let index = this.records.length - 1; index >= 0; index--) yield this.records[index] as LedgerRecord;
  }

  lastState(iface: string, feature: string): RecordedState | null {
    return this.states.get(stateKey(iface, feature)) ?? null;
  }

  private noteState(record: LedgerRecord): void {
    if (record.interface === undefined || record.feature === undefined) return;
    const active = activeAfter(record);
    if (active === null) return;
    const key = stateKey(record.interface, record.feature);
    this.states.delete(key); // re-inserted last: Map order is the eviction order
    this.states.set(key, { active, seq: record.seq, time: record.time });
    if (this.states.size > MAX_REMEMBERED_STATES) {
      const oldest = this.states.keys().next();
      if (!oldest.done) this.states.delete(oldest.value);
    }
  }
}

function stateKey(iface: string, feature: string): string {
  return `${iface}\u0000${feature}`;
}
