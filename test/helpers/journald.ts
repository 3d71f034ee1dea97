/**
 * A real, standalone systemd-journald for tests, without systemd as PID 1
 * (docs: the shared notes' systemd-testing.md, recipe 1).
 *
 * journald runs in a private mount namespace with tmpfs over /run/systemd and /run/log, so it
 * creates its sockets (/run/systemd/journal/socket, stdout, dev-log) there and keeps its files in
 * this test's own store directory; the host's journal and sockets are never touched. A holder
 * shell keeps the namespace alive, and commands join it with `nsenter -m`, so a process under test
 * logs to this journald exactly as it would to the system's (default socket paths). The store is
 * read from outside with `journalctl -D`.
 *
 * A process started with `cgroupUnit: 'offloadd.service'` runs in the cgroup
 * `<hierarchy>/offloadd-t-<id>.slice/offloadd.service`, so journald derives
 * `_SYSTEMD_UNIT=offloadd.service` (and `journalctl -u offloadd` works) with no service manager.
 * journald reads a sender's cgroup from /proc when the message arrives: a sender that has already
 * exited (logger, systemd-notify) may get no _SYSTEMD_UNIT at all. Long-lived senders are fine.
 *
 * Cleanup: stop() ends every process started here, journald and the holder, removes the cgroup
 * directories and the scratch directory. If the test process dies instead, the holder sees its
 * stdin close and stops journald itself.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { destroyAtExit } from './cleanup';
import { journaldCgroupRoot, removeCgroupTree } from './cgroup';
import { isZombie, sleepSync } from './proc';

export const JOURNALD_BINARY_CANDIDATES = ['/lib/systemd/systemd-journald', '/usr/lib/systemd/systemd-journald'];
/** journald's native-protocol socket, as seen by processes inside the namespace. */
export const JOURNAL_SOCKET_INSIDE = '/run/systemd/journal/socket';

/** A journal entry as `journalctl -o json` prints it (binary or repeated fields come as arrays). */
export type JournalValue = string | number[] | Array<string | number[]> | null;
export type JournalEntry = Record<string, JournalValue>;

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Added to (overriding) the test process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Run inside a cgroup named like this unit, so journald tags entries `_SYSTEMD_UNIT=<unit>`. */
  cgroupUnit?: string;
  /** Written to the process's stdin, which is then closed (otherwise stdin is /dev/null). */
  input?: string | Buffer;
}

export interface JournaldOptions {
  /** Extra journald.conf [Journal] lines, e.g. ['MaxLevelStore=info']. */
  config?: string[];
  /** Leave the scratch directory (store, journald's own log) in place after stop(), for debugging. */
  keep?: boolean;
  startTimeoutMs?: number;
}

/**
 * In a suite's `before`: skips it, saying why, where no journald can be run here (not installed,
 * or not root).
 */
export function skipUnlessJournald(context: Mocha.Context): void {
  let missing: string | null;
  try {
    findJournald();
    missing = process.getuid?.() === 0 ? null : 'needs root';
  } catch (error) {
    missing = (error as Error).message;
  }
  if (missing === null) return;
  process.stdout.write(`      skipped: ${missing}\n`);
  context.skip();
}

export function findJournald(): string {
  const found = JOURNALD_BINARY_CANDIDATES.find((candidate) => fs.existsSync(candidate));
  if (!found)
    throw new Error(
      `systemd-journald not found (tried ${JOURNALD_BINARY_CANDIDATES.join(', ')}): apt-get install systemd`,
    );
  return found;
}

/** Set up the namespace, start journald, report its pid, then wait for stdin to close. */
const HOLDER_SCRIPT = String.raw`
set -eu
W=$1 JOURNALD=$2 SLICE=$3 KEEP=$4
# /run/systemd is missing where PID 1 is not systemd (a container, a chroot): made first.
[ -d /run/systemd ] || mkdir -p /run/systemd
mount -t tmpfs -o mode=755 tmpfs /run/systemd
mkdir -p /run/systemd/journal
# /run/log holds journald's runtime journal: a tmpfs over it, then this test's store inside.
[ -d /run/log ] || mkdir -p /run/log
mount -t tmpfs -o mode=755 tmpfs /run/log
mkdir -p /run/log/journal
mount --bind "$W/store" /run/log/journal
# Storage=volatile never writes /var/log/journal; the tmpfs makes sure of it.
if [ -d /var/log/journal ]; then mount -t tmpfs -o mode=755 tmpfs /var/log/journal; fi
mount --bind "$W/journald.conf" /etc/systemd/journald.conf
"$JOURNALD" </dev/null >>"$W/journald.log" 2>&1 &
J=$!
i=0
until [ -S /run/systemd/journal/socket ]; do
  kill -0 "$J" 2>/dev/null || { echo "journald exited at start-up" >&2; exit 1; }
  i=$((i + 1)); [ "$i" -lt 500 ] || { echo "journald did not create its socket within 10 s" >&2; kill "$J"; exit 1; }
  sleep 0.02
done
echo "READY $J"
# Until the test says "stop", or dies (its end of our stdin closes: then clean up for it).
command=
read -r command || true
kill "$J" 2>/dev/null || true
wait "$J" || true
if [ "$command" != stop ]; then
  if [ -n "$SLICE" ] && [ -d "$SLICE" ]; then find "$SLICE" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  [ "$KEEP" = 1 ] || rm -rf "$W"
fi
exit 0
`;

/** A process running inside the journald's mount namespace. */
export class NamespacedProcess {
  readonly child: ChildProcess;
  private stdoutText = '';
  private stderrText = '';
  private result: RunResult | null = null;
  readonly exited: Promise<RunResult>;

  constructor(command: string, args: string[], env: NodeJS.ProcessEnv, input: string | Buffer | undefined) {
    this.child = spawn(command, args, { env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    this.child.stdout?.on('data', (chunk: Buffer) => {
      this.stdoutText += chunk.toString('utf8');
    });
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderrText += chunk.toString('utf8');
    });
    if (input !== undefined) this.child.stdin?.end(input);
    this.exited = new Promise((resolve) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
        this.result ??= { code, signal, stdout: this.stdoutText, stderr: this.stderrText };
        resolve(this.result);
      };
      this.child.on('error', (error) => {
        this.stderrText += String(error);
        finish(127, null);
      });
      this.child.on('close', finish);
    });
  }

  /** nsenter execs the command (and the cgroup wrapper execs too), so this is the command's pid. */
  get pid(): number {
    return this.child.pid as number;
  }

  get running(): boolean {
    return this.result === null && this.child.exitCode === null && this.child.signalCode === null;
  }

  get stdout(): string {
    return this.stdoutText;
  }

  get stderr(): string {
    return this.stderrText;
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.running) {
      try {
        this.child.kill(signal);
      } catch {
        // gone
      }
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<RunResult> {
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }
}

export class Journald {
  readonly dir: string;
  /** Set once registered with destroyAtExit (cleanup.ts). */
  private unregister: () => void = () => undefined;
  readonly storeDir: string;
  /** The socket as processes inside the namespace see it (their default path). */
  readonly socketPath = JOURNAL_SOCKET_INSIDE;
  /** The same socket reached from outside the namespace, e.g. for a Log created in-process. */
  readonly socketPathFromOutside: string;
  /** The holder shell: `nsenter -t <nsPid> -m` joins the namespace. */
  readonly nsPid: number;
  readonly journaldPid: number;
  /** From spawning the holder to journald's socket existing. */
  readonly startupMs: number;

  private readonly processes = new Set<NamespacedProcess>();
  private stopped = false;

  private constructor(
    /** Names the cgroup slice, offloadd-t-<id>.slice. */
    readonly id: string,
    /** <cgroup hierarchy>/offloadd-t-<id>.slice, created on first use; '' without cgroups. */
    readonly cgroupSlice: string,
    private readonly holder: ChildProcess,
    private readonly holderExited: Promise<void>,
    private readonly options: JournaldOptions,
    dir: string,
    journaldPid: number,
    startupMs: number,
  ) {
    this.dir = dir;
    this.storeDir = path.join(dir, 'store');
    this.nsPid = holder.pid as number;
    this.journaldPid = journaldPid;
    this.startupMs = startupMs;
    this.socketPathFromOutside = `/proc/${this.nsPid}/root${JOURNAL_SOCKET_INSIDE}`;
    this.unregister = destroyAtExit(this);
  }

  static async start(options: JournaldOptions = {}): Promise<Journald> {
    const journaldBinary = findJournald();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-journald-'));
    fs.mkdirSync(path.join(dir, 'store'));
    fs.writeFileSync(
      path.join(dir, 'journald.conf'),
      [
        '[Journal]',
        'Storage=volatile',
        'ReadKMsg=no',
        'ForwardToSyslog=no',
        'ForwardToWall=no',
        'ForwardToConsole=no',
        'RateLimitBurst=0',
        'Audit=no',
        ...(options.config ?? []),
        '',
      ].join('\n'),
    );
    const began = process.hrtime.bigint();
    const id = randomBytes(4).toString('hex');
    let slice = '';
    try {
      slice = path.join(journaldCgroupRoot(), `offloadd-t-${id}.slice`);
    } catch {
      // No cgroup hierarchy: journald works, only run() with cgroupUnit cannot.
    }
    const holder = spawn(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        'bash',
        '-c',
        HOLDER_SCRIPT,
        'holder',
        dir,
        journaldBinary,
        slice,
        options.keep ? '1' : '0',
      ],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    const holderExited = new Promise<void>((resolve) => holder.on('close', () => resolve()));
    let output = '';
    let errors = '';
    holder.stderr?.on('data', (chunk: Buffer) => {
      errors += chunk.toString('utf8');
    });
    const journaldPid = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error('timed out')), options.startTimeoutMs ?? 15000);
      const fail = (error: Error): void => {
        clearTimeout(timer);
        holder.kill('SIGKILL');
        let log = '';
        try {
          log = fs.readFileSync(path.join(dir, 'journald.log'), 'utf8');
        } catch {
          // none
        }
        fs.rmSync(dir, { recursive: true, force: true });
        reject(
          new Error(`could not start journald: ${error.message}\n--- holder stderr:\n${errors}\n--- journald:\n${log}`),
        );
      };
      holder.on('error', fail);
      const onEarlyClose = (code: number | null): void => fail(new Error(`the namespace holder exited with ${code}`));
      holder.on('close', onEarlyClose);
      holder.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString('utf8');
        const match = /READY (\d+)/.exec(output);
        if (match) {
          clearTimeout(timer);
          holder.off('close', onEarlyClose);
          resolve(Number(match[1]));
        }
      });
    });
    const startupMs = Number(process.hrtime.bigint() - began) / 1e6;
    // Neither the holder nor its pipes keep the test process alive; its exit closes the
    // holder's stdin, and the holder then stops journald.
    holder.unref();
    for (const stream of [holder.stdin, holder.stdout, holder.stderr])
      (stream as unknown as { unref?: () => void } | null)?.unref?.();
    return new Journald(id, slice, holder, holderExited, options, dir, journaldPid, startupMs);
  }

  /**
   * Starts `command` inside the namespace (it logs to this journald by default paths). The
   * environment is the test process's plus `options.env`.
   */
  run(command: string, args: string[] = [], options: RunOptions = {}): NamespacedProcess {
    if (this.stopped) throw new Error('journald has been stopped');
    const inner: string[] = options.cgroupUnit
      ? [
          'sh',
          '-c',
          'echo $$ > "$1/cgroup.procs" && shift && exec "$@"',
          'cgroup-wrapper',
          this.cgroupFor(options.cgroupUnit),
          command,
          ...args,
        ]
      : [command, ...args];
    const child = new NamespacedProcess(
      'nsenter',
      ['-t', String(this.nsPid), '-m', '--', ...inner],
      { ...process.env, ...options.env },
      options.input,
    );
    this.processes.add(child);
    void child.exited.then(() => this.processes.delete(child));
    return child;
  }

  /** run() to completion. */
  exec(command: string, args: string[] = [], options: RunOptions = {}): Promise<RunResult> {
    return this.run(command, args, options).exited;
  }

  /** Asks journald to write out everything received so far (`journalctl --sync`, inside). */
  async sync(): Promise<void> {
    const result = await this.exec('journalctl', ['--sync']);
    if (result.code !== 0) throw new Error(`journalctl --sync failed (${result.code}): ${result.stderr}`);
  }

  /**
   * Entries matching all of `matches` (journalctl's FIELD=value matches; `+` for OR), oldest
   * first, after a sync. `extraArgs` go to journalctl as they are (e.g. ['-u', 'offloadd']).
   */
  async query(matches: string[] = [], extraArgs: string[] = []): Promise<JournalEntry[]> {
    await this.sync();
    const stdout = await new Promise<string>((resolve, reject) => {
      const child = spawn('journalctl', ['-D', this.storeDir, '-o', 'json', '--no-pager', ...extraArgs, ...matches], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString('utf8');
      });
      child.stderr.on('data', (chunk: Buffer) => {
        err += chunk.toString('utf8');
      });
      child.on('error', reject);
      child.on('close', (code) => {
        // journalctl exits 1 with "-- No entries --" on stdout in some versions when nothing matches.
        if (code === 0 || (code === 1 && out.trim() === '' && err.trim() === '')) resolve(out);
        else reject(new Error(`journalctl ${matches.join(' ')} exited with ${code}: ${err}`));
      });
    });
    return stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as JournalEntry);
  }

  /** Polls query() until at least `count` entries match. */
  async waitForEntries(
    matches: string[],
    count = 1,
    timeoutMs = 10000,
    extraArgs: string[] = [],
  ): Promise<JournalEntry[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const entries = await this.query(matches, extraArgs);
      if (entries.length >= count) return entries;
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for ${count} journal entries matching ${matches.join(' ')} (found ${entries.length})`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** journald's own stderr (start-up problems, dropped messages). */
  journaldLog(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'journald.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** Stops every process started with run(), then journald and the holder; removes what was made. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all([...this.processes].map((child) => child.stop(3000)));
    this.holder.stdin?.end('stop\n');
    const timer = setTimeout(() => this.holder.kill('SIGKILL'), 5000);
    await this.holderExited;
    clearTimeout(timer);
    this.cleanup();
  }

  /** For process 'exit' handlers: no waiting on events, only SIGKILL and removal. */
  destroySync(): void {
    this.stopped = true;
    for (const child of this.processes) child.kill('SIGKILL');
    for (const pid of [this.journaldPid, this.nsPid]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    const deadline = Date.now() + 2000;
    while (
      Date.now() < deadline &&
      [this.journaldPid, this.nsPid].some((pid) => fs.existsSync(`/proc/${pid}`) && !isZombie(pid))
    )
      sleepSync(20);
    this.cleanup();
  }

  private cleanup(): void {
    try {
      if (this.cgroupSlice) removeCgroupTree(this.cgroupSlice);
    } finally {
      if (!this.options.keep) fs.rmSync(this.dir, { recursive: true, force: true });
      this.unregister();
    }
  }

  private cgroupFor(unit: string): string {
    if (!/^[A-Za-z0-9:_.\\@-]+\.(service|scope)$/.test(unit))
      throw new Error(`not a service or scope unit name: ${unit}`);
    if (!this.cgroupSlice) throw new Error(`cannot run in ${unit}: no cgroup hierarchy under /sys/fs/cgroup`);
    const dir = path.join(this.cgroupSlice, unit);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }
}

/** Starts a standalone journald (see the file comment); stop() it in `after`. */
export function startJournald(options: JournaldOptions = {}): Promise<Journald> {
  return Journald.start(options);
}
