/**
 * The composition root: makes the daemon, its outputs and its servers, and subscribes every
 * output to the daemon's stream (src/observe/stream.ts) here, in one place and one way. The
 * order of subscription is the order in which an event reaches them: the ledger queue first
 * (records go to disk before anything reports them), the counters before the journal and the
 * API (so what they show includes the event), metrics and sd_notify status last.
 */
import { createHandlers, watchSink } from './api/methods';
import { DEFAULT_API_LIMITS, ApiServer } from './api/server';
import { MetricsHttpServer, type ListenAddress } from './api/metrics-http';
import { MetricsTextfile } from './api/metrics-textfile';
import { startAttribution, type Attribution } from './attribution/attribution';
import { Daemon, type DaemonOptions } from './daemon';
import { countersSink } from './observe/counters';
import { journalSink } from './observe/journal-sink';
import { lastActorsSink } from './observe/last-actors';
import type { Log } from './observe/log';
import { Metrics } from './observe/metrics';
import { notifySink } from './observe/sd-notify';
import type { Sink } from './observe/stream';
import { PolicyWatch } from './policy/watch';
import type { Policy } from './policy/types';
import type { InterfaceStatus } from './reconcile/managed-interfaces';

export interface ServiceOptions {
  socketPath: string;
  socketGroup: string | null;
  adminGroup: string | null;
  /** Reload by itself when this file's content changes (--watch-policy), or null. */
  watchPolicy: string | null;
  metricsListen: ListenAddress | null;
  metricsTextfile: string | null;
  /** false: --attribution=off (the policy's `attribution: off` also turns it off). */
  attribution: boolean;
}

/**
 * Starts attribution when both the command line and the policy want it, and stops it when a
 * reload turns it off. Says in the journal whether it is on and, when it is not, why: once per
 * change, never per record. Nothing starts before `startAfterReady()`: enforcement does not need
 * attribution, and starting it (reading the kernel's BTF, loading the programs) takes tens of
 * milliseconds that READY need not wait for. Its `stop()` stops the kernel side.
 */
function attributionSwitch(
  daemon: Daemon,
  log: Log,
  wanted: boolean,
): Sink & { startAfterReady(): void; stop(): void } {
  let running: Attribution | null = null;
  let said: string | null = null;
  let policy: Policy | null = null;
  let ready = false;
  const say = (level: 'info' | 'notice' | 'warning', text: string): void => {
    if (text !== said) log.log(level, text);
    said = text;
  };
  const turnOff = (reason: string, level: 'info' | 'warning'): void => {
    running?.stop();
    running = null;
    daemon.useAttribution(null, reason);
    say(level, `Attribution off: ${reason}; drifts are recorded without who caused them`);
  };
  const follow = (): void => {
    if (policy === null) return;
    if (!wanted) return turnOff('turned off (--attribution=off)', 'info');
    if (!policy.attribution) return turnOff('turned off by the policy (attribution: off)', 'info');
    if (running || !ready) return;
    const attribution = startAttribution({ ifindexOf: (name) => daemon.findLink(name)?.ifindex });
    daemon.useAttribution(attribution);
    if (attribution.unavailable) {
      say(
        'warning',
        `Attribution off: ${attribution.unavailable.message}; drifts are recorded without who caused them`,
      );
      return;
    }
    running = attribution;
    const status = attribution.status();
    say(
      'info',
      `Attribution on (${status.hook ?? '?'}): naming who changes features through ${status.traced.join(', ')}${status.reason ? `; ${status.reason}` : ''}`,
    );
  };
  return {
    policy: (report) => {
      if (!('policy' in report)) return;
      policy = report.policy;
      // Started after this report has reached every sink: starting delivers the link events
      // queued now (Daemon.useAttribution), whose reports must not overtake this one.
      queueMicrotask(follow);
    },
    // A gone ifindex may come back as another device: its requests must not be blamed on it.
    released: ({ ifindex, why }) => {
      if (why === 'deleted') running?.forget(ifindex);
    },
    startAfterReady: () => {
      ready = true;
      follow();
    },
    stop: () => {
      running?.stop();
      running = null;
    },
  };
}

/** The daemon with the outputs every run has: ledger queue, counters, journal, last-seen. */
export function createDaemon(options: DaemonOptions, log: Log): Daemon {
  const daemon = new Daemon(options, log);
  daemon.stream.subscribe(
    // The ledger queue: a check's records, and those made outside a check, become durable.
    {
      checked: (report) => daemon.records.add(report.records),
      recorded: (records) => daemon.records.add(records),
    },
    countersSink(daemon.counters),
    journalSink(log),
    // last-seen: the next run's memory of each managed interface is saved when it changed.
    { checked: () => daemon.lastSeen.markChanged() },
    lastActorsSink(daemon.lastActors),
  );
  return daemon;
}

/** `--once`: one pass without subscribing to link events; returns the statuses. */
export function runOnce(options: DaemonOptions, log: Log): InterfaceStatus[] {
  return createDaemon(options, log).runOnce();
}

/** A running service: what stop() stops. */
export interface Service {
  readonly daemon: Daemon;
  /** Stops the daemon and closes every server; resolves once all are closed. */
  stop(): Promise<void>;
  /** Reloads the policy; a bad one is logged and rejected, the running one stays. */
  reload(): void;
}

/**
 * Makes the daemon and its servers, then starts them in the order that changes nothing before
 * every check has passed: the state directory's lock (a second daemon changes nothing), the API's
 * settings (a --socket path holding a file, a live daemon's socket, an unknown group) and the
 * metrics port, then the start-up reconcile, then the API. `started` resolves once the daemon is
 * ready (and systemd told); it rejects with the error that kept it from starting.
 */
export function startService(
  options: DaemonOptions,
  service: ServiceOptions,
  log: Log,
): { service: Service; started: Promise<void> } {
  const daemon = createDaemon(options, log);
  const api = new ApiServer(
    {
      socketPath: service.socketPath,
      socketGroup: service.socketGroup,
      adminGroup: service.adminGroup,
      ...DEFAULT_API_LIMITS,
    },
    createHandlers(daemon),
    log,
  );
  const wantMetrics = service.metricsListen !== null || service.metricsTextfile !== null;
  // Null without an exporter: then not a byte is spent on latency histograms.
  const metrics = wantMetrics ? new Metrics(daemon) : null;
  const metricsHttp =
    metrics && service.metricsListen
      ? new MetricsHttpServer(service.metricsListen, () => metrics.renderParts(), log)
      : null;
  const textfile =
    metrics && service.metricsTextfile !== null
      ? new MetricsTextfile(service.metricsTextfile, () => metrics.renderParts({ processMetrics: false }), log)
      : null;
  if (metrics && textfile) metrics.onChange = () => textfile.changed();

  const attribution = attributionSwitch(daemon, log, service.attribution);
  // First: a reload's setting is followed before the reconcile it causes checks anything.
  daemon.stream.subscribe(attribution);

  const outputs: Sink[] = [];
  if (metrics) outputs.push(metrics);
  outputs.push(
    notifySink(daemon.notify, () => daemon.summary()),
    watchSink(api),
  );
  daemon.stream.subscribe(...outputs);

  const reload = (): void => {
    try {
      daemon.reload();
    } catch {
      // on the stream (and so in the journal); the running policy stays in force
    }
  };
  let policyWatch: PolicyWatch | null = null;
  const stop = async (): Promise<void> => {
    policyWatch?.stop();
    daemon.stop();
    attribution.stop();
    await Promise.all([api.close(), metricsHttp?.close(), textfile?.stop()]);
  };

  const started = (async (): Promise<void> => {
    daemon.openStateDir();
    await api.preflight();
    await metricsHttp?.listen(); // a port in use: exit 2 before any change
    daemon.start();
    textfile?.start();
    if (service.watchPolicy !== null) {
      policyWatch = new PolicyWatch(service.watchPolicy, {
        runningChecksum: () => daemon.policy.checksum,
        reload,
        report: (level, message) => log.log(level, message),
      });
      policyWatch.start();
    }
    await api.listen();
    daemon.announceReady();
    // In the same turn as READY: no API request is answered before attribution runs.
    attribution.startAfterReady();
  })();
  return { service: { daemon, stop, reload }, started };
}
