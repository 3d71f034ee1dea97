/**
 * The history index: the newest records in memory (RecentHistory), filled from the ledger's files
 * once (after READY, or at the first query that comes earlier) in slices that let the event loop
 * run, and queries answered from it, reading the files only for what it does not hold.
 */
import type { LedgerFileSet } from './file-set';
import { RecentHistory, RECENT_RECORDS } from './history';
import { matches, SinceScan, type LedgerQuery, type LedgerQueryResult } from './query';
import type { LedgerRecord } from './record';

export class HistoryIndex {
  private readonly history = new RecentHistory(RECENT_RECORDS);
  private building: Promise<void> | null = null;
  private built = false;
  /** The files' records are numbered this or lower; those above were appended or replayed since open. */
  private lastSeqInFiles = 0;
  /** The active file's length at open: the build reads no further (past it, records appended since; before it, a torn line said at open). */
  private activeBytesAtOpen = 0;
  private diskScans: Promise<void> = Promise.resolve();

  /**
   * @param stopped true once the ledger is closed: a build under way stops
   * @param warn where a failed build is said
   */
  constructor(
    private readonly fileSet: LedgerFileSet,
    private readonly stopped: () => boolean,
    private readonly warn: (message: string) => void,
  ) {}

  /** At open, before any record is added: until the index is built, older records are only in the files. */
  opened(lastSeqInFiles: number, activeBytesAtOpen: number): void {
    this.lastSeqInFiles = lastSeqInFiles;
    this.activeBytesAtOpen = activeBytesAtOpen;
    this.history.complete = false;
  }

  /** A record newer than every one held (appended, or replayed from the reserve). */
  add(record: LedgerRecord): void {
    this.history.add(record);
  }

  /** The records no longer exist on disk (`keep: 0` rotation). */
  clear(): void {
    this.history.clearRecords();
  }

  /**
   * Builds the index from the files, newest first, in slices of one chunk that yield to the
   * event loop between them, so link events and corrections go first. Idempotent.
   */
  build(): Promise<void> {
    this.building ??= this.load().catch((error: unknown) => {
      this.warn(`could not build the history index (${(error as Error).message}); queries read the files`);
    });
    return this.building;
  }

  /** Newest first: from memory, and from the files (backwards, in chunks, stopping at the limit) only when needed. */
  async query(query: LedgerQuery): Promise<LedgerQueryResult> {
    if (!this.built) await this.build();
    const limit = query.limit ?? Infinity;
    const found: LedgerRecord[] = [];
    const since = new SinceScan(query.since);
    for (const record of this.history.newestFirst()) {
      const verdict = since.judge(record);
      if (verdict === 'end') return { records: found, warnings: [] };
      if (verdict === 'take') found.push(...since.release(), ...(matches(record, query) ? [record] : []));
      else if (verdict === 'maybe' && matches(record, query)) since.holdBack(record);
      if (found.length >= limit) return { records: found.slice(0, limit), warnings: [] };
    }
    if (this.history.complete) return { records: found, warnings: [] };
    // Deeper: one scan of the files at a time, so concurrent deep queries queue instead of multiplying the work.
    const below = this.history.oldestSeq ?? Number.MAX_SAFE_INTEGER;
    const warnings: string[] = [];
    const scan = this.diskScans.then(() => this.fileSet.scan(query, since, below, limit, found, warnings));
    this.diskScans = scan.catch(() => undefined);
    await scan;
    return { records: found, warnings };
  }

  /** The newest RECENT_RECORDS valid records of the files into memory, below those already there. */
  private async load(): Promise<void> {
    const generation = this.history.generation;
    const read = await this.fileSet.readNewest(
      this.lastSeqInFiles,
      RECENT_RECORDS,
      this.activeBytesAtOpen,
      this.stopped,
    );
    if (read === null) return;
    // A `keep: 0` rotation meanwhile removed what was read: those records no longer exist.
    if (this.history.generation === generation) this.history.addOlder(read.newestFirst.reverse(), read.complete);
    this.built = true;
  }
}
