/**
 * A fresh minimal Debian root, debootstrap'ed once per suite and architecture and cached; booted
 * read-only under systemd-nspawn's throw-away overlay (helpers/nspawn.ts), so every container
 * starts from it pristine. The systemd suites boot it with the pinned Node runtime bound in; the
 * package tests boot it bare (no Node, no compiler: the packages must bring their own runtime).
 * Nothing of the host's own tree (its services, generators, init scripts, enabled units) is in it.
 *
 * Cache: $OFFLOADD_CACHE/debian-SUITE-ARCH-root, by default ~/.cache/offloadd/ (shared with
 * scripts/node-runtime.sh); deleting it makes the next run build it again (~1 min). Mirror:
 * $OFFLOADD_DEBIAN_MIRROR, else the host's apt sources, else deb.debian.org.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface DebianRootOptions {
  /** Debian release codename. Default bookworm (Debian 12). */
  suite?: string;
  /** Debian architecture name. Default: this machine's (amd64 on x64, arm64 on arm64). */
  arch?: string;
}

/**
 * What every root holds beyond minbase: systemd as init, ip and ethtool for the tests' links,
 * procps for ExecReload's kill, man-db for man(1), socat for the harness's notify stand-ins.
 * The list is part of the cache stamp: a root built from another list is built again.
 */
const INCLUDE = ['systemd', 'systemd-sysv', 'dbus', 'iproute2', 'ethtool', 'procps', 'man-db', 'socat'];
/** No console in the container, and no timers or daily jobs that could run during a test. */
const MASKED_IN_ROOT = ['console-getty.service', 'apt-daily.timer', 'apt-daily-upgrade.timer', 'man-db.timer'];
const COMPLETE_STAMP = '.offloadd-root-complete';
const MIRROR_PROBE_TIMEOUT_MS = 15000;
/** A foreign architecture runs debootstrap's second stage under qemu-user (~10 min here, loaded). */
const DEBOOTSTRAP_TIMEOUT_MS = 30 * 60 * 1000;
/** Room for a first build in a test's before() hook (the debootstrap, on a loaded machine). */
export const DEBIAN_ROOT_BUILD_TIMEOUT_MS = DEBOOTSTRAP_TIMEOUT_MS + MIRROR_PROBE_TIMEOUT_MS;

export function cacheDir(): string {
  return (
    process.env['OFFLOADD_CACHE'] ??
    path.join(process.env['XDG_CACHE_HOME'] ?? path.join(os.homedir(), '.cache'), 'offloadd')
  );
}

/** This machine's architecture as Debian names it. */
export function debianArch(nodeArch: string = process.arch): string {
  const names: Record<string, string> = { x64: 'amd64', arm64: 'arm64' };
  const name = names[nodeArch];
  if (!name) throw new Error(`no Debian root for the architecture ${nodeArch}: only x64 (amd64) and arm64`);
  return name;
}

/** The Debian mirror: the environment's, else the first Debian URI in the host's apt sources. */
export function debianMirror(): string {
  const fromEnv = process.env['OFFLOADD_DEBIAN_MIRROR'];
  if (fromEnv) return fromEnv;
  const sources: string[] = [];
  for (const file of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    try {
      sources.push(fs.readFileSync(file, 'utf8'));
    } catch {
      // absent
    }
  }
  const uris = sources.join('\n').match(/(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+\/debian)\/?(?:\s|$)/m);
  return uris?.[1] ?? 'http://deb.debian.org/debian';
}

/** The Debian release booted on a host that is not Debian: the newest stable one. */
const NEWEST_STABLE_SUITE = 'trixie';

/**
 * The Debian release to boot with code built on this host (the checkout's addon): the host's own
 * when it is Debian, since an addon built with Debian 13's g++ 14 and glibc 2.41 does not load on
 * Debian 12 (CXXABI_1.3.15, GLIBC_2.38 not found); on any other host the newest stable release,
 * whose glibc and libstdc++ are at least those of the other supported hosts (Ubuntu 24.04).
 * `osRelease` is the text of /etc/os-release.
 */
export function debianSuiteForHost(osRelease: string): string {
  const field = (name: string): string | undefined =>
    new RegExp(`^${name}=["']?([^"'\\n]*)["']?$`, 'm').exec(osRelease)?.[1];
  const codename = field('VERSION_CODENAME');
  if (field('ID') === 'debian' && codename && /^[a-z]+$/.test(codename)) return codename;
  return NEWEST_STABLE_SUITE;
}

/** debianSuiteForHost() of this machine. */
export function hostDebianSuite(): string {
  try {
    return debianSuiteForHost(fs.readFileSync('/etc/os-release', 'utf8'));
  } catch {
    return NEWEST_STABLE_SUITE;
  }
}

/** binfmt_misc's entry for arm64 binaries (qemu-user-static registers it as qemu-aarch64). */
const QEMU_AARCH64_BINFMT = '/proc/sys/fs/binfmt_misc/qemu-aarch64';

/**
 * Why this machine cannot run arm64 binaries (for a foreign root), or null when it can. Mounts
 * binfmt_misc when it is not, and registers qemu-user-static's qemu-aarch64 from its binfmt.d
 * file (flag F: the interpreter is opened now, so it works inside containers and chroots too).
 */
export function arm64EmulationUnavailableReason(): string | null {
  if (process.arch === 'arm64' || fs.existsSync(QEMU_AARCH64_BINFMT)) return null;
  const conf = ['/usr/lib/binfmt.d/qemu-aarch64.conf', '/usr/lib/binfmt.d/qemu-aarch64-static.conf'].find((file) =>
    fs.existsSync(file),
  );
  if (!conf) return 'qemu-user-static is not installed (apt-get install qemu-user-static)';
  try {
    if (!fs.existsSync('/proc/sys/fs/binfmt_misc/register')) {
      execFileSync('mount', ['-t', 'binfmt_misc', 'binfmt_misc', '/proc/sys/fs/binfmt_misc'], { stdio: 'ignore' });
    }
    const line = fs
      .readFileSync(conf, 'utf8')
      .split('\n')
      .find((entry) => entry.startsWith(':'));
    if (!line) return `${conf} has no registration line`;
    fs.writeFileSync('/proc/sys/fs/binfmt_misc/register', line);
  } catch (error) {
    if (!fs.existsSync(QEMU_AARCH64_BINFMT))
      return `cannot register qemu-aarch64 with binfmt_misc: ${(error as Error).message}`;
  }
  return null;
}

export type RootResult = { root: string; built: boolean; ms: number } | { skip: string };

/** The first line of the stamp: what the root was built from (a changed recipe means a rebuild). */
function recipe(suite: string, arch: string): string {
  return `${suite} ${arch} minbase +${INCLUDE.join(',')} -${MASKED_IN_ROOT.join(',')}`;
}

function isComplete(root: string, wanted: string): boolean {
  try {
    return fs.readFileSync(path.join(root, COMPLETE_STAMP), 'utf8').split('\n')[0] === wanted;
  } catch {
    return false;
  }
}

/**
 * The cached root for `suite` and `arch`, built when missing; a skip reason when it cannot be
 * (no debootstrap, no mirror, no emulation of a foreign architecture).
 */
export async function debianRoot(options: DebianRootOptions = {}): Promise<RootResult> {
  const suite = options.suite ?? 'bookworm';
  const arch = options.arch ?? debianArch();
  if (!/^[a-z]+$/.test(suite) || !/^[a-z0-9]+$/.test(arch))
    throw new Error(`not a Debian suite and architecture: ${suite} ${arch}`);
  const wanted = recipe(suite, arch);
  const root = path.join(cacheDir(), `debian-${suite}-${arch}-root`);
  if (isComplete(root, wanted)) return { root, built: false, ms: 0 };
  try {
    execFileSync('debootstrap', ['--version'], { stdio: 'ignore' });
  } catch {
    return { skip: 'debootstrap is not installed (apt-get install debootstrap)' };
  }
  if (arch === 'arm64') {
    const reason = arm64EmulationUnavailableReason();
    if (reason) return { skip: reason };
  }
  const mirror = debianMirror();
  const release = `${mirror}/dists/${suite}/Release`;
  try {
    const response = await fetch(release, { method: 'HEAD', signal: AbortSignal.timeout(MIRROR_PROBE_TIMEOUT_MS) });
    if (!response.ok)
      return { skip: `the Debian mirror answers ${response.status} for ${release} (set OFFLOADD_DEBIAN_MIRROR)` };
  } catch (error) {
    return {
      skip: `no network or no Debian mirror: ${release}: ${(error as Error).message} (set OFFLOADD_DEBIAN_MIRROR)`,
    };
  }
  const started = Date.now();
  fs.mkdirSync(cacheDir(), { recursive: true });
  const work = fs.mkdtempSync(path.join(cacheDir(), '.debootstrap-'));
  try {
    execFileSync(
      'debootstrap',
      ['--variant=minbase', `--arch=${arch}`, `--include=${INCLUDE.join(',')}`, suite, work, mirror],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
        timeout: DEBOOTSTRAP_TIMEOUT_MS,
      },
    );
    for (const unit of MASKED_IN_ROOT) fs.symlinkSync('/dev/null', path.join(work, 'etc', 'systemd', 'system', unit));
    fs.writeFileSync(path.join(work, COMPLETE_STAMP), `${wanted}\nfrom ${mirror}, ${new Date().toISOString()}\n`);
    // Another test run may have finished the same root meanwhile: then keep that one.
    if (isComplete(root, wanted)) {
      fs.rmSync(work, { recursive: true, force: true });
      return { root, built: false, ms: Date.now() - started };
    }
    fs.rmSync(root, { recursive: true, force: true });
    fs.renameSync(work, root);
  } catch (error) {
    fs.rmSync(work, { recursive: true, force: true });
    throw new Error(`debootstrap of ${suite} (${arch}) from ${mirror} failed: ${(error as Error).message}`);
  }
  return { root, built: true, ms: Date.now() - started };
}
