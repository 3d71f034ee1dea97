/**
 * Whatever reacts to link events in a scenario, and the observer-driven trials run against it:
 *  - offloadd (log info, as run);
 *  - the C floor: observer.c `reactor`, a minimal event-driven C daemon (GFEATURES on every
 *    matching link an event names; GDRVINFO + SFEATURES + GFEATURES when the feature is on);
 *  - today's practice: the same C listener running an `ethtool -K IF gro off gso off` process
 *    per event of a matching interface whose feature is on, which is what a udev RUN+= rule
 *    amounts to (udev itself does not run in a benchmark namespace, and an `ip monitor | while
 *    read` shell loop, tried first, lost events in a 5,000-veth burst and never finished).
 */
import type { BenchContext } from '../context';
import { LineReader, type LogLevel } from '../daemon';
import { FEATURE, type BenchNetns } from '../netns';
import { distribution, nsToUs, type Distribution } from '../stats';
import { cpuNs, nowNs, sleep } from '../system';
import { LedgerWatcher, startDaemon } from './common';

export type ReactorKind = 'offloadd' | 'floor' | 'today';

/** Gap between trials (jittered ±50 % by the observer): the reactor is idle when a trial starts. */
const GAP_US = 10_000;
const TIMEOUT_MS = 2_000;

export interface Reactor {
  kind: ReactorKind;
  /** CPU time of the reacting process in ns; NaN for today's (its ethtool children are not in it). */
  cpuNs(): number;
  /**
   * Resolves with the monotonic time (ns) at which the reactor had brought `n` interfaces into
   * policy since it started, as it reports it: offloadd's ledger (records are written after the
   * read-back verified the change), the C reactors' own count of verified corrections.
   */
  allCompliant(n: number, timeoutMs: number): Promise<bigint>;
  stop(): Promise<void>;
}

export interface ReactorOptions {
  logLevel?: LogLevel;
  /** The C reactor announces when it has corrected this many interfaces (bursts). */
  reportAfter?: number;
  /** Names the C reactors look after (offloadd always follows the policy's "m*"). */
  prefix?: string;
  /** More offloadd options (e.g. --attribution=off). */
  daemonArgs?: string[];
}

async function offloaddReactor(
  ctx: BenchContext,
  netns: BenchNetns,
  label: string,
  logLevel: LogLevel,
  daemonArgs: string[] = [],
): Promise<Reactor> {
  const daemon = await startDaemon(ctx, netns, logLevel, label, undefined, { extraArgs: () => daemonArgs });
  return {
    kind: 'offloadd',
    cpuNs: () => daemon.cpuNs(),
    allCompliant: async (n, timeoutMs) => {
      const watcher = new LedgerWatcher(daemon.ledgerPath, '"event":"initial"');
      const deadline = Date.now() + timeoutMs;
      try {
        while (watcher.poll() < n) {
          if (Date.now() > deadline)
            throw new Error(
              `offloadd: ${watcher.count}/${n} initial records after ${timeoutMs} ms\n${daemon.logTail()}`,
            );
          await sleep(1);
        }
        return nowNs();
      } finally {
        watcher.close();
      }
    },
    stop: async () => {
      await daemon.stop();
    },
  };
}

/** observer.c `reactor`: ioctls (the floor) or an ethtool process per event (today). */
async function cReactor(
  ctx: BenchContext,
  netns: BenchNetns,
  kind: 'floor' | 'today',
  reportAfter: number,
  prefix: string,
): Promise<Reactor> {
  const child = netns.spawn(
    ctx.tools.path('observer'),
    ['reactor', FEATURE, prefix, String(reportAfter), kind === 'floor' ? 'ioctl' : 'ethtool'],
    { role: 'reactor' },
  );
  const lines = new LineReader(child);
  await lines.next(); // "ready": subscribed
  return {
    kind,
    // The ethtool processes it waits for are its children: their CPU is not in its schedstat.
    cpuNs: () => (kind === 'floor' ? cpuNs(child.pid as number) : NaN),
    allCompliant: async (n, timeoutMs) => {
      if (n !== reportAfter) throw new Error('the C reactor was started to report after a different count');
      const line = await withTimeout(lines.next(), timeoutMs, `the C reactor (${kind})`);
      return BigInt((JSON.parse(line) as { compliantNs: number }).compliantNs);
    },
    stop: () => {
      netns.kill(child);
      return Promise.resolve();
    },
  };
}

export async function startReactor(
  ctx: BenchContext,
  netns: BenchNetns,
  kind: ReactorKind,
  label: string,
  options: ReactorOptions = {},
): Promise<Reactor> {
  switch (kind) {
    case 'offloadd':
      return offloaddReactor(ctx, netns, label, options.logLevel ?? 'info', options.daemonArgs);
    case 'floor':
    case 'today':
      return cReactor(ctx, netns, kind, options.reportAfter ?? 0, options.prefix ?? 'm');
  }
}

/** Runs `body` while the reactor of `kind` watches `netns`; stops it afterwards. */
export async function withReactor<T>(
  ctx: BenchContext,
  netns: BenchNetns,
  kind: ReactorKind,
  label: string,
  body: (reactor: Reactor) => Promise<T>,
  options: ReactorOptions = {},
): Promise<T> {
  const reactor = await startReactor(ctx, netns, kind, label, options);
  try {
    return await body(reactor);
  } finally {
    await reactor.stop();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface ExposureSamples {
  /** From the kernel's first event announcing the link until the feature reads off, µs (timeouts = Infinity). */
  exposure: Distribution;
  /** From just before the create request (an upper bound: includes creating the pair). */
  fromRequest: Distribution;
  /** The create request itself, until its acknowledgement. */
  create: Distribution;
  timeouts: number;
  samplesUs: number[];
}

/** Hot-plug trials: veth PREFIX<i> (matching) with peer PEER<i> (not matching), one at a time. */
export async function exposureTrials(
  netns: BenchNetns,
  prefix: string,
  peerPrefix: string,
  trials: number,
): Promise<ExposureSamples> {
  const result = await netns.observe<{
    exposureNs: number[];
    fromRequestNs: number[];
    createNs: number[];
    timeouts: number;
  }>('exposure', FEATURE, prefix, peerPrefix, String(trials), String(GAP_US), String(TIMEOUT_MS));
  const exposure = nsToUs(result.exposureNs);
  return {
    exposure: distribution(exposure),
    fromRequest: distribution(nsToUs(result.fromRequestNs)),
    create: distribution(nsToUs(result.createNs)),
    timeouts: result.timeouts,
    samplesUs: exposure,
  };
}

export interface DriftSamples {
  drift: Distribution;
  timeouts: number;
  interfaces: number;
  samplesUs: number[];
}

/** Drift trials round robin over the PREFIX* interfaces: feature on, spin until it is off. */
export async function driftTrials(netns: BenchNetns, prefix: string, trials: number): Promise<DriftSamples> {
  const result = await netns.observe<{ driftNs: number[]; interfaces: number; timeouts: number }>(
    'drift',
    FEATURE,
    prefix,
    String(trials),
    String(GAP_US / 2),
    String(TIMEOUT_MS),
  );
  const samples = nsToUs(result.driftNs);
  return { drift: distribution(samples), timeouts: result.timeouts, interfaces: result.interfaces, samplesUs: samples };
}
