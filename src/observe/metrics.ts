/**
 * The daemon's Prometheus metrics, as the text exposition format (version 0.0.4), written by hand
 * rather than with prom-client: with 1,000 managed interfaces prom-client's registry costs more
 * resident memory than the 2 MiB budget allows (docs/METRICS.md has the measurement), while
 * this needs no copy of anything the daemon already keeps. Nothing is stored per label set: the
 * counters are the daemon's EventCounters (so metrics and `offloadctl status` agree), the
 * per-interface values are the reconciler's statuses, read at render time; only the two latency
 * histograms and the receipt times they are measured from live here.
 *
 * Names, labels and meanings are the metrics contract (README, Metrics): do not rename.
 */
import { actorName } from '../attribution/actor';
import type { LedgerHealth } from '../ledger/ledger';
import type { LedgerRecord, NewRecord, Trigger } from '../ledger/record';
import type { Policy } from '../policy/types';
import type { FeatureInterface } from '../reconcile/feature-state';
import type { InterfaceStatus } from '../reconcile/managed-interfaces';
import { VERSION } from '../version';
import type { EventCounts } from './counters';
import { header, Histogram, labels, processLines, sample } from './exposition';
import { renderInterfaceLines } from './interface-lines';
import type { CheckReport, LedgerReport, Release, Sink } from './stream';
import { monotonicMs } from '../clock';

/**
 * Seconds. Resolves the ≤ 2 ms correction goal (0.1 ms to 2 ms in five steps), then the slow
 * tail up to a second. Shared by both histograms so they can be compared on one panel.
 */
export const DURATION_BUCKETS_SECONDS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1,
];

/**
 * Triggers that stand for a link event the daemon received: only a check they caused has a
 * receipt time to measure a correction from. (A sweep, resync or back-off found the drift
 * without an event, a reload or an operator changed the policy: no kernel-to-correction time.)
 */
const EVENT_TRIGGERS: ReadonlySet<Trigger> = new Set<Trigger>(['new', 'up', 'rename', 'features', 'change']);

/**
 * offloadd_drifts_by_actor_total's label cardinality: the first this many distinct actors get
 * their own series; drifts by any later one count under OTHER_ACTORS. So at most 33 series,
 * whatever a host runs (a script run from cron under a new name each time cannot grow it).
 */
export const MAX_ACTOR_LABELS = 32;
export const OTHER_ACTORS = 'other';
/** The actor label of a drift recorded without one (attribution off, or a sweep found it). */
export const UNKNOWN_ACTOR = 'unknown';

/** What the metrics read from the daemon at render time (src/daemon.ts provides it). */
export interface MetricsInputs {
  readonly startedAt: Date;
  readonly policy: Policy;
  readonly featureInterface: FeatureInterface;
  counts(): { managed: number; compliant: number };
  eventCounts(): EventCounts;
  /** Reloads that were rejected (the running policy stayed); loaded ones are eventCounts().reloads. */
  rejectedReloads(): number;
  ledgerStatus(): LedgerHealth;
  statuses(): InterfaceStatus[];
  receiveBufferBytes(): number;
}

/** A drift the check set back as wanted: the records a correction latency is measured for. */
function correctedDrift(record: NewRecord): boolean {
  return record.event === 'drift' && record.action === 'enforced';
}

/**
 * One exposition to write: its parts, one after the other. Nothing in them is written to again
 * (a rebuilt per-interface block is a new Buffer), so a writer may take as long as it needs.
 */
export interface Exposition {
  readonly parts: readonly (string | Buffer)[];
}

export interface RenderOptions {
  /**
   * The standard process_* metrics. Off for the textfile: node-exporter exports its own under the
   * same names, and a textfile that repeats them makes its scrape fail.
   */
  processMetrics: boolean;
}

export class Metrics implements Sink {
  readonly correction = new Histogram(DURATION_BUCKETS_SECONDS);
  readonly exposure = new Histogram(DURATION_BUCKETS_SECONDS);
  /** Links that appeared and are not yet compliant: since when (the appearance's receipt, ms). */
  private readonly appearedAt = new Map<number, number>();
  /** actor label → drifts since start (see MAX_ACTOR_LABELS). */
  private readonly driftsByActor = new Map<string, number>();
  private lastCheckMs: number | null = null;
  private refreshTimer: NodeJS.Timeout | null = null;
  /** Bumped on every change the exposition shows; the per-interface block is rebuilt only then. */
  private version = 0;
  /**
   * The per-interface lines (most of the exposition: ~300 bytes per interface) as UTF-8, kept
   * outside the JavaScript heap and rebuilt only after a change, so an idle daemon's scrapes
   * allocate next to nothing.
   */
  private interfacesBlock: InterfacesBlock | null = null;
  /** Called (synchronously, keep it cheap) when something the exposition shows changed. */
  onChange: (() => void) | null = null;

  /**
   * @param minRebuildMs the per-interface block is rebuilt at most this often (a scrape in between
   *   gets the previous one): rebuilding takes ~1 ms for 1,000 interfaces, and while drifts keep
   *   changing it a scraper at any rate must not make the event loop do that more than once a second.
   */
  constructor(
    private readonly inputs: MetricsInputs,
    private readonly minRebuildMs = MIN_REBUILD_INTERVAL_MS,
  ) {}

  // As a sink of the daemon's stream (src/observe/stream.ts): each handler takes what it needs
  // from the event itself.

  /** A managed interface was checked: latencies, and the time of the last completed check. */
  checked(report: CheckReport): void {
    const now = monotonicMs();
    const { status, trigger, receivedAt } = report;
    const { ifindex } = status;
    const fromEvent = receivedAt !== null && EVENT_TRIGGERS.has(trigger);
    if (fromEvent && report.records.some(correctedDrift)) this.correction.observe((now - receivedAt) / 1000);
    if (trigger === 'new' && fromEvent && !this.appearedAt.has(ifindex)) this.appearedAt.set(ifindex, receivedAt);
    const appeared = this.appearedAt.get(ifindex);
    if (appeared !== undefined && status.compliant) {
      this.exposure.observe((now - appeared) / 1000);
      this.appearedAt.delete(ifindex);
    }
    this.passCompleted();
  }

  /** A pass ended (start-up, sweep, resync), even one that checked no managed interface. */
  passCompleted(): void {
    this.lastCheckMs = Date.now();
    this.changed();
  }

  /** No longer managed (deleted or unmatched): its label sets disappear. */
  released(release: Release): void {
    this.appearedAt.delete(release.ifindex);
    this.changed();
  }

  /** Records made durable: the counters (read at render time) just moved; drifts by actor. */
  durable(records: readonly LedgerRecord[] = []): void {
    for (const record of records) {
      if (record.event !== 'drift') continue;
      const name = record.actor ? actorName(record.actor) : UNKNOWN_ACTOR;
      const label = this.driftsByActor.has(name) || this.driftsByActor.size < MAX_ACTOR_LABELS ? name : OTHER_ACTORS;
      this.driftsByActor.set(label, (this.driftsByActor.get(label) ?? 0) + 1);
    }
    this.changed();
  }

  /** Policy loaded or rejected: the policy's lines and the reload counts. */
  policy(): void {
    this.changed();
  }

  /** The ledger's health changed. */
  ledger(report: LedgerReport): void {
    if (report.health !== 'warning') this.changed();
  }

  /** Policy loaded or rejected, ledger health changed: anything else the exposition shows. */
  changed(): void {
    this.version++;
    this.onChange?.();
  }

  /** The whole exposition as one string (tests, tools); the exporters write renderParts(). */
  render(options: RenderOptions = { processMetrics: true }): string {
    const { parts } = this.renderParts(options);
    return parts.map((part) => (typeof part === 'string' ? part : part.toString('utf8'))).join('');
  }

  /**
   * The exposition in pieces to write one after the other: daemon-wide values read live (a few
   * dozen lines), then the cached per-interface block, then the process metrics.
   */
  renderParts(options: RenderOptions = { processMetrics: true }): Exposition {
    const inputs = this.inputs;
    const policy = inputs.policy;
    const counts = inputs.eventCounts();
    const { managed, compliant } = inputs.counts();
    const ledger = inputs.ledgerStatus();
    let text = '';
    text += header('offloadd_build_info', 'gauge', 'Always 1; the labels say which offloadd and Node.js run.');
    text += sample('offloadd_build_info', 1, labels({ version: VERSION, nodejs_version: process.versions.node }));
    text += header(
      'offloadd_feature_interface_info',
      'gauge',
      'Always 1; how features are read and changed: ethtool-netlink or ioctl.',
    );
    text += sample('offloadd_feature_interface_info', 1, labels({ feature_interface: inputs.featureInterface }));
    text += header('offloadd_policy_info', 'gauge', 'Always 1; the policy in force: file, SHA-256, default mode.');
    text += sample(
      'offloadd_policy_info',
      1,
      labels({ path: policy.path, sha256: policy.checksum, mode: policy.mode }),
    );
    text += header('offloadd_policy_rules', 'gauge', 'Rules in the policy in force.');
    text += sample('offloadd_policy_rules', policy.rules.length);
    text += header('offloadd_interfaces_managed', 'gauge', 'Interfaces a policy rule matches.');
    text += sample('offloadd_interfaces_managed', managed);
    text += header('offloadd_interfaces_compliant', 'gauge', 'Managed interfaces whose features are as wanted.');
    text += sample('offloadd_interfaces_compliant', compliant);
    text += header('offloadd_interfaces_not_compliant', 'gauge', 'Managed interfaces not (yet) as wanted.');
    text += sample('offloadd_interfaces_not_compliant', managed - compliant);
    text += header('offloadd_drifts_total', 'counter', 'Features found changed away from policy (drift records).');
    text += sample('offloadd_drifts_total', counts.drifts);
    text += header(
      'offloadd_drifts_by_actor_total',
      'counter',
      `Drifts by who caused them: the systemd service, else the process name; "kernel" when no request came from user space, "${UNKNOWN_ACTOR}" when attribution is off; at most ${MAX_ACTOR_LABELS} actors, the rest under "${OTHER_ACTORS}".`,
    );
    for (const [actor, drifts] of this.driftsByActor)
      text += sample('offloadd_drifts_by_actor_total', drifts, labels({ actor }));
    text += header('offloadd_corrections_total', 'counter', 'Features set back as wanted and verified.');
    text += sample('offloadd_corrections_total', counts.corrections);
    text += header('offloadd_unenforceable_total', 'counter', 'Wanted features found not changeable on a device.');
    text += sample('offloadd_unenforceable_total', counts.unenforceable);
    text += header('offloadd_failures_total', 'counter', 'Writes the kernel refused and checks that failed.');
    text += sample('offloadd_failures_total', counts.failures);
    text += header('offloadd_resyncs_total', 'counter', 'Full re-reads after link events were lost.');
    text += sample('offloadd_resyncs_total', counts.resyncs);
    text += header('offloadd_policy_reloads_total', 'counter', 'Policy reloads, by result (loaded or rejected).');
    text += sample('offloadd_policy_reloads_total', counts.reloads, '{result="loaded"}');
    text += sample('offloadd_policy_reloads_total', inputs.rejectedReloads(), '{result="rejected"}');
    text += header(
      'offloadd_last_reconcile_timestamp_seconds',
      'gauge',
      'Unix time of the last completed check (0 before the first).',
    );
    text += sample(
      'offloadd_last_reconcile_timestamp_seconds',
      this.lastCheckMs === null ? 0 : this.lastCheckMs / 1000,
    );
    text += header(
      'offloadd_netlink_receive_buffer_bytes',
      'gauge',
      'Link event receive buffer the kernel granted, bytes.',
    );
    text += sample('offloadd_netlink_receive_buffer_bytes', inputs.receiveBufferBytes());
    text += header('offloadd_ledger_writable', 'gauge', '1 while the drift ledger can be written, else 0.');
    text += sample('offloadd_ledger_writable', ledger.writable ? 1 : 0);
    text += header('offloadd_ledger_held_records', 'gauge', 'Records kept in memory until the ledger is writable.');
    text += sample('offloadd_ledger_held_records', ledger.heldRecords);
    text += this.correction.render(
      'offloadd_correction_duration_seconds',
      'From receiving the link event that revealed a drift to the verified correction.',
    );
    text += this.exposure.render(
      'offloadd_exposure_window_seconds',
      "From a link's first event (its appearance) to its being compliant.",
    );
    const parts: (string | Buffer)[] = [text, this.interfaceLines().bytes];
    if (options.processMetrics) parts.push(processLines(inputs.startedAt));
    return { parts };
  }

  private interfaceLines(): InterfacesBlock {
    const now = monotonicMs();
    const block = this.interfacesBlock;
    if (block?.version === this.version) return block;
    if (block && now - block.builtAt < this.minRebuildMs) {
      // Stale for a moment: tell the exporters when a fresh one can be built (the textfile would
      // otherwise keep the stale lines until the next change).
      this.refreshTimer ??= setTimeout(
        () => {
          this.refreshTimer = null;
          this.onChange?.();
        },
        this.minRebuildMs - (now - block.builtAt),
      ).unref();
      return block;
    }
    const built: InterfacesBlock = {
      version: this.version,
      bytes: renderInterfaceLines(this.inputs.statuses()),
      builtAt: now,
    };
    this.interfacesBlock = built;
    return built;
  }
}

interface InterfacesBlock {
  /** Metrics.version it was built at. */
  readonly version: number;
  readonly bytes: Buffer;
  /** monotonicMs() */
  readonly builtAt: number;
}

/** The contract's textfile rate, also applied to the scrape path (see the constructor). */
export const MIN_REBUILD_INTERVAL_MS = 1000;
