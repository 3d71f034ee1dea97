/**
 * `offloadd --watch-policy`: notices when the policy file's content changes and asks for a reload
 * (the caller's, which rejects a bad policy and keeps the running one, as on SIGHUP).
 *
 * Why the directory is watched, not the file: kubelet mounts a ConfigMap as a directory whose
 * `policy.yaml` is a symbolic link through `..data` to `..<timestamp>/policy.yaml`; an update writes
 * a new timestamped directory and rename()s a new `..data` link over the old one, so the file an
 * inotify watch on `policy.yaml` holds never changes (it is deleted with its old directory).
 * Configuration tools either rewrite the file in place or rename a temporary file over it. Every
 * one of these shows as an event in the directory holding the policy path; after a short quiet
 * time (a burst of events is one update) the path is resolved afresh and the content's sha256
 * compared with the running policy's `checksum`, so a touch, a chmod or an unrelated file in the
 * directory reloads nothing.
 *
 * When the path is a symbolic link to a file in a directory elsewhere (a configuration tool's
 * checkout, say), that directory is watched too, since an edit there changes nothing next to the
 * link; the ConfigMap's own `..<timestamp>` directories, below the watched one, need no watch.
 *
 * The directory itself may vanish and come back (a volume remounted, a tool replacing the whole
 * directory): then the nearest existing ancestor is watched until it reappears, and the watch
 * moves back to it; the running policy stays in force meanwhile.
 *
 * A watch that cannot be armed (inotify watches used up, say) is not the end of watching: the file
 * is polled instead, every POLICY_POLL_FIRST_MS doubling to POLICY_POLL_MAX_MS, each poll also
 * trying to arm the watch again, and the log says so once each way. Events keep coming on a busy
 * directory, so the quiet time is bounded: a check runs at the latest POLICY_WATCH_MAX_WAIT_MS
 * after the first event of a burst.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { monotonicMs } from '../clock';
import { PolicyError } from '../errors';
import { policyFileChecksum } from './policy-file';

/** A burst of events within this time is one update (kubelet's swap is a handful of events). */
export const POLICY_WATCH_DEBOUNCE_MS = 100;
/** However busy the directory, a change is checked at most this long after the first event. */
export const POLICY_WATCH_MAX_WAIT_MS = 1000;
/** Polling while no watch could be armed: the first interval, doubling up to the second. */
export const POLICY_POLL_FIRST_MS = 1000;
export const POLICY_POLL_MAX_MS = 30_000;

export interface PolicyWatchHooks {
  /** sha256 of the policy in force (Policy.checksum). */
  runningChecksum(): string;
  /** The file's content differs from the running policy's: reload it (errors are the hook's to handle). */
  reload(): void;
  /** Something the operator should know (the watch itself never throws). */
  report(level: 'info' | 'warning' | 'debug', message: string): void;
}

/** The errno behind a PolicyError from reading, if any. */
function readErrno(error: unknown): string | undefined {
  const cause = error instanceof PolicyError ? error.cause : error;
  return (cause as NodeJS.ErrnoException | undefined)?.code;
}

interface Armed {
  watcher: fs.FSWatcher;
  dir: string;
  /** dev:ino of `dir` when armed: a directory replaced under the same name is a different one. */
  identity: string;
}

function identityOf(dir: string): string | null {
  try {
    const stats = fs.statSync(dir);
    return stats.isDirectory() ? `${stats.dev}:${stats.ino}` : null;
  } catch {
    return null;
  }
}

export class PolicyWatch {
  private armed: Armed | null = null;
  /** The directory the policy path resolves into, when outside the policy's own directory. */
  private target: Armed | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Monotonic ms of the first event not yet checked, for POLICY_WATCH_MAX_WAIT_MS. */
  private burstStart: number | null = null;
  /** Polling (no watch on the policy's directory): the timer and its current interval. */
  private pollTimer: NodeJS.Timeout | null = null;
  private pollMs = POLICY_POLL_FIRST_MS;
  /** What was last said about where the watch is, so a busy directory does not repeat it. */
  private lastWhere: string | null = null;
  /** What the last check saw (a checksum, or why the file could not be read): act on changes only. */
  private lastSeen: string;
  private stopped = false;
  /** The directory reported an event since the last check (the start-up check has none). */
  private touched = false;
  private readonly policyDir: string;

  constructor(
    readonly policyPath: string,
    private readonly hooks: PolicyWatchHooks,
    private readonly debounceMs = POLICY_WATCH_DEBOUNCE_MS,
  ) {
    this.policyPath = path.resolve(policyPath);
    this.policyDir = path.dirname(this.policyPath);
    this.lastSeen = hooks.runningChecksum();
  }

  start(): void {
    this.arm();
    this.armTarget();
    this.hooks.report(
      'info',
      this.armed === null
        ? `Polling ${this.policyPath} for changes, since no watch could be armed (reloads by itself, as on SIGHUP)`
        : `Watching ${this.policyPath} for changes (reloads by itself, as on SIGHUP)`,
    );
    // A change between loading the policy and arming the watch would otherwise go unseen.
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = null;
    this.armed?.watcher.close();
    this.armed = null;
    this.target?.watcher.close();
    this.target = null;
  }

  private watchDir(dir: string, identity: string): Armed | null {
    try {
      const watcher = fs.watch(dir, { persistent: false }, () => {
        this.touched = true;
        this.schedule();
      });
      // The directory being removed, or the inotify limit: re-arm on the next check.
      watcher.on('error', () => this.schedule());
      return { watcher, dir, identity };
    } catch (error) {
      this.say(
        'warning',
        `cannot:${dir}`,
        `Cannot watch ${dir} (${(error as Error).message}); polling the policy instead and retrying the watch`,
      );
      return null;
    }
  }

  /** Reports a message once while `where` stays the same. */
  private say(level: 'info' | 'warning', where: string, message: string): void {
    if (where === this.lastWhere) return;
    this.lastWhere = where;
    this.hooks.report(level, message);
  }

  /** While no watch is armed: check (and try to arm) again after a growing interval. */
  private pollWhileUnarmed(): void {
    if (this.stopped) return;
    if (this.armed !== null) {
      if (this.pollTimer) clearTimeout(this.pollTimer);
      this.pollTimer = null;
      this.pollMs = POLICY_POLL_FIRST_MS;
      return;
    }
    if (this.pollTimer) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      this.pollMs = Math.min(this.pollMs * 2, POLICY_POLL_MAX_MS);
      this.check();
    }, this.pollMs);
    this.pollTimer.unref();
  }

  /** Watches the policy's directory, or while it is missing its nearest existing ancestor. */
  private arm(): void {
    this.armed?.watcher.close();
    this.armed = null;
    for (let dir = this.policyDir; ; dir = path.dirname(dir)) {
      const identity = identityOf(dir);
      if (identity !== null) {
        this.armed = this.watchDir(dir, identity);
        if (this.armed) {
          if (dir !== this.policyDir) {
            this.say(
              'warning',
              `ancestor:${dir}`,
              `${this.policyDir} is missing; keeping the running policy, watching ${dir} for it`,
            );
          } else if (this.lastWhere !== null && this.lastWhere !== `dir:${dir}`) {
            this.say(
              'info',
              `dir:${dir}`,
              this.lastWhere.startsWith('ancestor:')
                ? `${dir} is back; watching it again`
                : `Watching ${dir} again; polling stopped`,
            );
          } else {
            this.lastWhere = `dir:${dir}`;
          }
          return;
        }
        return; // a watch that cannot be armed here will not be on an ancestor either: poll
      }
      if (dir === path.dirname(dir)) return;
    }
  }

  /** (Re)watches the directory the policy path resolves into, if it lies outside the policy's own. */
  private armTarget(): void {
    let dir: string | null;
    try {
      dir = path.dirname(fs.realpathSync(this.policyPath));
    } catch {
      dir = null; // missing: check() says so
    }
    if (dir !== null && (dir === this.policyDir || dir.startsWith(`${this.policyDir}${path.sep}`))) dir = null;
    const identity = dir === null ? null : identityOf(dir);
    if (this.target && this.target.dir === dir && this.target.identity === identity) return;
    this.target?.watcher.close();
    this.target = dir !== null && identity !== null ? this.watchDir(dir, identity) : null;
  }

  /** Debounced, but a burst of events never holds the check back beyond POLICY_WATCH_MAX_WAIT_MS. */
  private schedule(): void {
    if (this.stopped) return;
    const now = monotonicMs();
    this.burstStart ??= now;
    const left = this.burstStart + POLICY_WATCH_MAX_WAIT_MS - now;
    if (this.timer) {
      if (left <= this.debounceMs) return; // the pending check is due soon enough
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.burstStart = null;
        this.check();
      },
      Math.max(0, Math.min(this.debounceMs, left)),
    );
  }

  private check(): void {
    if (this.stopped) return;
    const touched = this.touched;
    this.touched = false;
    const armed = this.armed;
    if (!armed || armed.dir !== this.policyDir || identityOf(armed.dir) !== armed.identity) {
      this.arm();
    }
    this.armTarget();
    this.pollWhileUnarmed();
    let seen: string;
    try {
      seen = policyFileChecksum(this.policyPath);
    } catch (error) {
      const errno = readErrno(error);
      if (errno === 'ENOENT' || errno === 'ENOTDIR') {
        if (this.lastSeen !== 'missing') {
          this.hooks.report('warning', `${this.policyPath} is missing; keeping the running policy until it is back`);
        }
        this.lastSeen = 'missing';
        return;
      }
      // Unreadable, too large, not a file: let the reload reject it (and say why), once per cause.
      seen = `unreadable: ${(error as Error).message}`;
    }
    if (seen === this.lastSeen) {
      if (touched)
        this.hooks.report('debug', `${this.policyPath}: its directory changed, its content did not; nothing to reload`);
      return;
    }
    this.lastSeen = seen;
    if (seen === this.hooks.runningChecksum()) {
      this.hooks.report('debug', `${this.policyPath} changed back to the running policy; nothing to reload`);
      return;
    }
    this.hooks.report('info', `${this.policyPath} changed; reloading the policy`);
    this.hooks.reload();
  }
}
