/**
 * Wiring only: kernel events → interface facts → policy match → reconcile → ledger / logs /
 * status → API. Each stage lives in its own folder; this file connects them and owns the
 * daemon's lifecycle (start, reload, sweep, stop) and systemd notifications.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { OffloaddError, PolicyError } from './errors';
import { dumpLinks, LinkEvents, DEFAULT_RECEIVE_BUFFER_BYTES } from './events/link-events';
import { InterfaceFactsSource } from './facts/interface-facts';
import { LastSeenStore } from './ledger/last-seen';
import { HELD, Ledger, type LedgerObserver } from './ledger/ledger';
import { StateDirLock, StateDirRefused } from './ledger/state-dir';
import type { LedgerRecord, NewRecord } from './ledger/record';
import { linkFields, type Log, type LogFields } from './observe/log';
import { describeRecord } from './observe/describe';
import { SdNotify } from './observe/sd-notify';
import { loadDefaultPolicy, loadPolicyFile } from './policy/load';
import type { Policy } from './policy/types';
import { FeatureTable } from './reconcile/feature-state';
import { Reconciler, type InterfaceStatus } from './reconcile/reconciler';

export const DEFAULT_POLICY_PATH = '/etc/offloadd/policy.yaml';
export const DEFAULT_STATE_DIR = '/var/lib/offloadd';
/** At most one full re-read per interval while the receive buffer keeps overflowing. */
const RESYNC_MIN_INTERVAL_MS = 1000;
/** A failed dump is retried after 100 ms, 200 ms, ... up to 5 s. */
const RESYNC_RETRY_FIRST_MS = 100;
const RESYNC_RETRY_MAX_MS = 5000;
/** How stale last-seen.json may get while running (it is also written at stop). */
const LAST_SEEN_SAVE_INTERVAL_MS = 10_000;
/**
 * Records waiting for the ledger beyond this are written and synced at once, even inside a long
 * synchronous pass (start-up over thousands of links): a stop or crash mid-pass keeps them.
 */
export const FLUSH_BATCH_RECORDS = 128;

export interface DaemonOptions {
  /** Explicit policy file; null = DEFAULT_POLICY_PATH if it exists, else the shipped default. */
  policyPath: string | null;
  sysfsRoot: string;
  stateDir: string;
  receiveBufferBytes?: number;
}

export interface DaemonCounters {
  resyncs: number;
  drifts: number;
  corrections: number;
  unenforceable: number;
  failures: number;
  reloads: number;
}

/** Reads and validates the policy the options point at. Throws PolicyError. */
export function readPolicy(policyPath: string | null, table: FeatureTable): Policy {
  if (policyPath !== null) return loadPolicyFile(policyPath, table.names);
  if (fs.existsSync(DEFAULT_POLICY_PATH)) return loadPolicyFile(DEFAULT_POLICY_PATH, table.names);
  return loadDefaultPolicy(table.names);
}

export class Daemon extends EventEmitter {
  readonly table = FeatureTable.fromKernel();
  readonly ledger: Ledger;
  readonly counters: DaemonCounters = { resyncs: 0, drifts: 0, corrections: 0, unenforceable: 0, failures: 0, reloads: 0 };
  readonly startedAt = new Date();
  readonly notify = new SdNotify();
  private readonly reconciler: Reconciler;
  private readonly lastSeen: LastSeenStore;
  private lastSeenDirty = false;
  private lastSeenFailing = false;
  private lastSeenTimer: NodeJS.Timeout | null = null;
  private readonly events: LinkEvents;
  private readonly unflushed: NewRecord[] = [];
  private flushQueued = false;
  private sweepTimer: NodeJS.Timeout | null = null;
  private resyncTimer: NodeJS.Timeout | null = null;
  /** Lost-event notices not yet covered by a re-read, and the latest one's wording. */
  private resyncNotices = 0;
  private resyncReason = '';
  private lastResyncAt = 0;
  private stateLock: StateDirLock | null = null;
  private stateDirOpened = false;

  constructor(private readonly options: DaemonOptions, readonly log: Log, policy?: Policy) {
    super();
    const initialPolicy = policy ?? readPolicy(options.policyPath, this.table);
    this.ledger = new Ledger(options.stateDir, initialPolicy.ledger, this.ledgerObserver());
    this.lastSeen = new LastSeenStore(options.stateDir);
    this.notify.onHealthChange = (error, socket) => {
      if (error) this.log.log('warning', `Cannot notify systemd through ${socket} (${error.message}): it may not see readiness, reloads or watchdog pings`);
      else this.log.log('info', `Notifying systemd through ${socket} works again`);
    };
    const facts = new InterfaceFactsSource(options.sysfsRoot, (message, link, error) => {
      this.log.log('warning', `${link.name}: ${message}: ${error.message}`, { INTERFACE: link.name, IFINDEX: link.ifindex, ERRNO: (error as { errno?: number }).errno });
    });
    this.reconciler = new Reconciler(initialPolicy, this.table, facts, {
      onRecords: (records) => this.queueRecords(records),
      onChecked: (status, trigger, result) => {
        if (this.log.isEnabled('debug')) {
          this.log.log('debug', `${status.name}: checked (${trigger}), ${status.compliant ? 'compliant' : 'not compliant'}, ${Math.round(result.durationUs)} µs`, linkFields(status.facts));
        }
        this.lastSeenDirty = true;
        this.emit('checked', status, trigger);
      },
      onReleased: (ifindex, name, why) => {
        this.log.log(why === 'deleted' ? 'debug' : 'info',
          why === 'deleted' ? `${name}: removed, forgotten` : `${name}: no longer matches any rule; left as it is, no longer managed`,
          { INTERFACE: name, IFINDEX: ifindex });
        this.emit('released', ifindex, name, why);
      },
      onProblem: (level, message, factsOfLink, error) => {
        if (level === 'error') this.counters.failures++;
        const fields: LogFields = { ...linkFields(factsOfLink), ERRNO: (error as { errno?: number })?.errno };
        if (level === 'error') this.log.event('enforceFailed', 'error', `${factsOfLink.name ?? '?'}: ${message}`, fields);
        else this.log.log('debug', `${factsOfLink.name ?? '?'}: ${message}`, fields);
      },
    }, (name, mac) => this.lastSeen.take(name, mac));
    this.events = new LinkEvents(
      {
        onLinks: (links) => this.reconciler.handleLinks(links),
        onResync: (reason) => this.resync(reason),
        onHandlerError: (error) => this.log.log('crit', `Internal error while handling link events: ${(error as Error).stack ?? String(error)}`),
      },
      options.receiveBufferBytes ?? DEFAULT_RECEIVE_BUFFER_BYTES,
    );
  }

  private loadLastSeen(): void {
    const warning = this.lastSeen.load();
    if (warning) this.log.log('warning', `Last seen state: ${warning}`);
  }

  /** Writes last-seen.json if anything was checked since the last write; never throws. */
  private saveLastSeen(): void {
    if (!this.lastSeenDirty) return;
    this.lastSeenDirty = false;
    try {
      this.lastSeen.save(this.reconciler.lastSeen());
      if (this.lastSeenFailing) this.log.log('info', `Last seen state: writing ${this.lastSeen.file} works again`);
      this.lastSeenFailing = false;
    } catch (error) {
      if (!this.lastSeenFailing) {
        this.log.log('warning', `Last seen state: cannot write ${this.lastSeen.file} (${(error as Error).message}); changes made while offloadd is stopped may be recorded as initial, not drift`);
      }
      this.lastSeenFailing = true;
    }
  }

  get policy(): Policy {
    return this.reconciler.currentPolicy;
  }

  /** Subscribe, then dump and reconcile everything; returns once every link has been checked. */
  start(): void {
    this.openStateDir();
    this.logPolicy(this.policy, 'loaded');
    this.loadLastSeen();
    this.events.open(); // before the dump, so nothing between the two is missed
    this.reconciler.loadAll(dumpLinks(), 'start');
    this.flushRecords();
    this.saveLastSeen();
    this.lastSeenTimer = setInterval(() => this.saveLastSeen(), LAST_SEEN_SAVE_INTERVAL_MS);
    this.lastSeenTimer.unref();
    this.scheduleSweep();
  }

  /** After start() and once the API listens: tell systemd (and whoever waits on the log). */
  announceReady(): void {
    const summary = this.summary();
    this.log.event('started', 'info', `Started: ${summary}; features via ${this.table.via}; netlink receive buffer ${this.events.grantedReceiveBufferBytes()} bytes`);
    this.notify.ready(summary);
    this.notify.startWatchdog();
  }

  /** One pass without subscribing (`--once`): returns the statuses. */
  runOnce(): InterfaceStatus[] {
    this.openStateDir();
    this.loadLastSeen();
    this.reconciler.loadAll(dumpLinks(), 'start');
    this.flushRecords('sync');
    this.saveLastSeen();
    return this.reconciler.statuses();
  }

  /**
   * Parses and validates first; a bad policy leaves the running one in force and throws. Every
   * failure is logged here, so a caller without a client to answer (SIGHUP) may drop it.
   */
  reload(policyPath: string | null = this.options.policyPath): Policy {
    this.notify.reloading();
    try {
      const policy = readPolicy(policyPath, this.table);
      this.counters.reloads++;
      this.ledger.setLimits(policy.ledger);
      this.reconciler.setPolicy(policy);
      this.flushRecords();
      this.logPolicy(policy, 'reloaded');
      this.scheduleSweep();
      return policy;
    } catch (error) {
      if (error instanceof PolicyError) {
        this.log.event('policyRejected', 'error', `Policy rejected, keeping the running one: ${error.toString()}`, {
          OFFLOADD_POLICY: error.file, CODE_LINE: error.position?.line,
        });
      } else {
        this.log.log('error', `Policy reload failed: ${(error as Error).stack ?? String(error)}`);
      }
      throw error;
    } finally {
      this.notify.ready(this.summary());
    }
  }

  enforce(ifindex: number | null): void {
    this.reconciler.enforce(ifindex);
    this.flushRecords();
  }

  statuses(): InterfaceStatus[] {
    return this.reconciler.statuses();
  }

  get reconcilerView(): Reconciler {
    return this.reconciler;
  }

  stop(): void {
    this.notify.stopping();
    this.notify.stopWatchdog();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    if (this.lastSeenTimer) clearInterval(this.lastSeenTimer);
    this.events.close();
    this.reconciler.stop();
    this.flushRecords('sync');
    this.saveLastSeen();
    this.log.event('stopping', 'info', 'Stopping');
    this.ledger.close(); // also delivers records whose sync was still running
    this.stateLock?.release();
  }

  /**
   * First thing, before any change (start() and runOnce() call it; call it earlier to put it
   * before other side effects): lock the state directory (refused when unsafe or held by another
   * daemon: throws StateDirRefused), then open the ledger. A ledger that cannot be used is not a
   * reason to leave interfaces out of policy: the daemon runs and says so.
   */
  openStateDir(): void {
    if (this.stateDirOpened) return;
    this.stateDirOpened = true;
    try {
      this.stateLock = StateDirLock.acquire(this.options.stateDir);
    } catch (error) {
      if (error instanceof StateDirRefused || !(error instanceof OffloaddError)) throw error;
      this.log.log('crit', `${error.message}; enforcing without a lock on it and without a ledger${error.hint ? ` (${error.hint})` : ''}`);
    }
    this.ledger.open();
  }

  private ledgerObserver(): LedgerObserver {
    return {
      warning: (message) => this.log.log('warning', `Ledger: ${message}`),
      unwritable: (health) => this.log.event('ledgerUnwritable', 'crit',
        `Ledger ${health.path} not writable: ${health.problem ?? 'unknown error'}; enforcement goes on, records are kept in memory and written when it works again`,
        { OFFLOADD_LEDGER: health.path }),
      writable: (health, since, written) => this.log.event('ledgerWritable', 'notice',
        `Ledger ${health.path} writable again (not writable since ${since}); ${written} held records written`,
        { OFFLOADD_LEDGER: health.path }),
    };
  }

  summary(): string {
    const { managed, compliant } = this.reconciler.counts();
    return `${managed} managed, ${compliant} compliant, ${this.counters.drifts} drifts`;
  }

  /**
   * Events were lost: re-read every link. Lost-event notices that arrive within
   * RESYNC_MIN_INTERVAL_MS of the previous re-read are coalesced into one later re-read (and one
   * record), so a receive buffer that keeps overflowing under churn costs one dump per interval,
   * not one per notice. A dump can fail under heavy churn (the kernel keeps interrupting it);
   * then it is retried with a growing delay, since until it succeeds the daemon does not know
   * what it missed.
   */
  private resync(reason: string): void {
    this.resyncNotices++;
    this.resyncReason = reason;
    if (this.resyncTimer) return; // one is already due; it will cover this notice too
    const wait = this.lastResyncAt + RESYNC_MIN_INTERVAL_MS - Date.now();
    if (wait <= 0) this.runResync(0);
    else this.resyncTimer = setTimeout(() => this.runResync(0), wait);
  }

  private runResync(attempt: number): void {
    this.resyncTimer = null;
    let links;
    try {
      links = dumpLinks();
    } catch (error) {
      const delayMs = Math.min(RESYNC_RETRY_FIRST_MS * 2 ** attempt, RESYNC_RETRY_MAX_MS);
      this.log.log('warning', `Could not re-read the links (${(error as Error).message}); retrying in ${delayMs} ms`);
      this.resyncTimer = setTimeout(() => this.runResync(attempt + 1), delayMs);
      return;
    }
    const notices = this.resyncNotices;
    const reason = notices > 1 ? `${this.resyncReason} (${notices} lost-event notices since the last re-read)` : this.resyncReason;
    this.resyncNotices = 0;
    this.lastResyncAt = Date.now();
    this.counters.resyncs++;
    this.reconciler.resync(links, reason, notices); // recorded, and so logged, as a resync record
  }

  private scheduleSweep(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    if (this.policy.sweepIntervalSec <= 0) return;
    this.sweepTimer = setInterval(() => {
      try {
        this.reconciler.sweep(dumpLinks());
      } catch (error) {
        this.log.log('error', `Safety sweep failed, will retry next period: ${(error as Error).message}`);
      }
    }, this.policy.sweepIntervalSec * 1000);
    this.sweepTimer.unref();
  }

  /**
   * Records are made durable in one fdatasync per batch of work (after the current synchronous
   * stretch), and only then logged and streamed: nothing is reported that a crash could lose.
   */
  private queueRecords(records: NewRecord[]): void {
    if (records.length === 0) return;
    this.unflushed.push(...records);
    if (this.unflushed.length >= FLUSH_BATCH_RECORDS) {
      this.flushRecords('sync');
      return;
    }
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flushRecords());
    }
  }

  private flushRecords(wait: 'async' | 'sync' = 'async'): void {
    this.flushQueued = false;
    if (this.unflushed.length === 0) return;
    const records = this.unflushed.splice(0);
    const onDurable = (durable: LedgerRecord[], error: Error | null): void => {
      if (error instanceof OffloaddError && error.code === HELD) this.log.log('debug', `${durable.length} records: ${error.message}`);
      else if (error) this.log.log('crit', `Could not sync the ledger (${error.message}); ${durable.length} records may not survive a crash`);
      for (const record of durable) this.report(record);
      if (this.notify.enabled) this.notify.status(this.summary());
    };
    this.ledger.append(records, onDurable, wait === 'sync');
  }

  private report(record: LedgerRecord): void {
    if (record.event === 'drift') this.counters.drifts++;
    if (record.action === 'enforced') this.counters.corrections++;
    if (record.event === 'unenforceable') this.counters.unenforceable++;
    // A refused write (EPERM, EBUSY) comes back as an outcome, not an exception: count it too.
    if (record.action === 'failed') this.counters.failures++;
    const description = describeRecord(record);
    this.log.event(description.message, description.level, description.text, description.fields);
    this.emit('record', record);
  }

  private logPolicy(policy: Policy, verb: string): void {
    this.log.event('policyLoaded', 'info', `Policy ${verb} from ${policy.path} (${policy.rules.length} rules, mode ${policy.mode}, sha256 ${policy.checksum.slice(0, 12)})`, {
      OFFLOADD_POLICY: policy.path, OFFLOADD_POLICY_SHA256: policy.checksum,
    });
    for (const warning of policy.warnings) {
      this.log.log('warning', `${policy.path}${warning.position ? `:${warning.position.line}:${warning.position.column}` : ''}: ${warning.message}`);
    }
  }
}
