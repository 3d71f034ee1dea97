/** Pieces several scenarios share: the daemon's start/stop, the baselines, the ledger watcher. */
import * as fs from 'node:fs';
import type { BenchContext } from '../context';
import { BenchDaemon, benchPolicy, type DaemonOptions, type LogLevel } from '../daemon';
import type { BenchNetns } from '../netns';
import { median } from '../stats';
import { elapsedUs, nowNs, settle } from '../system';

/** Starts offloadd with the benchmark policy in `netns`, after letting the machine settle. */
export async function startDaemon(
  ctx: BenchContext,
  netns: BenchNetns,
  logLevel: LogLevel,
  label: string,
  policy = benchPolicy(),
  options: Pick<DaemonOptions, 'extraArgs' | 'prepareState'> = {},
): Promise<BenchDaemon> {
  await settle();
  const daemon = new BenchDaemon(netns, {
    runtime: ctx.runtime,
    policy,
    logLevel,
    profileDir: ctx.profileDir,
    label,
    ...options,
  });
  await daemon.start();
  return daemon;
}

/** Runs `body` with a started daemon and always stops it. */
export async function withDaemon<T>(
  ctx: BenchContext,
  netns: BenchNetns,
  logLevel: LogLevel,
  label: string,
  body: (daemon: BenchDaemon) => Promise<T>,
): Promise<T> {
  const daemon = await startDaemon(ctx, netns, logLevel, label);
  try {
    return await body(daemon);
  } finally {
    await daemon.stop();
  }
}

/**
 * The C floor per interface (µs): the median of `reps` timed passes, each from a state where every
 * PREFIX* interface needs the change. Also returns the already-compliant pass.
 */
export async function floorPerInterface(
  ctx: BenchContext,
  netns: BenchNetns,
  prefix: string,
  via: 'ioctl' | 'ethtool-netlink' = 'ioctl',
): Promise<{ changeUs: number; compliantUs: number; count: number }> {
  const change: number[] = [];
  const compliant: number[] = [];
  let count = 0;
  const pass = (): ReturnType<BenchNetns['floorRun']> =>
    via === 'ioctl' ? netns.floorRun(prefix) : netns.floorNetlinkRun(prefix);
  for (let rep = 0; rep < ctx.reps; rep++) {
    netns.setAll(prefix, true);
    await settle();
    const first = pass();
    if (first.changed !== first.count || first.failed > 0)
      throw new Error(`${via} floor changed ${first.changed}/${first.count}, ${first.failed} failed`);
    change.push(first.totalNs / 1000 / first.count);
    const second = pass();
    compliant.push(second.totalNs / 1000 / second.count);
    count = first.count;
  }
  return { changeUs: median(change), compliantUs: median(compliant), count };
}

/**
 * Today's practice: a shell loop running `ethtool -K IF gro off gso off` once per interface, as
 * udev RUN+= rules and boot scripts do. Returns the total µs; checks it did the job.
 */
export function ethtoolLoopUs(netns: BenchNetns, prefix: string, names: readonly string[]): number {
  netns.setAll(prefix, true);
  const started = nowNs();
  netns.exec(
    'bash',
    '-c',
    'for i in "$@"; do ethtool -K "$i" gro off gso off >/dev/null 2>&1; done',
    'bench',
    ...names,
  );
  const totalUs = elapsedUs(started);
  const left = netns.countOn(prefix);
  if (left.on !== 0) throw new Error(`the ethtool loop left ${left.on} interfaces with gso on`);
  return totalUs;
}

/** Throws unless every PREFIX* interface exists (`expected` of them) with the feature off. */
export function assertCompliant(netns: BenchNetns, prefix: string, expected: number): void {
  const state = netns.countOn(prefix);
  if (state.count !== expected || state.on !== 0) {
    throw new Error(
      `expected ${expected} compliant ${prefix}* interfaces, found ${state.count} with ${state.on} still on`,
    );
  }
}

/**
 * Counts ledger records of a kind as the daemon appends them, reading only the new bytes on each
 * poll (cheap enough to poll every millisecond next to a busy daemon on two cores).
 */
export class LedgerWatcher {
  private fd: number | null = null;
  private offset = 0;
  private partial = '';
  count = 0;

  constructor(
    private readonly file: string,
    private readonly needle: string,
  ) {}

  poll(): number {
    if (this.fd === null) {
      if (!fs.existsSync(this.file)) return this.count;
      this.fd = fs.openSync(this.file, 'r');
    }
    const size = fs.fstatSync(this.fd).size;
    if (size <= this.offset) return this.count;
    const bytes = Buffer.alloc(size - this.offset);
    const read = fs.readSync(this.fd, bytes, 0, bytes.length, this.offset);
    this.offset += read;
    const lines = (this.partial + bytes.subarray(0, read).toString('utf8')).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) if (line.includes(this.needle)) this.count++;
    return this.count;
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

export function correctionUsMedian(daemon: BenchDaemon, kind: string): number {
  const values = daemon
    .ledger()
    .filter((record) => record.event === kind && typeof record.correctionUs === 'number')
    .map((record) => record.correctionUs as number);
  return median(values);
}
