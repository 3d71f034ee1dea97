/**
 * offloadd as the benchmark runs it: inside a benchmark namespace (`ip netns exec`, which execs
 * into node, so the child's pid is the daemon's), with its own policy, state directory, API
 * socket and log file, and a stand-in systemd notify socket (observer.c `notify`) that timestamps
 * READY=1 on the same monotonic clock as ours, then takes every later message as systemd does.
 * READY is sent once the initial reconcile is done, the records are durable and the API
 * listens, i.e. when every interface is compliant.
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LedgerRecord } from '../src/ledger/record';
import type { BenchNetns } from './netns';
import type { DaemonRuntime } from './runtime';
import { cpuNs, memoryStatus, nowNs, type MemoryStatus } from './system';

export type LogLevel = 'info' | 'warning';

export interface DaemonOptions {
  /** The node binary, entry script, node options and environment. */
  runtime: DaemonRuntime;
  policy: string;
  logLevel: LogLevel;
  /** Directory for a V8 CPU profile (`node --cpu-prof`), or null. */
  profileDir: string | null;
  /** Names the run (files in the scratch directory, the profile). */
  label: string;
  /** More offloadd options, given the daemon's scratch directory (e.g. --metrics-textfile in it). */
  extraArgs?: (dir: string) => string[];
  /** Fills the (new, empty) state directory before the spawn, e.g. with a ledger's history. */
  prepareState?: (stateDir: string) => void;
}

const READY_TIMEOUT_S = 300;

let started = 0;

export class BenchDaemon {
  readonly dir: string;
  readonly socketPath: string;
  readonly stateDir: string;
  readonly logPath: string;
  /** From spawn to READY=1, µs. */
  startupUs = NaN;
  private child: ChildProcess | null = null;
  private notify: ChildProcess | null = null;
  private exited: Promise<number | null> = Promise.resolve(null);
  private exitCode: number | null = null;

  constructor(
    private readonly netns: BenchNetns,
    private readonly options: DaemonOptions,
  ) {
    this.dir = path.join(netns.tmp, `daemon-${++started}-${options.label}`);
    fs.mkdirSync(this.dir, { recursive: true });
    this.socketPath = path.join(this.dir, 'api.sock');
    this.stateDir = path.join(this.dir, 'state');
    this.logPath = path.join(this.dir, 'offloadd.log');
  }

  get pid(): number {
    if (!this.child?.pid) throw new Error('daemon not started');
    return this.child.pid;
  }

  /** Starts the daemon and resolves at READY=1 (startupUs set). */
  async start(): Promise<void> {
    const policyPath = path.join(this.dir, 'policy.yaml');
    fs.writeFileSync(policyPath, this.options.policy);
    if (this.options.prepareState) {
      fs.mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
      this.options.prepareState(this.stateDir);
    }
    const notifySocket = path.join(this.dir, 'notify.sock');
    // Started through the namespace (a path socket works across namespaces) so that it is
    // tracked and killed with everything else if the run is interrupted.
    const notify = this.netns.spawn(this.netns.tools.path('observer'), [
      'notify',
      notifySocket,
      String(READY_TIMEOUT_S),
    ]);
    const lines = new LineReader(notify);
    this.notify = notify;
    try {
      await lines.next(); // "listening": bound before the daemon can send
      const ready = lines.next();
      const spawnedAt = nowNs();
      this.spawnDaemon(policyPath, notifySocket);
      const readyNs = await Promise.race([
        ready.then((line) => BigInt((JSON.parse(line) as { readyNs: number }).readyNs)),
        this.exited.then((code) => {
          throw new Error(`offloadd exited with ${code} before READY:\n${this.logTail()}`);
        }),
      ]);
      this.startupUs = Number(readyNs - spawnedAt) / 1000;
    } catch (error) {
      this.stopNotify();
      throw error;
    }
  }

  /** The stand-in notify socket reads the daemon's STATUS= and WATCHDOG=1 until it stops, as systemd does. */
  private stopNotify(): void {
    if (this.notify) this.netns.kill(this.notify);
    this.notify = null;
  }

  private spawnDaemon(policyPath: string, notifySocket: string): void {
    const log = fs.openSync(this.logPath, 'w');
    const { runtime } = this.options;
    const profileFlags = this.options.profileDir
      ? ['--cpu-prof', '--cpu-prof-dir', this.options.profileDir, '--cpu-prof-name', `${this.options.label}.cpuprofile`]
      : [];
    const child = this.netns.spawn(
      runtime.node,
      [
        ...runtime.nodeFlags,
        ...profileFlags,
        runtime.entry,
        '--policy',
        policyPath,
        '--state-dir',
        this.stateDir,
        '--socket',
        this.socketPath,
        '--log-level',
        this.options.logLevel,
        '--log-target',
        'console',
        ...(this.options.extraArgs?.(this.dir) ?? []),
      ],
      {
        stdout: log,
        stderr: log,
        env: { ...process.env, ...runtime.env, NOTIFY_SOCKET: notifySocket, JOURNAL_STREAM: '' },
        role: 'reactor',
      },
    );
    fs.closeSync(log);
    this.child = child;
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? 128 : null);
        resolve(this.exitCode);
      }),
    );
  }

  cpuNs(): number {
    return cpuNs(this.pid);
  }

  memory(): MemoryStatus {
    return memoryStatus(this.pid);
  }

  get running(): boolean {
    return this.child !== null && this.exitCode === null;
  }

  /** Every record in the ledger (a fresh state directory per daemon, so only this run's). */
  ledger(): LedgerRecord[] {
    const file = path.join(this.stateDir, 'ledger.jsonl');
    if (!fs.existsSync(file)) return [];
    const records: LedgerRecord[] = [];
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      if (line) records.push(JSON.parse(line) as LedgerRecord);
    }
    return records;
  }

  get ledgerPath(): string {
    return path.join(this.stateDir, 'ledger.jsonl');
  }

  logTail(lines = 20): string {
    try {
      return fs.readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** SIGTERM and wait (a CPU profile is written at exit); SIGKILL after 20 s. */
  async stop(): Promise<number | null> {
    if (!this.running || !this.child) {
      this.stopNotify();
      return this.exitCode;
    }
    this.child.kill('SIGTERM');
    const child = this.child;
    const timer = setTimeout(() => child.kill('SIGKILL'), 20000);
    const code = await this.exited;
    clearTimeout(timer);
    this.stopNotify();
    return code;
  }
}

/** Lines of a child's stdout as promises, none lost between two calls of next(). */
export class LineReader {
  private readonly lines: string[] = [];
  private partial = '';
  private stderr = '';
  private ended: number | null | undefined = undefined;
  private waiter: (() => void) | null = null;

  constructor(child: ChildProcess) {
    child.stdout?.on('data', (chunk: Buffer) => {
      const parts = (this.partial + chunk.toString('utf8')).split('\n');
      this.partial = parts.pop() ?? '';
      this.lines.push(...parts);
      this.wake();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString('utf8');
    });
    child.on('exit', (code) => {
      this.ended = code;
      this.wake();
    });
  }

  async next(): Promise<string> {
    for (;;) {
      const line = this.lines.shift();
      if (line !== undefined) return line;
      if (this.ended !== undefined) throw new Error(`helper exited with ${this.ended}: ${this.stderr.trim()}`);
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  /** Drops lines already received (e.g. a readiness probe's). */
  discard(): void {
    this.lines.length = 0;
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }
}

/**
 * The benchmark's policy: gso off on every interface named `m*` (the scenarios name unmanaged
 * peers `u*`), with flapping limits as shipped except a short max_backoff.
 */
export function benchPolicy(): string {
  return [
    '# offloadd benchmark policy (written by bench/daemon.ts)',
    'mode: enforce',
    'sweep_interval: 300',
    'flapping: { max_corrections: 5, window: 60, max_backoff: 8 }',
    'rules:',
    '  - name: bench-gso-off',
    '    match: { name: "m*" }',
    '    features: { gso: off }',
    '',
  ].join('\n');
}
