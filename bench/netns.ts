/**
 * A benchmark network namespace (`bench-<random>`) with its scratch directory. Thousands of
 * veths are created with one `ip -batch` and never deleted one by one (an RCU grace period each):
 * the whole namespace goes at once. Every namespace is deleted on destroy(), and any left over
 * when the process exits (an exception, Ctrl-C) is deleted by the exit hook.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run, runAsync } from './system';
import type { CTools } from './tools';

/** The feature every scenario's policy turns off: `gso` (on by default on veth). */
export const FEATURE = 'tx-generic-segmentation';

const live = new Set<BenchNetns>();
process.on('exit', () => {
  for (const netns of live) netns.destroy();
});
for (const [signal, number] of [
  ['SIGINT', 2],
  ['SIGTERM', 15],
] as const) {
  process.once(signal, () => {
    for (const netns of live) netns.destroy();
    process.exit(128 + number);
  });
}

export interface SpawnOptions {
  stdout?: 'pipe' | 'ignore' | number;
  stderr?: 'pipe' | 'ignore' | number;
  env?: NodeJS.ProcessEnv;
  /** A reactor (offloadd, a C reactor) runs on the reactor CPU when the namespace is pinned. */
  role?: 'reactor';
}

/**
 * CPUs for `taskset -c` (all of a process's threads inherit them): whatever reacts to the
 * kernel's events on one, the observers that time it on another, so that neither waits for the
 * other's CPU; the machine's other load still reaches both.
 */
export interface Pinning {
  reactor: string;
  observer: string;
}

export const PINNED: Pinning = { reactor: '1', observer: '0' };

/** The pinning of every new namespace (--pin); a scenario may change a namespace's own. */
let defaultPinning: Pinning | null = null;

export function setDefaultPinning(pinning: Pinning | null): void {
  defaultPinning = pinning;
}

export interface FloorRun {
  count: number;
  changed: number;
  failed: number;
  totalNs: number;
}

export class BenchNetns {
  readonly name = `bench-${randomBytes(4).toString('hex')}`;
  readonly tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-bench-'));
  private readonly children = new Set<ChildProcess>();
  pinning: Pinning | null = defaultPinning;

  constructor(readonly tools: CTools) {
    run('ip', ['netns', 'add', this.name]);
    live.add(this);
    this.ip('link', 'set', 'lo', 'up');
  }

  ip(...args: string[]): string {
    return run('ip', ['-n', this.name, ...args]);
  }

  /** `ip -batch` inside the namespace: one process for thousands of commands. */
  batch(commands: readonly string[]): void {
    run('ip', ['-n', this.name, '-batch', '-'], commands.join('\n') + '\n');
  }

  /** A command inside the namespace, to completion. */
  exec(command: string, ...args: string[]): string {
    return run('ip', ['netns', 'exec', this.name, command, ...args]);
  }

  /**
   * A command inside the namespace, to completion, without blocking the event loop. Tracked like
   * spawn(): a process inside keeps even a deleted namespace alive, so destroy() must kill it.
   */
  execAsync(command: string, ...args: string[]): Promise<{ stdout: string; stderr: string }> {
    return runAsync(
      'ip',
      ['netns', 'exec', this.name, ...this.pinned(this.pinning?.observer), command, ...args],
      undefined,
      (child) => {
        this.children.add(child);
        child.on('exit', () => this.children.delete(child));
      },
    );
  }

  /** A long-running command inside the namespace; killed on destroy() if still running. */
  spawn(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
    const cpus = options.role === 'reactor' ? this.pinning?.reactor : undefined;
    const child = spawn('ip', ['netns', 'exec', this.name, ...this.pinned(cpus), command, ...args], {
      stdio: ['ignore', options.stdout ?? 'pipe', options.stderr ?? 'pipe'],
      env: options.env ?? process.env,
    });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /** `taskset -c CPUS` (which execs: the pid stays the command's), or nothing. */
  private pinned(cpus: string | undefined): string[] {
    return cpus === undefined ? [] : ['taskset', '-c', cpus];
  }

  /** Signals a child started by spawn() (`ip netns exec` execs into it: same pid). */
  kill(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.children.has(child)) return;
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }

  // ---- the C tools, run inside the namespace -------------------------------------------------

  /** Timed pass of the floor over every PREFIX* interface. */
  floorRun(prefix: string): FloorRun {
    return JSON.parse(this.exec(this.tools.path('floor'), 'run', prefix, FEATURE)) as FloorRun;
  }

  /** The same pass over ethtool netlink, pipelined by ifindex (floor_nl.c). */
  floorNetlinkRun(prefix: string): FloorRun {
    return JSON.parse(this.exec(this.tools.path('floor_nl'), 'run', prefix, FEATURE)) as FloorRun;
  }

  /** Puts the benchmark feature on (or off) on every PREFIX* interface, untimed. */
  setAll(prefix: string, on: boolean): void {
    const result = JSON.parse(
      this.exec(this.tools.path('floor'), 'set', prefix, FEATURE, on ? 'on' : 'off'),
    ) as FloorRun;
    if (result.failed > 0)
      throw new Error(`could not set ${FEATURE} ${on ? 'on' : 'off'} on ${result.failed} interfaces`);
  }

  /** How many PREFIX* interfaces exist, and how many still have the feature on. */
  countOn(prefix: string): { count: number; on: number } {
    return JSON.parse(this.exec(this.tools.path('floor'), 'count', prefix, FEATURE)) as { count: number; on: number };
  }

  /** Observer modes that print one JSON object (exposure, drift). */
  async observe<T>(...args: string[]): Promise<T> {
    const { stdout } = await this.execAsync(this.tools.path('observer'), ...args);
    return JSON.parse(stdout) as T;
  }

  destroy(): void {
    for (const child of [...this.children]) this.kill(child);
    this.children.clear();
    try {
      run('ip', ['netns', 'del', this.name]);
    } catch {
      // already gone
    }
    fs.rmSync(this.tmp, { recursive: true, force: true });
    live.delete(this);
  }
}

/**
 * `ip -batch` lines for `pairs` veth pairs named PREFIX00001a / PREFIX00001b, ...: both ends
 * match a policy glob `PREFIX*`, so N pairs are 2N managed interfaces.
 */
export function vethPairCommands(prefix: string, pairs: number, first = 1): string[] {
  const commands: string[] = [];
  for (let index = first; index < first + pairs; index++) {
    const id = String(index).padStart(5, '0');
    commands.push(`link add ${prefix}${id}a type veth peer name ${prefix}${id}b`);
  }
  return commands;
}

/** The interface names vethPairCommands creates. */
export function vethPairNames(prefix: string, pairs: number, first = 1): string[] {
  const names: string[] = [];
  for (let index = first; index < first + pairs; index++) {
    const id = String(index).padStart(5, '0');
    names.push(`${prefix}${id}a`, `${prefix}${id}b`);
  }
  return names;
}

/** Runs a block with a fresh namespace and always deletes it. */
export async function withNetns<T>(tools: CTools, body: (netns: BenchNetns) => Promise<T>): Promise<T> {
  const netns = new BenchNetns(tools);
  try {
    return await body(netns);
  } finally {
    netns.destroy();
  }
}
