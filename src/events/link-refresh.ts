/**
 * Full re-reads of every link: after lost events (resync) and periodically as a safety net
 * (sweep). Lost-event notices that arrive within RESYNC_MIN_INTERVAL_MS of the previous re-read
 * are coalesced into one later re-read, so a receive buffer that keeps overflowing under churn
 * costs one dump per interval, not one per notice. A dump can fail under heavy churn (the kernel
 * keeps interrupting it); then it is retried with a growing delay, since until it succeeds the
 * daemon does not know what it missed.
 */
import { monotonicMs } from '../clock';
import { dumpLinks } from './link-events';
import type { LinkMessage } from './link-message';

/** At most one full re-read per interval while the receive buffer keeps overflowing. */
export const RESYNC_MIN_INTERVAL_MS = 1000;
/** A failed dump is retried after 100 ms, 200 ms, ... up to 5 s. */
const RESYNC_RETRY_FIRST_MS = 100;
const RESYNC_RETRY_MAX_MS = 5000;

export interface LinkRefreshHandlers {
  /** Every link, after lost events; `notices`: how many lost-event notices this re-read covers. */
  onResync(links: LinkMessage[], reason: string, notices: number): void;
  onSweep(links: LinkMessage[]): void;
  /** A dump failed (it is retried): for logs. */
  onDumpFailed(what: 'resync' | 'sweep', error: Error, retryInMs: number | null): void;
}

export class LinkRefresh {
  private resyncTimer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  /** Lost-event notices not yet covered by a re-read, and the latest one's wording. */
  private notices = 0;
  private reason = '';
  private lastResyncAt = -Infinity;

  constructor(
    private readonly handlers: LinkRefreshHandlers,
    private readonly dump: () => LinkMessage[] = dumpLinks,
  ) {}

  /** Events were lost: re-read every link now, or at the end of the current interval. */
  eventsLost(reason: string): void {
    this.notices++;
    this.reason = reason;
    if (this.resyncTimer) return; // one is already due; it will cover this notice too
    const wait = this.lastResyncAt + RESYNC_MIN_INTERVAL_MS - monotonicMs();
    if (wait <= 0) this.resync(0);
    else this.resyncTimer = setTimeout(() => this.resync(0), wait);
  }

  /** Re-read everything every `intervalSec` (0: never). */
  setSweepInterval(intervalSec: number): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    if (intervalSec <= 0) return;
    this.sweepTimer = setInterval(() => {
      try {
        this.handlers.onSweep(this.dump());
      } catch (error) {
        this.handlers.onDumpFailed('sweep', error as Error, null);
      }
    }, intervalSec * 1000);
    this.sweepTimer.unref();
  }

  stop(): void {
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.resyncTimer = null;
    this.sweepTimer = null;
  }

  private resync(attempt: number): void {
    this.resyncTimer = null;
    let links: LinkMessage[];
    try {
      links = this.dump();
    } catch (error) {
      const delayMs = Math.min(RESYNC_RETRY_FIRST_MS * 2 ** attempt, RESYNC_RETRY_MAX_MS);
      this.handlers.onDumpFailed('resync', error as Error, delayMs);
      this.resyncTimer = setTimeout(() => this.resync(attempt + 1), delayMs);
      return;
    }
    const notices = this.notices;
    const reason = notices > 1 ? `${this.reason} (${notices} lost-event notices since the last re-read)` : this.reason;
    this.notices = 0;
    this.lastResyncAt = monotonicMs();
    this.handlers.onResync(links, reason, notices);
  }
}
