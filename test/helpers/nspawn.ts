/**
 * A real systemd as PID 1 in a container, for tests of the unit file and of the daemon under
 * systemd.
 *
 * The root is a minimal Debian the suite debootstraps and caches itself (debian-root.ts), never
 * the host's own tree: the host's services, generators, SysV init scripts and enabled units play
 * no part, so a developer's machine and a hypervisor get the same result. It is bind-mounted
 * (inside a private mount namespace, with a tmpfs over /run/systemd) and booted with
 * `systemd-nspawn --volatile=overlay`: every write inside the container goes to a tmpfs and
 * vanishes at stop. What the container takes from the host is listed, nothing else:
 *   - the pinned Node runtime (scripts/node-runtime.sh, .node-version), read-only at
 *     /usr/local/lib/offloadd-node with its node as /usr/bin/node (the unit's ExecStart=) and its
 *     bin/ (node, npm) on the PATH of commands run inside;
 *   - this repository, read-only at /opt/offloadd (or `repoMount`), and offloadd's journal catalog;
 *   - the kernel, and the cgroup directories the test makes for the container.
 * The container has its own network namespace (--private-network). Units the root enables
 * (timers, getty) are masked so only what a test starts runs. Commands run inside with
 * `nsenter` into the container's systemd. The container's journal lives in its volatile
 * /run/log/journal: read it with `journal()` or `exec(['journalctl', ...])` while it runs, and
 * `keepJournal()` copies it out (the systemd suites do so for every failed test).
 *
 * Cleanup: stop() halts the container (SIGTERM to nspawn), waits, and removes the cgroup
 * directories, deepest first. If the test process dies instead, a supervisor shell sees its stdin
 * close and does the same.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cgroupHierarchies, removeCgroupTree } from './cgroup';
import { type JournalEntry } from './journald';
import { delay, findDescendant, isNamespaceInit, isZombie, sleepSync } from './proc';
import { destroyAtExit } from './cleanup';
import { debianArch, debianRoot, DEBIAN_ROOT_BUILD_TIMEOUT_MS, hostDebianSuite } from './debian-root';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

/**
 * The root the systemd suites boot unless a test names another: the Debian release that can run
 * the addon this host built (the host's own on Debian, Debian 13 elsewhere), this machine's
 * architecture. Never the host's own tree.
 */
export const TEST_ROOT = { suite: hostDebianSuite(), arch: debianArch() };

/** Where the pinned Node runtime appears inside a container (its bin/ is on the PATH there). */
export const NODE_RUNTIME_MOUNT = '/usr/local/lib/offloadd-node';

/** Room for a before() hook that may debootstrap the test root first. */
export const CONTAINER_SETUP_TIMEOUT_MS = DEBIAN_ROOT_BUILD_TIMEOUT_MS + 60000;

/** Masked in every container: they would start on a console or touch the host's clock. */
export const ALWAYS_MASKED = ['console-getty.service', 'systemd-timesyncd.service', 'getty@tty1.service'];

const CONTAINER_ENV: NodeJS.ProcessEnv = {
  PATH: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${NODE_RUNTIME_MOUNT}/bin`,
  LANG: 'C.UTF-8',
  TERM: 'dumb',
  SYSTEMD_COLORS: '0',
  SYSTEMD_PAGER: '',
  SYSTEMD_URLIFY: '0',
};

export interface ContainerOptions {
  /**
   * Root file system to boot, read-only under the throw-away overlay. Default: the cached
   * TEST_ROOT (debootstrap'ed on first use; see containerUnavailableReason() for when it cannot be).
   */
  rootDir?: string;
  /**
   * A Node runtime directory (bin/node, and bin/npm if any) bound read-only at NODE_RUNTIME_MOUNT,
   * its node also as /usr/bin/node. Default: the pinned runtime for the default root, none for a
   * root a test names (the packages bring their own); null: none.
   */
  nodeRuntime?: string | null;
  /** Bound read-only at `repoMount`. Default: this repository; null: none (nor its catalog). */
  repoDir?: string | null;
  /** Where the repository appears inside. Default /opt/offloadd (the installed layout). */
  repoMount?: string;
  /** More units to mask (in addition to ALWAYS_MASKED and what the root enables). */
  mask?: string[];
  /** Units not to mask although the root enables them. */
  unmask?: string[];
  /** Own network namespace (default true). Never set false in tests that change links. */
  privateNetwork?: boolean;
  /** Extra read-only binds, [host path, path inside]. */
  bindReadOnly?: Array<[string, string]>;
  /** Catalog file installed as /usr/lib/systemd/catalog/offloadd.catalog; null for none. */
  catalog?: string | null;
  /**
   * Units present from the very start of the boot (name → text; drop-ins as
   * 'NAME.service.d/10-x.conf'), in /run/systemd/system inside.
   */
  units?: Record<string, string>;
  /** Enabled from the start: target → units it wants (links in /run/systemd/system/TARGET.wants). */
  enable?: Record<string, string[]>;
  /** Extra systemd-nspawn arguments. */
  nspawnArgs?: string[];
  /**
   * Run this command as the container's PID 1 instead of booting systemd (an image's entrypoint
   * and arguments): no units are masked, and `leaderPid` is that process.
   */
  run?: { command: string[] };
  /** The throw-away overlay over the root (default true); false for e.g. `--read-only`. */
  volatile?: boolean;
  bootTimeoutMs?: number;
  /** Accept "degraded" (some unit failed) as booted. Default false: a failed unit is an error. */
  allowDegraded?: boolean;
}

export interface ExecOptions {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Throw when the exit status is not 0 (default false). */
  check?: boolean;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Units a root enables (links in its /etc/systemd/system/*.wants and *.requires), except
 * targets: in a test container each of them is something that must not start.
 */
export function unitsEnabledInRoot(etcSystem: string): string[] {
  const units = new Set<string>();
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(etcSystem, { withFileTypes: true });
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!entry.isDirectory() || !/\.(wants|requires)$/.test(entry.name)) continue;
    for (const unit of fs.readdirSync(path.join(etcSystem, entry.name))) {
      if (!unit.endsWith('.target')) units.add(unit);
    }
  }
  return [...units].sort();
}

function findInPath(command: string): string | null {
  for (const dir of (process.env['PATH'] ?? '/usr/bin:/bin').split(':')) {
    const candidate = path.join(dir, command);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return null;
}

/** Why a container cannot be booted here (for a test's skip message), or null. */
export function nspawnUnavailableReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (mount namespaces, cgroups, systemd-nspawn)';
  if (!findInPath('systemd-nspawn')) return 'systemd-nspawn is not installed (apt-get install systemd-container)';
  return null;
}

/**
 * Why a container on the default test root cannot be booted here (no root, no nspawn, no
 * debootstrap or Debian mirror for a first build), or null once the root is ready. Builds and
 * caches the root when missing: call it from a before() hook with CONTAINER_SETUP_TIMEOUT_MS.
 */
export async function containerUnavailableReason(): Promise<string | null> {
  const reason = nspawnUnavailableReason();
  if (reason) return reason;
  const result = await debianRoot(TEST_ROOT);
  if ('skip' in result) return `cannot build the test root (${TEST_ROOT.suite}, ${TEST_ROOT.arch}): ${result.skip}`;
  if (result.built) process.stdout.write(`      debootstrapped ${result.root} in ${result.ms} ms\n`);
  return null;
}

/** The cached default test root, built when missing. */
async function testRootDir(): Promise<string> {
  const result = await debianRoot(TEST_ROOT);
  if ('skip' in result) throw new Error(`cannot build the test root: ${result.skip}`);
  return result.root;
}

let pinnedRuntime: string | null = null;

/** The pinned Node runtime's directory (scripts/node-runtime.sh: cached, fetched when missing). */
export function pinnedNodeRuntime(): string {
  pinnedRuntime ??= execFileSync(path.join(REPO_ROOT, 'scripts', 'node-runtime.sh'), { encoding: 'utf8' }).trim();
  return pinnedRuntime;
}

/** Starts the container, then waits on stdin: its closing (stop(), or our death) halts it. */
const SUPERVISOR_SCRIPT = String.raw`
set -u
W=$1 CGROUPS=$2 ROOTFS=$3
shift 3
(
  for d in $CGROUPS; do echo "$BASHPID" > "$d/cgroup.procs" || exit 1; done
  export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
  exec unshare --mount --propagation private sh -c '
    rootfs=$1 root=$2; shift 2
    # /run/systemd is missing where PID 1 is not systemd (a container, a chroot): made first.
    mkdir -p /run/systemd && mount -t tmpfs -o mode=755 tmpfs /run/systemd && mount --bind "$rootfs" "$root" && exec systemd-nspawn "$@"
  ' unshare-sh "$ROOTFS" "$W/root" "$@"
) </dev/null >>"$W/nspawn.log" 2>&1 &
N=$!
echo "NSPAWN $N"
# Until the test says "stop", or dies (its end of our stdin closes: then clean up for it).
command=
read -r command || true
kill -TERM "$N" 2>/dev/null || true
wait "$N"
echo "$?" > "$W/nspawn.status"
for d in $CGROUPS; do find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
# The root mount point is empty out here (the bind lives in the namespace): rmdir, never rm -r.
if [ "$command" != stop ]; then rmdir "$W/root" 2>/dev/null && rm -rf "$W"; fi
exit 0
`;

export class Container {
  readonly name = `offloadd-t-${randomBytes(4).toString('hex')}`;
  readonly dir: string;
  /** Set once registered with destroyAtExit (cleanup.ts). */
  private unregister: () => void = () => undefined;
  /** Empty mount point: the root is bound here only inside the supervisor's namespace. */
  readonly rootMountPoint: string;
  readonly logFile: string;
  readonly cgroupDirs: string[];
  nspawnPid = 0;
  /** The container's systemd (PID 1 inside; or options.run's command), as the host sees it: the target for nsenter. */
  leaderPid = 0;
  /** From spawning nspawn to `is-system-running` = running. */
  bootMs = 0;

  private supervisor: ChildProcess | null = null;
  private supervisorExited: Promise<void> = Promise.resolve();
  private readonly startedAt = process.hrtime.bigint();
  private stopped = false;

  private constructor(
    readonly options: ContainerOptions,
    /** The root booted: options.rootDir, or the cached test root. */
    readonly rootDir: string,
  ) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-nspawn-'));
    this.rootMountPoint = path.join(this.dir, 'root');
    this.logFile = path.join(this.dir, 'nspawn.log');
    fs.mkdirSync(this.rootMountPoint);
    this.cgroupDirs = cgroupHierarchies().all.map((hierarchy) => path.join(hierarchy, this.name));
    this.unregister = destroyAtExit(this);
  }

  /** Spawns systemd-nspawn and finds the container's systemd; does not wait for the boot to finish. */
  static async start(options: ContainerOptions = {}): Promise<Container> {
    const reason = nspawnUnavailableReason();
    if (reason) throw new Error(`cannot boot a container: ${reason}`);
    const container = new Container(options, options.rootDir ?? (await testRootDir()));
    try {
      await container.spawnNspawn();
    } catch (error) {
      await container.stop().catch(() => undefined);
      throw error;
    }
    return container;
  }

  private masks(): string[] {
    if (this.options.run) return [];
    const unmask = new Set(this.options.unmask ?? []);
    const enabled = unitsEnabledInRoot(path.join(this.rootDir, 'etc', 'systemd', 'system'));
    const units = new Set([...ALWAYS_MASKED, ...enabled, ...(this.options.mask ?? [])]);
    return [...units].filter((unit) => !unmask.has(unit));
  }

  private async spawnNspawn(): Promise<void> {
    if (this.cgroupDirs.length === 0) throw new Error('no cgroup hierarchy found under /sys/fs/cgroup');
    for (const dir of this.cgroupDirs) fs.mkdirSync(dir);
    const repoDir = this.options.repoDir === null ? null : path.resolve(this.options.repoDir ?? REPO_ROOT);
    const catalog =
      this.options.catalog === undefined && repoDir
        ? path.join(repoDir, 'systemd', 'offloadd.catalog')
        : this.options.catalog;
    const nodeRuntime =
      this.options.nodeRuntime === undefined
        ? this.options.rootDir === undefined && !this.options.run
          ? pinnedNodeRuntime()
          : null
        : this.options.nodeRuntime;
    const binds: Array<[string, string]> = [
      ...(repoDir ? [[repoDir, this.options.repoMount ?? '/opt/offloadd'] as [string, string]] : []),
      ...(nodeRuntime
        ? [
            [nodeRuntime, NODE_RUNTIME_MOUNT] as [string, string],
            [path.join(nodeRuntime, 'bin', 'node'), '/usr/bin/node'] as [string, string],
          ]
        : []),
      ...(this.options.bindReadOnly ?? []),
    ];
    if (catalog) {
      if (!fs.existsSync(catalog)) throw new Error(`catalog ${catalog} does not exist`);
      binds.push([path.resolve(catalog), '/usr/lib/systemd/catalog/offloadd.catalog']);
    }
    const unitBinds: string[] = [];
    if (this.options.units || this.options.enable) {
      // A directory of ours becomes /run/systemd/system (writable: installUnit() adds to it).
      const unitDir = path.join(this.dir, 'units');
      fs.mkdirSync(unitDir);
      for (const [name, text] of Object.entries(this.options.units ?? {})) {
        checkUnitName(name);
        fs.mkdirSync(path.dirname(path.join(unitDir, name)), { recursive: true });
        fs.writeFileSync(path.join(unitDir, name), text);
      }
      for (const [target, units] of Object.entries(this.options.enable ?? {})) {
        checkUnitName(target);
        fs.mkdirSync(path.join(unitDir, `${target}.wants`), { recursive: true });
        for (const unit of units) {
          checkUnitName(unit);
          fs.symlinkSync(`../${unit}`, path.join(unitDir, `${target}.wants`, unit));
        }
      }
      unitBinds.push(`--bind=${unitDir}:/run/systemd/system`);
    }
    const nspawnArgs = [
      '--register=no',
      '--keep-unit', // no host systemd to register with: use our cgroup as is
      '--console=pipe',
      '--link-journal=no',
      ...(this.options.privateNetwork === false ? [] : ['--private-network']),
      '-D',
      this.rootMountPoint,
      ...(this.options.volatile === false ? [] : ['--volatile=overlay']),
      '-M',
      this.name,
      ...binds.map(([from, to]) => `--bind-ro=${from}:${to}`),
      ...unitBinds,
      ...(this.options.nspawnArgs ?? []),
      ...(this.options.run
        ? ['--', ...this.options.run.command]
        : ['--boot', ...this.masks().map((unit) => `systemd.mask=${unit}`)]),
    ];
    this.supervisor = spawn(
      'bash',
      [
        '-c',
        SUPERVISOR_SCRIPT,
        'supervisor',
        this.dir,
        this.cgroupDirs.join(' '),
        path.resolve(this.rootDir),
        ...nspawnArgs,
      ],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    const supervisor = this.supervisor;
    this.supervisorExited = new Promise((resolve) => supervisor.on('close', () => resolve()));
    let output = '';
    this.nspawnPid = await new Promise<number>((resolve, reject) => {
      supervisor.on('error', reject);
      supervisor.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString('utf8');
        const match = /NSPAWN (\d+)/.exec(output);
        if (match) resolve(Number(match[1]));
      });
      supervisor.on('close', (code) => reject(new Error(`supervisor exited with ${code}: ${this.log()}`)));
    });
    supervisor.unref();
    for (const stream of [supervisor.stdin, supervisor.stdout, supervisor.stderr])
      (stream as unknown as { unref?: () => void } | null)?.unref?.();

    const deadline = Date.now() + (this.options.bootTimeoutMs ?? 30000);
    for (;;) {
      const leader = findDescendant(this.nspawnPid, this.options.run ? isNamespaceInit : 'systemd', 3);
      if (leader) {
        this.leaderPid = leader;
        return;
      }
      if (!fs.existsSync(`/proc/${this.nspawnPid}`) || isZombie(this.nspawnPid)) {
        throw new Error(`systemd-nspawn exited before the container's systemd started:\n${this.log()}`);
      }
      if (Date.now() > deadline) throw new Error(`the container's PID 1 did not appear:\n${this.log()}`);
      await delay(20);
    }
  }

  /** systemd-nspawn's own output (and the container's console); kept after stop(). */
  log(): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return this.finalLog;
    }
  }

  private finalLog = '';

  /** Runs a command inside the container (all its namespaces), as root, with a clean environment. */
  exec(command: string[], options: ExecOptions = {}): Promise<ExecResult> {
    if (!this.leaderPid) return Promise.reject(new Error('the container is not running'));
    return new Promise((resolve, reject) => {
      const child = spawn('nsenter', ['-t', String(this.leaderPid), '-a', '--', ...command], {
        env: { ...CONTAINER_ENV, ...options.env },
        stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        stdout += chunk.toString('utf8');
      });
      child.stderr?.on('data', (chunk: Buffer) => {
        stderr += chunk.toString('utf8');
      });
      if (options.input !== undefined) child.stdin?.end(options.input);
      const timeoutMs = options.timeoutMs ?? 30000;
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`timed out after ${timeoutMs} ms: ${command.join(' ')}\n${stderr}`));
      }, timeoutMs);
      child.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const result = { code: code ?? (signal ? 128 : 1), stdout, stderr };
        if (options.check && result.code !== 0) {
          reject(new Error(`${command.join(' ')} exited with ${result.code}:\n${stderr}${stdout}`));
        } else {
          resolve(result);
        }
      });
    });
  }

  systemctl(...args: string[]): Promise<ExecResult> {
    return this.exec(['systemctl', '--no-pager', ...args]);
  }

  /**
   * Waits until `systemctl is-system-running` says running; returns the boot time in ms. A
   * "degraded" boot throws with the failed units named, unless options.allowDegraded.
   */
  async waitRunning(timeoutMs = this.options.bootTimeoutMs ?? 30000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let state = '';
    for (;;) {
      const result = await this.exec(['systemctl', 'is-system-running'], { timeoutMs: 5000 }).catch((error: Error) => ({
        code: -1,
        stdout: '',
        stderr: error.message,
      }));
      state = result.stdout.trim() || result.stderr.trim();
      if (state === 'running' || (state === 'degraded' && this.options.allowDegraded)) break;
      if (state === 'degraded') {
        const failed = await this.systemctl('--failed', '--no-legend', '--plain');
        throw new Error(`the container booted degraded; failed units (mask them with options.mask):\n${failed.stdout}`);
      }
      if (Date.now() > deadline)
        throw new Error(`the container did not finish booting within ${timeoutMs} ms (state: ${state})\n${this.log()}`);
      await delay(25);
    }
    this.bootMs = Number(process.hrtime.bigint() - this.startedAt) / 1e6;
    return this.bootMs;
  }

  /** A path inside the container, reached from the host through /proc/<pid>/root. */
  hostPath(pathInside: string): string {
    if (!path.isAbsolute(pathInside) || pathInside.split('/').includes('..'))
      throw new Error(`not an absolute, plain path: ${pathInside}`);
    return `/proc/${this.leaderPid}/root${pathInside}`;
  }

  writeFile(pathInside: string, content: string | Buffer, mode = 0o644): void {
    const target = this.hostPath(pathInside);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, content, { mode });
  }

  readFile(pathInside: string): string {
    return fs.readFileSync(this.hostPath(pathInside), 'utf8');
  }

  /**
   * Puts a unit (or a drop-in: 'offloadd.service.d/10-test.conf') into /run/systemd/system inside
   * and reloads systemd.
   */
  async installUnit(name: string, text: string): Promise<void> {
    checkUnitName(name);
    this.writeFile(`/run/systemd/system/${name}`, text);
    await this.exec(['systemctl', 'daemon-reload'], { check: true });
  }

  /**
   * Copies the container's journal (volatile: it lives in the container's /run/log/journal and
   * goes with it at stop) to a directory that outlives the test, and returns that directory:
   * read it with `journalctl -D DIR` (add `-u offloadd`, `-x`, `-o verbose`...). Kept under
   * $OFFLOADD_TEST_LOGS, by default TMPDIR/offloadd-test-journals/<container name>.
   */
  async keepJournal(): Promise<string> {
    await this.exec(['journalctl', '--sync'], { timeoutMs: 10000 }).catch(() => undefined);
    const kept = path.join(
      process.env['OFFLOADD_TEST_LOGS'] ?? path.join(os.tmpdir(), 'offloadd-test-journals'),
      this.name,
    );
    fs.mkdirSync(kept, { recursive: true });
    for (const store of ['/run/log/journal', '/var/log/journal']) {
      if (fs.existsSync(this.hostPath(store))) fs.cpSync(this.hostPath(store), kept, { recursive: true });
    }
    fs.writeFileSync(path.join(kept, 'nspawn.log'), this.log());
    return kept;
  }

  /** (Re)builds the journal catalog database inside from /usr/lib/systemd/catalog. */
  async updateCatalog(): Promise<void> {
    await this.exec(['journalctl', '--update-catalog'], { check: true });
  }

  /** Journal entries inside the container for `unit` (or all with null), plus FIELD=value matches. */
  async journal(unit: string | null, matches: string[] = []): Promise<JournalEntry[]> {
    const result = await this.exec(
      ['journalctl', '--no-pager', '-o', 'json', ...(unit ? ['-u', unit] : []), ...matches],
      { check: true },
    );
    return result.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as JournalEntry);
  }

  /**
   * Halts the container (SIGTERM to nspawn, which passes its --kill-signal= to PID 1; SIGKILL to
   * PID 1 after `timeoutMs`) and cleans up. Returns systemd-nspawn's exit status (PID 1's, for a
   * `run` container), or null if it is unknown.
   */
  async stop(timeoutMs = 15000): Promise<number | null> {
    if (this.stopped) return null;
    this.stopped = true;
    let status: number | null = null;
    if (this.supervisor) {
      this.supervisor.stdin?.end('stop\n');
      const timer = setTimeout(() => this.killHard(), timeoutMs);
      await this.supervisorExited;
      clearTimeout(timer);
      try {
        status = Number(fs.readFileSync(path.join(this.dir, 'nspawn.status'), 'utf8'));
      } catch {
        // the supervisor died before writing it
      }
    }
    this.cleanup();
    return status;
  }

  /** For process 'exit' handlers: SIGKILL (killing the container's init ends the container). */
  destroySync(): void {
    this.stopped = true;
    this.killHard();
    const deadline = Date.now() + 3000;
    while (
      Date.now() < deadline &&
      this.nspawnPid &&
      fs.existsSync(`/proc/${this.nspawnPid}`) &&
      !isZombie(this.nspawnPid)
    )
      sleepSync(20);
    this.cleanup();
  }

  private killHard(): void {
    for (const pid of [this.leaderPid, this.nspawnPid]) {
      if (!pid) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }

  private cleanup(): void {
    this.finalLog = this.log();
    const problems: string[] = [];
    for (const dir of this.cgroupDirs) {
      try {
        removeCgroupTree(dir);
      } catch (error) {
        problems.push((error as Error).message);
      }
    }
    // The host's root was bound on rootMountPoint only inside the supervisor's namespace, so here
    // it is an empty directory. rmdir, never a recursive removal: if it were not empty, that
    // would be the host's file system.
    try {
      fs.rmdirSync(this.rootMountPoint);
      fs.rmSync(this.dir, { recursive: true, force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        problems.push(`left ${this.dir} in place: ${(error as Error).message}`);
    }
    this.unregister();
    if (problems.length > 0) throw new Error(`container cleanup: ${problems.join('; ')}`);
  }
}

/** Boots a container and waits until its systemd reports running; the catalog is built. */
export async function bootContainer(options: ContainerOptions = {}): Promise<Container> {
  const container = await Container.start(options);
  try {
    await container.waitRunning();
    if (options.catalog !== null) await container.updateCatalog();
  } catch (error) {
    await container.stop().catch(() => undefined);
    throw error;
  }
  return container;
}

/**
 * For a suite's afterEach: when the test just failed, keeps the container's journal and says
 * where (`journalctl -D DIR -u offloadd -x` reads it).
 */
export async function keepJournalOfFailure(context: Mocha.Context, container: Container | undefined): Promise<void> {
  if (context.currentTest?.state !== 'failed' || !container?.leaderPid) return;
  try {
    const kept = await container.keepJournal();
    process.stdout.write(`      the container's journal is kept: journalctl -D ${kept} -x (and ${kept}/nspawn.log)\n`);
  } catch (error) {
    process.stdout.write(`      could not keep the container's journal: ${(error as Error).message}\n`);
  }
}

/** A unit name, or a drop-in path 'NAME.d/FILE.conf': nothing that could leave the unit directory. */
function checkUnitName(name: string): void {
  if (!/^[A-Za-z0-9:_.@\\-]+(\.d\/[A-Za-z0-9:_.@-]+\.conf)?$/.test(name) || name.startsWith('.')) {
    throw new Error(`not a unit or drop-in name: ${name}`);
  }
}
