/**
 * Process and machine helpers for the benchmark: running commands, the monotonic clock, a
 * process's CPU time and memory from /proc, and waiting for the machine to go quiet between
 * measurements (deleting a namespace with thousands of veths keeps a kernel worker busy for a
 * while after `ip netns del` returns, and another session may share this 2-core machine).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The repository (dist/bench/x.js → ../..). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

export function run(command: string, args: readonly string[], input?: string): string {
  return execFileSync(command, args, {
    encoding: 'utf8',
    input,
    stdio: ['pipe', 'pipe', 'pipe'],
    maxBuffer: 256 * 1024 * 1024,
  });
}

/** CLOCK_MONOTONIC in ns: the clock the C observers print, so their times compare with ours. */
export function nowNs(): bigint {
  return process.hrtime.bigint();
}

export function elapsedUs(since: bigint, until: bigint = nowNs()): number {
  return Number(until - since) / 1000;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs a command to completion without blocking the event loop; rejects on a non-zero exit.
 * `started` sees the child first (to track it for clean-up).
 */
export function runAsync(
  command: string,
  args: readonly string[],
  input?: string,
  started?: (child: ChildProcess) => void,
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    started?.(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve({ stdout, stderr });
      else
        reject(new Error(`${command} ${args.slice(0, 6).join(' ')} exited with ${code}: ${stderr.trim().slice(-500)}`));
    });
    child.stdin.end(input ?? '');
  });
}

/**
 * CPU time of a process (all its live threads), in ns, from /proc/PID/task/TID/schedstat
 * (nanosecond resolution; /proc/PID/stat counts 10 ms ticks, too coarse for short windows).
 */
export function cpuNs(pid: number): number {
  let total = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return total;
}

/** utime + stime from /proc/PID/stat, in ms (includes threads that have ended). */
export function cpuTicksMs(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10; // USER_HZ is 100
}

export interface MemoryStatus {
  rssKiB: number;
  peakRssKiB: number;
  voluntarySwitches: number;
  involuntarySwitches: number;
}

export function memoryStatus(pid: number): MemoryStatus {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return {
    rssKiB: field('VmRSS'),
    peakRssKiB: field('VmHWM'),
    voluntarySwitches: field('voluntary_ctxt_switches'),
    involuntarySwitches: field('nonvoluntary_ctxt_switches'),
  };
}

interface CpuSample {
  busy: number;
  total: number;
}

function machineCpu(): CpuSample {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const total = values.reduce((sum, value) => sum + value, 0);
  const idle = (values[3] ?? 0) + (values[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

/** Busy and total jiffies per CPU (cpu0, cpu1, ...), from /proc/stat. */
function perCpu(): CpuSample[] {
  return fs
    .readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .filter((line) => /^cpu\d+ /.test(line))
    .map((line) => {
      const values = line.trim().split(/\s+/).slice(1).map(Number);
      const total = values.reduce((sum, value) => sum + value, 0);
      return { busy: total - (values[3] ?? 0) - (values[4] ?? 0), total };
    });
}

/**
 * Starts a window over the machine's load; the function returned ends it and gives each CPU's
 * busy fraction over the window (everything that ran: the measured processes and everyone else).
 */
export function loadWindow(): () => number[] {
  const before = perCpu();
  return () =>
    perCpu().map((after, index) => {
      const start = before[index] ?? { busy: 0, total: 0 };
      const total = after.total - start.total;
      return total > 0 ? (after.busy - start.busy) / total : 0;
    });
}

/** Fraction of all cores busy over `ms`. */
export async function machineBusy(ms: number): Promise<number> {
  const before = machineCpu();
  await sleep(ms);
  const after = machineCpu();
  const total = after.total - before.total;
  return total > 0 ? (after.busy - before.busy) / total : 0;
}

/** How long settle() waits at most by default (shorter in --quick mode). */
let settleLimitMs = 8000;

export function setSettleLimit(ms: number): void {
  settleLimitMs = ms;
}

/**
 * Waits until the machine is quiet (under `threshold` of all cores busy for two samples in a
 * row), at most `maxMs`. Returns the last busy fraction, so a noisy measurement can say so.
 */
export async function settle(maxMs = settleLimitMs, threshold = 0.08): Promise<number> {
  const deadline = Date.now() + maxMs;
  let quietSamples = 0;
  let busy = 1;
  while (Date.now() < deadline) {
    busy = await machineBusy(250);
    quietSamples = busy < threshold ? quietSamples + 1 : 0;
    if (quietSamples >= 2) break;
  }
  return busy;
}
