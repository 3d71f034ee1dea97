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
import { performance } from 'node:perf_hooks';
import { actorName } from '../attribution/actor';
import { vendorDevice } from '../facts/pci';
import type { LedgerHealth } from '../ledger/ledger';
import type { LedgerRecord, NewRecord, Trigger } from '../ledger/record';
import type { Policy } from '../policy/types';
import type { FeatureInterface } from '../reconcile/feature-state';
import type { InterfaceStatus } from '../reconcile/managed-interfaces';
import { VERSION } from '../version';
import type { EventCounts } from './counters';
import type { CheckReport, LedgerReport, Release, Sink } from './stream';

/** What `Content-Type` a scrape answer carries: the classic text format. */
export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

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

/** A label value as the text format wants it: backslash, double quote and line feed escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (character) => (character === '\n' ? '\\n' : `\\${character}`));
}

/** HELP text: backslash and line feed escaped (a double quote is fine there). */
function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (character) => (character === '\n' ? '\\n' : '\\\\'));
}

function labels(pairs: Record<string, string>): string {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(pairs)) parts.push(`${name}="${escapeLabelValue(value)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function header(name: string, type: 'gauge' | 'counter' | 'histogram', help: string): string {
  return `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`;
}

/** One sample per line; JavaScript's shortest round-trip form is what Prometheus parses. */
function sample(name: string, value: number, labelText = ''): string {
  const text = Number.isNaN(value) ? 'NaN' : value === Infinity ? '+Inf' : value === -Infinity ? '-Inf' : String(value);
  return `${name}${labelText} ${text}\n`;
}

/** A cumulative histogram with fixed buckets (seconds). */
export class Histogram {
  private readonly buckets: number[];
  private sum = 0;
  private count = 0;

  constructor(private readonly bounds: readonly number[] = DURATION_BUCKETS_SECONDS) {
    this.buckets = bounds.map(() => 0);
  }

  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) if (seconds <= (this.bounds[i] as number)) this.buckets[i]!++;
  }

  get observations(): number {
    return this.count;
  }

  render(name: string, help: string): string {
    let text = header(name, 'histogram', help);
    for (let i = 0; i < this.bounds.length; i++)
      text += sample(`${name}_bucket`, this.buckets[i] as number, `{le="${String(this.bounds[i])}"}`);
    text += sample(`${name}_bucket`, this.count, '{le="+Inf"}');
    text += sample(`${name}_sum`, this.sum);
    text += sample(`${name}_count`, this.count);
    return text;
  }
}

/**
 * One exposition to write: its parts, one after the other, and done() to call (once) when the
 * last write finished or failed. Until then the cached per-interface block is held: a rebuild
 * writes into a block's memory again only when no writer holds it (see Metrics.interfaceLines()).
 */
export interface Exposition {
  readonly parts: readonly (string | Buffer)[];
  done(): void;
}

export interface RenderOptions {
  /**
   * The standard process_* metrics. Off for the textfile: node-exporter exports its own under the
   * same names, and a textfile that repeats them makes its scrape fail.
   */
  processMetrics: boolean;
}

export class Metrics implements Sink {
  readonly correction = new Histogram();
  readonly exposure = new Histogram();
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
    const now = performance.now();
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
    const exposition = this.renderParts(options);
    const text = exposition.parts.map((part) => (typeof part === 'string' ? part : part.toString('utf8'))).join('');
    exposition.done();
    return text;
  }

  /**
   * The exposition in pieces to write one after the other: daemon-wide values read live (a few
   * dozen lines), then the cached per-interface block, then the process metrics. The caller
   * calls done() once written (see Exposition).
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
    const block = this.interfaceLines();
    const parts: (string | Buffer)[] = [text, block.bytes];
    if (options.processMetrics) parts.push(processLines(inputs.startedAt));
    block.holds++;
    let released = false;
    return {
      parts,
      done: () => {
        if (!released) block.holds--;
        released = true;
      },
    };
  }

  private interfaceLines(): InterfacesBlock {
    const now = performance.now();
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
    const statuses = this.inputs.statuses();
    // Straight into bytes, a line at a time: no 300 kB string is ever built (the heap would grow for it).
    const labelTexts = statuses.map(
      (status) =>
        `{interface="${escapeLabelValue(status.name)}",driver="${escapeLabelValue(status.facts.driver ?? '')}",` +
        `pci="${status.facts.pci ? escapeLabelValue(vendorDevice(status.facts.pci)) : ''}",rule="${escapeLabelValue(status.rule)}"} `,
    );
    // Sized up front, to the byte but for the values' digits: one allocation that never grows, so
    // the block keeps next to no spare capacity for as long as it lives.
    let expected = HEADERS_BYTES;
    for (const labelText of labelTexts) expected += INTERFACE_LINES_OVERHEAD + 3 * Buffer.byteLength(labelText);
    // The block being replaced is garbage once no writer holds it: write over its memory rather
    // than leave ~300 kB to the next full collection, which an idle daemon may not run for minutes.
    const out = new ByteWriter(expected, block?.holds === 0 ? block.bytes.buffer : null);
    out.write(header('offloadd_interface_compliant', 'gauge', COMPLIANT_HELP));
    statuses.forEach((status, i) => {
      out.write('offloadd_interface_compliant');
      out.write(labelTexts[i] as string);
      out.write(status.compliant ? '1\n' : '0\n');
    });
    out.write(header('offloadd_interface_drifts_total', 'counter', DRIFTS_HELP));
    statuses.forEach((status, i) => {
      out.write('offloadd_interface_drifts_total');
      out.write(labelTexts[i] as string);
      out.write(`${status.driftCount}\n`);
    });
    out.write(header('offloadd_interface_unenforceable_features', 'gauge', UNENFORCEABLE_HELP));
    statuses.forEach((status, i) => {
      let unenforceable = 0;
      for (const outcome of status.features) if (outcome.action === 'unenforceable') unenforceable++;
      out.write('offloadd_interface_unenforceable_features');
      out.write(labelTexts[i] as string);
      out.write(`${unenforceable}\n`);
    });
    const built: InterfacesBlock = { version: this.version, bytes: out.bytes(), builtAt: now, holds: 0 };
    this.interfacesBlock = built;
    return built;
  }
}

interface InterfacesBlock {
  /** Metrics.version it was built at. */
  readonly version: number;
  readonly bytes: Buffer;
  /** performance.now() */
  readonly builtAt: number;
  /** Expositions handed out with it and not yet done(). */
  holds: number;
}

/** UTF-8 appended to one growing Buffer (outside the JavaScript heap). */
class ByteWriter {
  private buffer: Buffer;
  private length = 0;

  /** @param reuse memory nobody needs any more, used when it is large enough */
  constructor(expectedBytes: number, reuse: ArrayBufferLike | null) {
    const size = Math.max(expectedBytes, MIN_BLOCK_BYTES);
    this.buffer = reuse && reuse.byteLength >= size ? Buffer.from(reuse) : Buffer.allocUnsafeSlow(size);
  }

  write(text: string): void {
    // The exact size, not the worst case (3 bytes per UTF-16 unit): near the end of a buffer sized
    // to the byte, the worst case of a long label would double a buffer that has room enough.
    const bytes = Buffer.byteLength(text, 'utf8');
    if (this.length + bytes > this.buffer.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(this.buffer.length * 2, this.length + bytes));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    this.length += this.buffer.write(text, this.length, 'utf8');
  }

  /** What was written (a view: the spare capacity, a few bytes when sized as interfaceLines() does, stays with it). */
  bytes(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

/** The contract's textfile rate, also applied to the scrape path (see the constructor). */
export const MIN_REBUILD_INTERVAL_MS = 1000;

/** A value and its line feed, at most: a drift count of up to 11 digits. */
const VALUE_BYTES = 12;
/** Bytes of an interface's three lines besides their labels: the names and the values. */
const INTERFACE_LINES_OVERHEAD =
  'offloadd_interface_compliant'.length +
  'offloadd_interface_drifts_total'.length +
  'offloadd_interface_unenforceable_features'.length +
  3 * VALUE_BYTES;
const COMPLIANT_HELP = '1 while this managed interface is as the policy wants.';
const DRIFTS_HELP = 'Drifts of this interface since it became managed.';
const UNENFORCEABLE_HELP = 'Wanted features this device cannot change (as of the last check).';
/** The per-interface block's three HELP and TYPE headers (a few hundred bytes), rounded up. */
const HEADERS_BYTES = 1024;
const MIN_BLOCK_BYTES = 1024;

/** The standard process metrics, as the Prometheus client libraries name them. */
function processLines(startedAt: Date): string {
  const cpu = process.cpuUsage();
  // The process's start, not the daemon object's: what process_start_time_seconds means elsewhere.
  const started = Math.min(startedAt.getTime(), performance.timeOrigin) / 1000;
  return (
    header('process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.') +
    sample('process_start_time_seconds', Math.round(started * 1000) / 1000) +
    header('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.') +
    sample('process_resident_memory_bytes', process.memoryUsage.rss()) +
    header('process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.') +
    sample('process_cpu_seconds_total', (cpu.user + cpu.system) / 1e6)
  );
}
