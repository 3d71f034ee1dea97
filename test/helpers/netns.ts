/**
 * Test network namespaces: each test gets its own (`offloadd-t-<random>`), creates veth,
 * bridge, macvlan and tap devices inside it, runs the daemon inside with `ip netns exec`, and
 * deletes everything it made, even when the test fails. The root namespace is never touched.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const OFFLOADD = path.join(REPO_ROOT, 'bin', 'offloadd');

export function run(command: string, args: string[], input?: string): string {
  return execFileSync(command, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

import { call, RemoteError } from '../../src/api/client';
import { waitFor } from './wait';
import { destroyAtExit } from './cleanup';

export { waitFor };

/**
 * Runs the daemon in a private mount namespace with a fresh tmpfs of `size` on `stateDir` (a
 * full or read-only disk without touching the host's); `setup` runs there first (sh, "$0" is
 * the directory). The test reaches the files through /proc/PID/root.
 */
export function onPrivateTmpfs(stateDir: string, size: string, setup = ''): DaemonLaunch {
  return {
    prefix: [
      'unshare',
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      `set -e; mount -t tmpfs -o size=${size},mode=0750 offloadd-test "$0"; ${setup} exec "$@"`,
      stateDir,
    ],
  };
}

/** Kernel suites need root (network namespaces, CAP_NET_ADMIN): skip them, saying so, without it. */
export function skipUnlessRoot(context: Mocha.Context): void {
  if (process.getuid?.() === 0) return;
  process.stdout.write(
    `      skipped "${context.test?.parent?.title ?? ''}": needs root (network namespaces, CAP_NET_ADMIN); run npm test as root\n`,
  );
  context.skip();
}

/**
 * The hooks every kernel suite needs: skip without root (saying why), a fresh namespace for each
 * test handed to `use`, deleted after the test whatever its outcome.
 */
export function eachTestInItsOwnNetns(use: (ns: Netns) => void): void {
  let current: Netns | null = null;
  before(function () {
    skipUnlessRoot(this);
  });
  beforeEach(() => {
    current = new Netns();
    use(current);
  });
  afterEach(async () => {
    await current?.destroy();
    current = null;
  });
}

/** Whether a Unix stream socket accepts a connection now. */
export function canConnect(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/** True once the API at `socketPath` answers a request (any answer, a refusal included). */
async function answers(socketPath: string): Promise<boolean> {
  try {
    await call(socketPath, 'status', {});
    return true;
  } catch (error) {
    return error instanceof RemoteError;
  }
}

export class Netns {
  readonly name = `offloadd-t-${randomBytes(4).toString('hex')}`;
  /** Set once registered with destroyAtExit (cleanup.ts). */
  private unregister: () => void = () => undefined;
  readonly tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-t-'));
  private readonly daemons: DaemonProcess[] = [];

  constructor() {
    run('ip', ['netns', 'add', this.name]);
    this.unregister = destroyAtExit(this);
    this.ip('link', 'set', 'lo', 'up');
  }

  ip(...args: string[]): string {
    return run('ip', ['-n', this.name, ...args]);
  }

  /** `ip -batch` inside the namespace: one process for thousands of commands. */
  ipBatch(commands: string[]): void {
    run('ip', ['-n', this.name, '-batch', '-'], commands.join('\n') + '\n');
  }

  /** The command line that runs `command` in the namespace (for runInCgroup, spawn, ...). */
  commandLine(command: string, ...args: string[]): string[] {
    return ['ip', 'netns', 'exec', this.name, command, ...args];
  }

  exec(command: string, ...args: string[]): string {
    const [ip, ...rest] = this.commandLine(command, ...args);
    return run(ip as string, rest);
  }

  /** Runs a command in the namespace without blocking the loop; resolves with its pid once it exited 0. */
  execAsync(command: string, ...args: string[]): Promise<number> {
    const [ip, ...rest] = this.commandLine(command, ...args);
    return new Promise((resolve, reject) => {
      const child = spawn(ip as string, rest, { stdio: 'ignore' });
      child.once('error', reject);
      child.once('exit', (code) =>
        code === 0 ? resolve(child.pid as number) : reject(new Error(`${command} exited with ${code}`)),
      );
    });
  }

  /** The peer's default name stays out of the tests' name globs. */
  addVeth(name: string, peer = `peer-${name}`): void {
    this.ip('link', 'add', name, 'type', 'veth', 'peer', 'name', peer);
  }

  /** Active state of each feature, from ethtool itself: an observer independent of the daemon. */
  features(ifname: string): Record<string, boolean> {
    const features: Record<string, boolean> = {};
    for (const line of this.exec('ethtool', '-k', ifname).split('\n')) {
      const match = /^\s*([\w-]+): (on|off)/.exec(line);
      if (match) features[match[1] as string] = match[2] === 'on';
    }
    return features;
  }

  /** ethtool -K as an operator would type it, e.g. setFeatures('v0', 'gro', 'on'). */
  setFeatures(ifname: string, ...settings: string[]): void {
    this.exec('ethtool', '-K', ifname, ...settings);
  }

  /** A file in this test's scratch directory. */
  file(name: string, content: string): string {
    const file = path.join(this.tmp, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
    return file;
  }

  /**
   * Starts offloadd in this namespace; `stateDir` to restart on an earlier daemon's state;
   * `launch.prefix` runs it under another command (e.g. unshare and a mount), `launch.socketPath`
   * puts the API socket elsewhere than in the state directory.
   */
  startDaemon(
    args: string[],
    env: NodeJS.ProcessEnv = {},
    stateDir = path.join(this.tmp, `state-${this.daemons.length}`),
    launch: DaemonLaunch = {},
  ): DaemonProcess {
    const daemon = new DaemonProcess(this.name, args, stateDir, env, launch);
    this.daemons.push(daemon);
    return daemon;
  }

  /** offloadd run to completion inside the namespace (e.g. --once, bad policy). */
  runOffloadd(args: string[]): { status: number; stdout: string; stderr: string } {
    try {
      const stdout = execFileSync(
        'ip',
        [
          'netns',
          'exec',
          this.name,
          process.execPath,
          OFFLOADD,
          '--state-dir',
          path.join(this.tmp, 'state-once'),
          '--log-target',
          'console',
          ...args,
        ],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
      return { status: 0, stdout, stderr: '' };
    } catch (error) {
      const failed = error as { status: number; stdout: string; stderr: string };
      return { status: failed.status, stdout: failed.stdout, stderr: failed.stderr };
    }
  }

  async destroy(): Promise<void> {
    await Promise.all(this.daemons.map((daemon) => daemon.stop()));
    this.destroySync();
  }

  destroySync(): void {
    for (const daemon of this.daemons) daemon.kill();
    try {
      run('ip', ['netns', 'del', this.name]);
    } catch {
      // already gone
    }
    fs.rmSync(this.tmp, { recursive: true, force: true });
    this.unregister();
  }
}

export interface DaemonLaunch {
  /** A command the `ip netns exec ...` command line is appended to; it must exec it (same pid). */
  prefix?: string[];
  /** A command between `ip netns exec NAME` and node that execs the rest (e.g. setpriv dropping capabilities). */
  inner?: string[];
  socketPath?: string;
}

export class DaemonProcess {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  /** Set once the daemon has exited and all its output is in `lines`. */
  exitCode: number | null = null;
  private readonly exited: Promise<number | null>;

  readonly socketPath: string;

  constructor(
    netns: string,
    args: string[],
    readonly stateDir: string,
    env: NodeJS.ProcessEnv,
    launch: DaemonLaunch = {},
  ) {
    this.socketPath = launch.socketPath ?? path.join(stateDir, 'api.sock');
    const [command, ...prefixArgs] = [...(launch.prefix ?? []), 'ip'];
    this.child = spawn(
      command,
      [
        ...prefixArgs,
        'netns',
        'exec',
        netns,
        ...(launch.inner ?? []),
        process.execPath,
        OFFLOADD,
        '--state-dir',
        stateDir,
        '--socket',
        this.socketPath,
        '--log-target',
        'console',
        '--log-level',
        'debug',
        ...args,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, JOURNAL_STREAM: '', ...env },
      },
    );
    // Each stream keeps its own unfinished line (stdout's and stderr's chunks interleave), and
    // its last line counts even without a newline (a crash's last words).
    for (const stream of [this.child.stdout, this.child.stderr]) {
      let partial = '';
      stream?.setEncoding('utf8'); // a character split across two chunks stays whole
      stream?.on('data', (text: string) => {
        const parts = (partial + text).split('\n');
        partial = parts.pop() ?? '';
        this.lines.push(...parts);
      });
      stream?.on('end', () => {
        if (partial) this.lines.push(partial);
      });
    }
    // 'close', not 'exit': 'exit' can come before the last of stdout and stderr is read, and a
    // test that sees exitCode set reads `lines` as the daemon's whole output.
    this.exited = new Promise((resolve) =>
      this.child.on('close', (code, signal) => {
        this.exitCode = code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : null); // as a shell reports it
        resolve(this.exitCode);
      }),
    );
  }

  /** The daemon's pid (ip netns exec execs into node, so it is the child's pid). */
  get pid(): number {
    return this.child.pid as number;
  }

  async waitForLine(pattern: RegExp, timeoutMs = 15000): Promise<string> {
    return waitFor(
      () => {
        if (this.exitCode !== null)
          throw new Error(`daemon exited with ${this.exitCode}:\n${this.lines.slice(-30).join('\n')}`);
        return this.lines.find((line) => pattern.test(line));
      },
      `a log line matching ${pattern}\n--- log so far:\n${this.lines.slice(-20).join('\n')}`,
      timeoutMs,
    );
  }

  /**
   * Ready = the API answers (it listens only after the initial reconcile, and answers nothing
   * before what READY's turn starts, attribution included): a connection alone is accepted by the
   * kernel while the daemon may still be busy.
   */
  async ready(timeoutMs = 15000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exitCode !== null)
        throw new Error(`daemon exited with ${this.exitCode}:\n${this.lines.slice(-30).join('\n')}`);
      if (await answers(this.socketPath)) return;
      if (Date.now() > deadline)
        throw new Error(`daemon not ready after ${timeoutMs} ms:\n${this.lines.slice(-20).join('\n')}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  linesMatching(pattern: RegExp): string[] {
    return this.lines.filter((line) => pattern.test(line));
  }

  signal(signal: NodeJS.Signals): void {
    if (this.exitCode === null) this.child.kill(signal);
  }

  async stop(): Promise<number | null> {
    if (this.exitCode === null) {
      this.child.kill('SIGCONT');
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.kill(), 10000);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exitCode;
  }

  kill(): void {
    if (this.exitCode === null) {
      try {
        this.child.kill('SIGKILL');
      } catch {
        // gone
      }
    }
  }
}

/**
 * A sysfs tree of the real layout presenting `ifname` as a PCI device, so policy matching by
 * driver and PCI id can be exercised with a veth.
 */
export function fakePciDevice(
  root: string,
  ifname: string,
  device: {
    vendor: string;
    device: string;
    driver: string;
    bus: string;
    subsystemVendor?: string;
    subsystemDevice?: string;
  },
): void {
  const deviceDir = path.join(root, 'devices', 'pci0000:00', device.bus);
  const driverDir = path.join(root, 'bus', 'pci', 'drivers', device.driver);
  fs.mkdirSync(deviceDir, { recursive: true });
  fs.mkdirSync(driverDir, { recursive: true });
  fs.mkdirSync(path.join(root, 'class', 'net', ifname), { recursive: true });
  fs.writeFileSync(path.join(deviceDir, 'vendor'), `0x${device.vendor}\n`);
  fs.writeFileSync(path.join(deviceDir, 'device'), `0x${device.device}\n`);
  fs.writeFileSync(path.join(deviceDir, 'subsystem_vendor'), `0x${device.subsystemVendor ?? device.vendor}\n`);
  fs.writeFileSync(path.join(deviceDir, 'subsystem_device'), `0x${device.subsystemDevice ?? '0000'}\n`);
  fs.symlinkSync(path.relative(deviceDir, driverDir), path.join(deviceDir, 'driver'));
  fs.symlinkSync(
    path.relative(path.join(root, 'class', 'net', ifname), deviceDir),
    path.join(root, 'class', 'net', ifname, 'device'),
  );
}
