/**
 * The daemon's stages, connected: kernel events → interface facts → policy match → reconcile,
 * and its lifecycle (start, reload, stop). What happens is published on one stream
 * (src/observe/stream.ts): check reports, releases, problems, durable records, policy loads and
 * rejections, ledger health. Every output (ledger queue, journal, metrics, API watch, sd_notify
 * status, last-seen) is a sink subscribed in src/run-daemon.ts; this file writes no log line
 * about a link and no metric.
 */
import type { DaemonForApi } from './api/methods';
import type { Attribution, AttributionStatus } from './attribution/attribution';
import type { RecordActor } from './attribution/actor';
import { OffloaddError, PolicyError } from './errors';
import { LinkRefresh } from './events/link-refresh';
import { dumpLinks, LinkEvents, DEFAULT_RECEIVE_BUFFER_BYTES } from './events/link-events';
import { findLinkByNameOrIndex, type LinkMessage } from './events/link-message';
import { InterfaceFactsSource } from './facts/interface-facts';
import { LastSeenKeeper, LastSeenStore } from './ledger/last-seen';
import { Ledger, type LedgerHealth, type LedgerQuery, type LedgerQueryResult } from './ledger/ledger';
import { RecordQueue } from './ledger/record-queue';
import { StateDirLock, StateDirRefused } from './ledger/state-dir';
import { EventCounters, type EventCounts } from './observe/counters';
import { LastActors } from './observe/last-actors';
import type { Log } from './observe/log';
import type { MetricsInputs } from './observe/metrics';
import { SdNotify } from './observe/sd-notify';
import { ReportStream } from './observe/stream';
import { releaseBurstMemory } from './memory';
import { loadConfiguredPolicy } from './policy/load';
import type { Policy } from './policy/types';
import { FeatureTable, type FeatureInterface } from './reconcile/feature-state';
import { Reconciler, type Explanation, type InterfaceStatus } from './reconcile/reconciler';
import { recordActors } from './reconcile/record-decisions';

export const DEFAULT_STATE_DIR = '/var/lib/offloadd';
/** The start-up's memory is given back once no link event has come for this long. */
const QUIET_BEFORE_MEMORY_RELEASE_MS = 1000;

export interface DaemonOptions {
  /** Explicit policy file; null = DEFAULT_POLICY_PATH if it exists, else the shipped default. */
  policyPath: string | null;
  sysfsRoot: string;
  stateDir: string;
  receiveBufferBytes?: number;
}

export class Daemon implements DaemonForApi, MetricsInputs {
  readonly table = FeatureTable.fromKernel();
  readonly startedAt = new Date();
  readonly notify = new SdNotify();
  /** Everything the daemon has to say; src/run-daemon.ts subscribes the outputs. */
  readonly stream = new ReportStream();
  /** The sinks' back ends that live with the daemon's state (see src/run-daemon.ts). */
  readonly records: RecordQueue;
  readonly counters = new EventCounters();
  readonly lastSeen: LastSeenKeeper;
  private readonly ledger: Ledger;
  private readonly reconciler: Reconciler;
  private readonly events: LinkEvents;
  private readonly refresh: LinkRefresh;
  private readonly facts: InterfaceFactsSource;
  private stateLock: StateDirLock | null = null;
  private stateDirOpened = false;
  private memoryRelease: NodeJS.Timeout | undefined;
  private attribution: Attribution | null = null;
  private attributionOff = 'not started';
  /** The actor of each interface's last drift or flapping record in this run (show, explain). */
  readonly lastActors = new LastActors();

  constructor(
    private readonly options: DaemonOptions,
    readonly log: Log,
    policy?: Policy,
  ) {
    const stream = this.stream;
    const initialPolicy = policy ?? loadConfiguredPolicy(options.policyPath, this.table.names);
    this.ledger = new Ledger(options.stateDir, initialPolicy.ledger, {
      warning: (message) => stream.publish('ledger', { health: 'warning', message }),
      unwritable: (status) => stream.publish('ledger', { health: 'unwritable', status }),
      writable: (status, since, written) => stream.publish('ledger', { health: 'writable', status, since, written }),
    });
    this.records = new RecordQueue(this.ledger, {
      onDurable: (records) => stream.publish('durable', records),
      onSyncFailed: (records, error) =>
        this.log.log(
          'crit',
          `Could not sync the ledger (${error.message}); ${records.length} records may not survive a crash`,
        ),
      onHeld: (records, error) => this.log.log('debug', `${records.length} records: ${error.message}`),
    });
    this.notify.onHealthChange = (error, socket) => {
      if (error)
        this.log.log(
          'warning',
          `Cannot notify systemd through ${socket} (${error.message}): it may not see readiness, reloads or watchdog pings`,
        );
      else this.log.log('info', `Notifying systemd through ${socket} works again`);
    };
    const facts = (this.facts = new InterfaceFactsSource(options.sysfsRoot, (message, link, error) => {
      this.log.link('warning', link, `${message}: ${error.message}`, { ERRNO: (error as { errno?: number }).errno });
    }));
    const lastSeenStore = new LastSeenStore(options.stateDir);
    this.reconciler = new Reconciler(
      initialPolicy,
      this.table,
      facts,
      {
        checked: (report) => stream.publish('checked', report),
        recorded: (records) => stream.publish('recorded', records),
        released: (release) => stream.publish('released', release),
        problem: (problem) => stream.publish('problem', problem),
        // Straight to the ledger, not the stream: a pass's changes are durable before they are made.
        changing: (changes) => this.records.intend(changes),
      },
      (name, mac) => lastSeenStore.take(name, mac),
    );
    this.lastSeen = new LastSeenKeeper(
      lastSeenStore,
      () => this.reconciler.lastSeen(),
      (level, message) => this.log.log(level, message),
    );
    this.refresh = new LinkRefresh({
      onResync: (links, reason, notices) => {
        const count = this.reconciler.resync(links, reason, notices); // recorded, and so logged
        stream.publish('passCompleted', { trigger: 'resync' });
        return count;
      },
      onSweep: (links) => {
        this.reconciler.sweep(links);
        stream.publish('passCompleted', { trigger: 'sweep' });
      },
      onDumpFailed: (what, error, retryInMs) =>
        this.log.log(
          what === 'resync' ? 'warning' : 'error',
          retryInMs === null
            ? `Safety sweep failed, will retry next period: ${error.message}`
            : `Could not re-read the links (${error.message}); retrying in ${retryInMs} ms`,
        ),
    });
    this.events = new LinkEvents(
      {
        // The receipt time is taken here, as the batch arrives: correction latency is measured from it.
        // On CLOCK_MONOTONIC, the clock attribution stamps requests with (bpf_ktime_get_ns).
        onLinks: (links) => this.reconciler.handleLinks(links, process.hrtime.bigint()),
        onResync: (reason) => this.refresh.eventsLost(reason),
        onHandlerError: (error) =>
          this.log.log('crit', `Internal error while handling link events: ${(error as Error).stack ?? String(error)}`),
      },
      options.receiveBufferBytes ?? DEFAULT_RECEIVE_BUFFER_BYTES,
    );
    // The events our own writes cause are dropped in the addon, never parsed.
    this.reconciler.ownFeatureEvents.filter = {
      expect: (ifindex) => this.events.expectOwnFeatureEvent(ifindex),
      forget: (ifindex) => this.events.forgetOwnFeatureEvents(ifindex),
    };
  }

  get policy(): Policy {
    return this.reconciler.currentPolicy;
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
      this.log.log(
        'crit',
        `${error.message}; enforcing without a lock on it and without a ledger${error.hint ? ` (${error.hint})` : ''}`,
      );
    }
    this.ledger.open();
  }

  /** Subscribe, then dump and reconcile everything; returns once every link has been checked. */
  start(): void {
    this.openStateDir();
    this.stream.publish('policy', { result: 'loaded', policy: this.policy });
    this.lastSeen.load();
    this.events.open(); // before the dump, so nothing between the two is missed
    this.filterLinkEvents();
    const links = dumpLinks();
    this.events.makeRoomFor(links.length);
    this.reconciler.loadAll(links, 'start');
    this.stream.publish('passCompleted', { trigger: 'start' });
    this.records.flush();
    this.lastSeen.save();
    this.lastSeen.startAutosave();
    this.refresh.setSweepInterval(this.policy.sweepIntervalSec);
  }

  /**
   * When no rule can match a link without a device, the kernel drops those links' events (a
   * hypervisor's tap churn then costs nothing); when a reload makes them matter again, a sweep
   * catches up with what was missed meanwhile.
   */
  private filterLinkEvents(): void {
    const drop = this.facts.trustParentAttribute && this.reconciler.devicelessLinksCannotMatch;
    if (this.events.dropDevicelessLinks(drop)) this.reconciler.sweep(dumpLinks());
  }

  /** After start() and once the API listens: tell systemd (and whoever waits on the log). */
  announceReady(): void {
    const summary = this.summary();
    this.log.event(
      'started',
      this.table.unavailable ? 'warning' : 'info',
      `Started: ${summary}; features via ${this.table.via}${this.table.unavailable ? ` (${this.table.unavailable})` : ''}; netlink receive buffer ${this.events.grantedReceiveBufferBytes()} bytes`,
    );
    this.notify.ready(summary);
    this.notify.startWatchdog();
    void this.ledger.buildIndex(); // history is for queries: read after READY, in slices
    this.releaseMemoryWhenQuiet();
  }

  /**
   * Gives back the memory the start-up burst grew (src/memory.ts) once no link event has come
   * for QUIET_BEFORE_MEMORY_RELEASE_MS: the full collections it takes (40–100 ms) then delay nobody,
   * neither the events our own start-up writes cause nor a stream of hot-plugs or drifts.
   */
  private releaseMemoryWhenQuiet(): void {
    let wakeups = this.events.wakeups;
    const check = (): void => {
      if (this.events.wakeups === wakeups) {
        releaseBurstMemory();
        return;
      }
      wakeups = this.events.wakeups;
      this.memoryRelease = setTimeout(check, QUIET_BEFORE_MEMORY_RELEASE_MS).unref();
    };
    // Unref'd: never what keeps the process alive.
    this.memoryRelease = setTimeout(check, QUIET_BEFORE_MEMORY_RELEASE_MS).unref();
  }

  /** One pass without subscribing (`--once`): returns the statuses. */
  runOnce(): InterfaceStatus[] {
    this.openStateDir();
    this.lastSeen.load();
    this.reconciler.loadAll(dumpLinks(), 'start');
    this.records.flush('sync');
    this.lastSeen.save();
    this.ledger.close();
    return this.reconciler.statuses();
  }

  /**
   * Parses and validates first; a bad policy leaves the running one in force and throws. Every
   * failure is logged here, so a caller without a client to answer (SIGHUP) may drop it.
   */
  reload(policyPath: string | null = this.options.policyPath): Policy {
    this.notify.reloading();
    try {
      const policy = loadConfiguredPolicy(policyPath, this.table.names);
      this.ledger.setLimits(policy.ledger);
      this.reconciler.setPolicy(policy);
      this.filterLinkEvents();
      this.records.flush();
      this.stream.publish('policy', { result: 'reloaded', policy });
      this.refresh.setSweepInterval(policy.sweepIntervalSec);
      return policy;
    } catch (error) {
      this.stream.publish(
        'policy',
        error instanceof PolicyError ? { result: 'rejected', error } : { result: 'failed', error: error as Error },
      );
      throw error;
    } finally {
      this.notify.ready(this.summary());
    }
  }

  enforce(ifindex: number | null): void {
    this.reconciler.enforce(ifindex);
    this.records.flush();
  }

  /**
   * The attribution drifts ask for their actor (src/run-daemon.ts starts it), or null with why it
   * is off. One that could not start is kept for its status; records then carry no actor.
   */
  useAttribution(attribution: Attribution | null, offReason = 'not started'): void {
    this.attribution = attribution;
    this.attributionOff = offReason;
    const on = attribution?.unavailable === null ? attribution : null;
    this.reconciler.actorLookup = null;
    if (!on) return;
    // A link event queued before the programs ran may answer a request they never saw: "no
    // request from user space" would then blame the kernel for what a process did. So what is
    // queued now is checked first, with no actor (unknown), and only later events are asked about.
    this.events.deliverPending();
    const watchedSinceNs = process.hrtime.bigint();
    this.reconciler.actorLookup = (ifindex, receivedAtNs) =>
      receivedAtNs !== null && receivedAtNs < watchedSinceNs
        ? null // its check was put off (a long batch): still from before
        : recordActors(on.actorsFor(ifindex, receivedAtNs ?? process.hrtime.bigint()), receivedAtNs !== null);
  }

  // What the API reads (src/api/methods.ts names it DaemonForApi).

  attributionStatus(): AttributionStatus {
    return (
      this.attribution?.status() ?? {
        enabled: false,
        reason: this.attributionOff,
        dropped: 0,
        attributed: 0,
        otherNamespace: 0,
        traced: [],
        hook: null,
      }
    );
  }

  lastActor(ifindex: number): RecordActor | undefined {
    return this.lastActors.get(ifindex);
  }

  statuses(): InterfaceStatus[] {
    return this.reconciler.statuses();
  }

  status(ifindex: number): InterfaceStatus | null {
    return this.reconciler.status(ifindex);
  }

  findLink(nameOrIndex: string): LinkMessage | null {
    const known = this.reconciler.findLink(nameOrIndex);
    if (known || !this.events.droppingDevicelessLinks) return known;
    // Links without a device are not followed (see filterLinkEvents): ask the kernel.
    return findLinkByNameOrIndex(dumpLinks(), nameOrIndex);
  }

  explain(link: LinkMessage): Explanation {
    return this.reconciler.explain(link);
  }

  counts(): { managed: number; compliant: number } {
    return this.reconciler.counts();
  }

  eventCounts(): EventCounts {
    return this.counters.snapshot();
  }

  rejectedReloads(): number {
    return this.counters.rejectedReloads;
  }

  /** What the kernel granted for the link event socket (0 before start()). */
  receiveBufferBytes(): number {
    return this.events.grantedReceiveBufferBytes();
  }

  get featureInterface(): FeatureInterface {
    return this.table.via;
  }

  ledgerStatus(): LedgerHealth & { lastSeq: number } {
    return { ...this.ledger.health, lastSeq: this.ledger.lastSeq };
  }

  queryLedger(query: LedgerQuery): Promise<LedgerQueryResult> {
    return this.ledger.query(query);
  }

  stop(): void {
    clearTimeout(this.memoryRelease);
    this.notify.stopping();
    this.notify.stopWatchdog();
    this.refresh.stop();
    this.events.close();
    this.reconciler.stop();
    this.records.flush('sync');
    this.lastSeen.stop();
    this.log.event('stopping', 'info', 'Stopping');
    this.ledger.close(); // also delivers records whose sync was still running
    this.stateLock?.release();
  }

  summary(): string {
    const { managed, compliant } = this.reconciler.counts();
    return `${managed} managed, ${compliant} compliant, ${this.counters.drifts} drifts`;
  }
}
