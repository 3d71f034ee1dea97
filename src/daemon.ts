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
  private readonly events: LinkEvents;
  private readonly unflushed: NewRecord[] = [];
  private flushQueued = false;
  private sweepTimer: NodeJS.Timeout | null = null;
  private resyncTimer: NodeJS.Timeout | null = null;
  private stateLock: StateDirLock | null = null;
  private stateDirOpened = false;

  constructor(private readonly options: DaemonOptions, readonly log: Log, policy?: Policy) {
    super();
    const initialPolicy = policy ?? readPolicy(options.policyPath, this.table);
    this.ledger = new Ledger(options.stateDir, initialPolicy.ledger, this.ledgerObserver());
    const facts = new InterfaceFactsSource(options.sysfsRoot);
    this.reconciler = new Reconciler(initialPolicy, this.table, facts, {
      onRecords: (records) => this.queueRecords(records),
      onChecked: (status, trigger, result) => {
        if (this.log.isEnabled('debug')) {
          this.log.log('debug', `${status.name}: checked (${trigger}), ${status.compliant ? 'compliant' : 'not compliant'}, ${Math.round(result.durationUs)} µs`, linkFields(status.facts));
        }
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
    });
    this.events = new LinkEvents(
      {
        onLinks: (links) => this.reconciler.handleLinks(links),
        onResync: (reason) => this.resync(reason),
        onHandlerError: (error) => this.log.log('crit', `Internal error while handling link events: ${(error as Error).stack ?? String(error)}`),
      },
      options.receiveBufferBytes ?? DEFAULT_RECEIVE_BUFFER_BYTES,
    );
  }

  get policy(): Policy {
    return this.reconciler.currentPolicy;
  }

  /** Subscribe, then dump and reconcile everything; returns once every link has been checked. */
  start(): void {
    this.openStateDir();
    this.logPolicy(this.policy, 'loaded');
    this.events.open(); // before the dump, so nothing between the two is missed
    this.reconciler.loadAll(dumpLinks(), 'start');
    this.flushRecords();
    this.scheduleSweep();
  }

  /** After start() and once the API listens: tell systemd (and whoever waits on the log). */
  announceReady(): void {
    const summary = this.summary();
    this.log.event('started', 'info', `Started: ${summary}; netlink receive buffer ${this.events.grantedReceiveBufferBytes()} bytes`);
    this.notify.ready(summary);
    this.notify.startWatchdog();
  }

  /** One pass without subscribing (`--once`): returns the statuses. */
  runOnce(): InterfaceStatus[] {
    this.openStateDir();
    this.reconciler.loadAll(dumpLinks(), 'start');
    this.flushRecords('sync');
    return this.reconciler.statuses();
  }

  /** Parses and validates first; a bad policy leaves the running one in force and throws. */
  reload(policyPath: string | null = this.options.policyPath): Policy {
    this.notify.reloading();
    try {
      let policy: Policy;
      try {
        policy = readPolicy(policyPath, this.table);
      } catch (error) {
        if (error instanceof PolicyError) {
          this.log.event('policyRejected', 'error', `Policy rejected, keeping the running one: ${error.toString()}`, {
            OFFLOADD_POLICY: error.file, CODE_LINE: error.position?.line,
          });
        }
        throw error;
      }
      this.counters.reloads++;
      this.ledger.setLimits(policy.ledger);
      this.reconciler.setPolicy(policy);
      this.flushRecords();
      this.logPolicy(policy, 'reloaded');
      this.scheduleSweep();
      return policy;
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
    this.events.close();
    this.reconciler.stop();
    this.flushRecords('sync');
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
   * Events were lost: re-read every link. A dump can fail under heavy churn (the kernel keeps
   * interrupting it); then it is retried with a growing delay, since until it succeeds the daemon
   * does not know what it missed.
   */
  private resync(reason: string, attempt = 0): void {
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.resyncTimer = null;
    let links;
    try {
      links = dumpLinks();
    } catch (error) {
      const delayMs = Math.min(100 * 2 ** attempt, 5000);
      this.log.log('warning', `Could not re-read the links (${(error as Error).message}); retrying in ${delayMs} ms`);
      this.resyncTimer = setTimeout(() => this.resync(reason, attempt + 1), delayMs);
      return;
    }
    this.counters.resyncs++;
    this.reconciler.resync(links, reason); // recorded, and so logged, as a resync record
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
    if (record.kind === 'drift') this.counters.drifts++;
    if (record.action === 'enforced') this.counters.corrections++;
    if (record.kind === 'unenforceable') this.counters.unenforceable++;
    const description = describeRecord(record);
    this.log.event(description.kind, description.level, description.message, description.fields);
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
