/**
 * Write-ahead intents: STATE_DIR/ledger.intent holds, for the batch of changes a pass is about to
 * ask the kernel for, one line per feature it will change, made durable (one fdatasync) before
 * the requests go out. The records of their outcomes are written afterwards and synced with the
 * next batch's intents or at the end of the pass; once they are durable the intents are cut away.
 *
 * So a process killed between a change and its record's sync still leaves a durable trace of the
 * change: the next start finds intents whose outcome is not in the ledger and records them then.
 * Only passes write ahead (start-up, reload, resync, sweep, enforce), where one sync covers a
 * whole batch; a correction that answers a link event is written right after it and synced on the
 * thread pool, as writing ahead would put a sync (about 1 ms) before every correction.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openRegular, readBackwardSync, syncDirectory } from './files';
import type { DurableCallback } from './group-sync';
import {
  parseRecord,
  type CheckedInterfaceFields,
  type FeatureFields,
  type LedgerRecord,
  type NewRecord,
  type RecordEvent,
  type Trigger,
} from './record';

/** Triggers whose changes are written ahead: passes over many links, where the sync is shared by a batch. */
export const WRITE_AHEAD_TRIGGERS: ReadonlySet<Trigger> = new Set<Trigger>([
  'start',
  'reload',
  'resync',
  'sweep',
  'manual',
]);

/** One feature a check is about to change, with what its record would say. */
export interface ChangeIntent extends CheckedInterfaceFields, FeatureFields {
  event: Extract<RecordEvent, 'initial' | 'drift'>;
}

/** An intent as kept in the file: `after` is the last sequence number handed out before it. */
export interface StoredIntent extends ChangeIntent {
  after: number;
}

export const RECOVERED_REASON =
  'offloadd stopped after asking for this change and before recording its outcome; recorded at the next start from its intent';

/** The intents of `intents` whose outcome no record numbered after them names (same ifindex and feature). */
export function unresolved(intents: readonly StoredIntent[], records: readonly LedgerRecord[]): StoredIntent[] {
  const outcomes = new Map<string, number>(); // ifindex/feature → newest seq
  for (const record of records) {
    if (record.ifindex === undefined || record.feature === undefined) continue;
    const key = `${record.ifindex}/${record.feature}`;
    outcomes.set(key, Math.max(outcomes.get(key) ?? 0, record.seq));
  }
  return intents.filter((intent) => (outcomes.get(`${intent.ifindex}/${intent.feature}`) ?? 0) <= intent.after);
}

/** The record an unresolved intent becomes. */
export function recoveredRecord(intent: StoredIntent): NewRecord {
  const { after: _after, ...change } = intent;
  return { ...change, action: 'enforced', reason: RECOVERED_REASON };
}

function parseIntent(line: string): StoredIntent | null {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  const intent = value as Partial<StoredIntent> | null;
  if (
    typeof intent !== 'object' ||
    intent === null ||
    typeof intent.after !== 'number' ||
    typeof intent.ifindex !== 'number' ||
    typeof intent.feature !== 'string' ||
    typeof intent.interface !== 'string' ||
    (intent.event !== 'initial' && intent.event !== 'drift')
  )
    return null;
  return intent as StoredIntent;
}

/** The intent file: appended and synced before a batch's requests, cut to nothing once their records are durable. */
export class IntentLog {
  private fd: number | null = null;
  /** Intents written since the log was opened (a counter, not a length: clear() compares it). */
  written = 0;
  private clearedAt = 0;

  constructor(readonly file: string) {}

  /** Intents were written that are not cleared yet. */
  get pending(): boolean {
    return this.written > this.clearedAt;
  }

  /** What the last run left (a clean stop leaves nothing), and how many lines were not intents. */
  readLeft(): { intents: StoredIntent[]; skipped: number } {
    let opened;
    try {
      opened = openRegular(this.file, fs.constants.O_RDONLY);
    } catch (error) {
      if ((error as { cause?: NodeJS.ErrnoException }).cause?.code === 'ENOENT') return { intents: [], skipped: 0 };
      throw error;
    }
    const intents: StoredIntent[] = [];
    let skipped = 0;
    try {
      readBackwardSync(opened.fd, opened.stat.size, (line) => {
        if (line === '') return true;
        const intent = parseIntent(line);
        if (intent) intents.push(intent);
        else skipped++;
        return true;
      });
    } finally {
      fs.closeSync(opened.fd);
    }
    return { intents: intents.reverse(), skipped };
  }

  /** Appends and syncs (throws when it cannot: the caller says so and goes on). */
  write(intents: readonly ChangeIntent[], after: number): void {
    this.fd ??= this.open();
    const bytes = Buffer.from(intents.map((intent) => `${JSON.stringify({ after, ...intent })}\n`).join(''));
    for (let done = 0; done < bytes.length;) done += fs.writeSync(this.fd, bytes, done);
    fs.fdatasyncSync(this.fd);
    this.written += intents.length;
  }

  /** Kept across runs (emptied, never removed): only its first creation pays for syncing the directory. */
  private open(): number {
    const flags = fs.constants.O_WRONLY | fs.constants.O_APPEND;
    try {
      return openRegular(this.file, flags).fd;
    } catch (error) {
      if ((error as { cause?: NodeJS.ErrnoException }).cause?.code !== 'ENOENT') throw error;
    }
    const { fd } = openRegular(this.file, flags | fs.constants.O_CREAT);
    try {
      syncDirectory(path.dirname(this.file)); // so that a crash cannot lose the new file's name with its intents
    } catch {
      // the intents are still synced; only a power cut before the directory's next sync could lose the name
    }
    return fd;
  }

  /**
   * The outcomes of the first `upTo` intents are durable: when no intent came after them, the
   * file is cut to nothing. Not synced: intents that survive a crash are matched with their
   * records at the next start and dropped.
   */
  clear(upTo: number): void {
    if (upTo !== this.written || upTo === this.clearedAt) return;
    this.clearedAt = upTo;
    if (this.fd !== null) fs.ftruncateSync(this.fd, 0);
    else fs.truncateSync(this.file, 0);
  }

  /** What the last run left is recorded now (or was resolved): cut the file to nothing, durably. */
  discardLeft(): void {
    let opened;
    try {
      opened = openRegular(this.file, fs.constants.O_WRONLY);
    } catch (error) {
      if ((error as { cause?: NodeJS.ErrnoException }).cause?.code === 'ENOENT') return;
      throw error;
    }
    try {
      fs.ftruncateSync(opened.fd, 0);
      fs.fdatasyncSync(opened.fd);
    } finally {
      fs.closeSync(opened.fd);
    }
  }

  /**
   * At open, what the last run left: intents whose outcome no record names (the process was
   * killed between the change and its record's sync) are recorded now through `recordNow`, which
   * appends and syncs them and calls `onDurable` before it returns. Then the file is emptied,
   * unless those records did not become durable (the intents stay for the next start).
   *
   * @param recordsSince the records numbered after `after`: in the ledger's files and held
   */
  recoverLeft(
    recordsSince: (after: number) => readonly LedgerRecord[],
    recordNow: (records: NewRecord[], onDurable: DurableCallback) => void,
    warn: (message: string) => void,
  ): void {
    let left;
    try {
      left = this.readLeft();
    } catch (error) {
      warn(`${this.file} cannot be read (${(error as Error).message}); changes a crash interrupted may lack a record`);
      return;
    }
    if (left.skipped > 0) warn(`${this.file}: skipped ${left.skipped} torn lines`);
    if (left.intents.length > 0) {
      const after = Math.min(...left.intents.map((intent) => intent.after));
      const missing = unresolved(left.intents, recordsSince(after));
      if (missing.length > 0) {
        let durable = false;
        recordNow(missing.map(recoveredRecord), (records, error) => {
          durable = error === null;
          warn(
            `${records.length} changes offloadd asked for before it stopped had no record: recorded from ${this.file} ` +
              `(#${(records[0] as LedgerRecord).seq} to #${(records[records.length - 1] as LedgerRecord).seq})`,
          );
        });
        if (!durable) return; // kept for the next start
      }
    }
    if (left.intents.length > 0 || left.skipped > 0) {
      try {
        this.discardLeft();
      } catch (error) {
        warn(`could not empty ${this.file} (${(error as Error).message})`);
      }
    }
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

/** Records numbered above `after` in the ledger's files (newest file first), for matching intents. */
export function recordsAfter(files: readonly string[], after: number): LedgerRecord[] {
  const found: LedgerRecord[] = [];
  for (const file of files) {
    let opened;
    try {
      opened = openRegular(file, fs.constants.O_RDONLY);
    } catch {
      continue;
    }
    let reachedOlder = false;
    try {
      readBackwardSync(opened.fd, opened.stat.size, (line) => {
        if (line === '') return true;
        const parsed = parseRecord(line);
        if ('problem' in parsed) return true;
        if (parsed.record.seq <= after) {
          reachedOlder = true;
          return false;
        }
        found.push(parsed.record);
        return true;
      });
    } catch {
      // unreadable: its records count as missing, so an intent is recorded rather than lost
    } finally {
      fs.closeSync(opened.fd);
    }
    if (reachedOlder) break;
  }
  return found;
}
