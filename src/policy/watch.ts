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
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PolicyError } from '../errors';
import { policyFileChecksum } from './policy-file';

/** A burst of events within this time is one update (kubelet's swap is a handful of events). */
export const POLICY_WATCH_DEBOUNCE_MS = 100;

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
    this.hooks.report('info', `Watching ${this.policyPath} for changes (reloads by itself, as on SIGHUP)`);
    // A change between loading the policy and arming the watch would otherwise go unseen.
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
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
      this.hooks.report('warning', `Cannot watch ${dir} (${(error as Error).message})`);
      return null;
    }
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
            this.hooks.report(
              'warning',
              `${this.policyDir} is missing; keeping the running policy, watching ${dir} for it`,
            );
          }
          return;
        }
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

  private schedule(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.check();
    }, this.debounceMs);
  }

  private check(): void {
    if (this.stopped) return;
    const touched = this.touched;
    this.touched = false;
    const armed = this.armed;
    if (!armed || armed.dir !== this.policyDir || identityOf(armed.dir) !== armed.identity) {
      this.arm();
      if (this.armed?.dir === this.policyDir && armed?.dir !== this.policyDir) {
        this.hooks.report('info', `${this.policyDir} is back; watching it again`);
      }
    }
    this.armTarget();
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
