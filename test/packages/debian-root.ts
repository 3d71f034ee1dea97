/**
 * A fresh minimal Debian root (a suite and an architecture) for the package tests: debootstrap'ed
 * once and cached (booted read-only under systemd-nspawn's throw-away overlay, so every container
 * starts from it pristine). No Node and no compiler in it: the packages must bring their own runtime.
 *
 * Cache: $OFFLOADD_CACHE/debian-<suite>-<arch>-root, by default in
 * ~/.cache/offloadd/ (shared with scripts/node-runtime.sh); deleting one makes the next run build
 * it again (~2 min for amd64; arm64 runs its second stage under qemu-user, ~8 min). Mirror:
 * $OFFLOADD_DEBIAN_MIRROR, else the host's apt sources, else deb.debian.org.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Debian 12 (Proxmox VE 8) and Debian 13 (Proxmox VE 9). */
export type DebianSuite = 'bookworm' | 'trixie';
export type DebianArch = 'amd64' | 'arm64';
export interface RootSpec {
  suite: DebianSuite;
  arch: DebianArch;
}
/**
 * systemd as init, ip and ethtool for the tests' links, procps for ExecReload's kill, man-db for
 * man(1). The same names in bookworm and trixie (trixie's minbase has apt with sqv to verify
 * repositories; dbus is still the package pulling in the system bus).
 */
const INCLUDE = ['systemd', 'systemd-sysv', 'dbus', 'iproute2', 'ethtool', 'procps', 'man-db'];
const COMPLETE_STAMP = '.offloadd-root-complete';
const MIRROR_PROBE_TIMEOUT_MS = 15000;

export function cacheDir(): string {
  return process.env['OFFLOADD_CACHE'] ?? path.join(process.env['XDG_CACHE_HOME'] ?? path.join(os.homedir(), '.cache'), 'offloadd');
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

export type RootResult = { root: string; built: boolean; ms: number } | { skip: string };

/** binfmt_misc's entry for arm64 binaries (qemu-user-static registers it as qemu-aarch64). */
const QEMU_AARCH64_BINFMT = '/proc/sys/fs/binfmt_misc/qemu-aarch64';

/**
 * Why this machine cannot run arm64 binaries (for a foreign root), or null when it can. Mounts
 * binfmt_misc when it is not, and registers qemu-user-static's qemu-aarch64 from its binfmt.d
 * file (flag F: the interpreter is opened now, so it works inside containers and chroots too).
 */
export function arm64EmulationUnavailableReason(): string | null {
  if (fs.existsSync(QEMU_AARCH64_BINFMT)) return null;
  const conf = ['/usr/lib/binfmt.d/qemu-aarch64.conf', '/usr/lib/binfmt.d/qemu-aarch64-static.conf'].find((file) => fs.existsSync(file));
  if (!conf) return 'qemu-user-static is not installed (apt-get install qemu-user-static)';
  try {
    if (!fs.existsSync('/proc/sys/fs/binfmt_misc/register')) {
      execFileSync('mount', ['-t', 'binfmt_misc', 'binfmt_misc', '/proc/sys/fs/binfmt_misc'], { stdio: 'ignore' });
    }
    const line = fs.readFileSync(conf, 'utf8').split('\n').find((entry) => entry.startsWith(':'));
    if (!line) return `${conf} has no registration line`;
    fs.writeFileSync('/proc/sys/fs/binfmt_misc/register', line);
  } catch (error) {
    if (!fs.existsSync(QEMU_AARCH64_BINFMT)) return `cannot register qemu-aarch64 with binfmt_misc: ${(error as Error).message}`;
  }
  return null;
}

/** The cached root, built when missing; a skip reason when it cannot be (no debootstrap, no mirror, no emulation). */
export async function debianRoot({ suite, arch }: RootSpec = { suite: 'bookworm', arch: 'amd64' }): Promise<RootResult> {
  const SUITE = suite;
  const root = path.join(cacheDir(), `debian-${suite}-${arch}-root`);
  if (fs.existsSync(path.join(root, COMPLETE_STAMP))) return { root, built: false, ms: 0 };
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
  const release = `${mirror}/dists/${SUITE}/Release`;
  try {
    const response = await fetch(release, { method: 'HEAD', signal: AbortSignal.timeout(MIRROR_PROBE_TIMEOUT_MS) });
    if (!response.ok) return { skip: `the Debian mirror answers ${response.status} for ${release} (set OFFLOADD_DEBIAN_MIRROR)` };
  } catch (error) {
    return { skip: `no network or no Debian mirror: ${release}: ${(error as Error).message} (set OFFLOADD_DEBIAN_MIRROR)` };
  }
  const started = Date.now();
  fs.mkdirSync(cacheDir(), { recursive: true });
  const work = fs.mkdtempSync(path.join(cacheDir(), '.debootstrap-'));
  try {
    execFileSync('debootstrap', ['--variant=minbase', `--arch=${arch}`, `--include=${INCLUDE.join(',')}`, SUITE, work, mirror], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 30 * 60 * 1000,
    });
    // No console in the container, and no timers or daily jobs that could run during a test.
    for (const unit of ['console-getty.service', 'apt-daily.timer', 'apt-daily-upgrade.timer', 'man-db.timer']) {
      fs.symlinkSync('/dev/null', path.join(work, 'etc', 'systemd', 'system', unit));
    }
    fs.writeFileSync(path.join(work, COMPLETE_STAMP), `${SUITE} ${arch} from ${mirror}, ${new Date().toISOString()}\n`);
    fs.rmSync(root, { recursive: true, force: true });
    fs.renameSync(work, root);
  } catch (error) {
    fs.rmSync(work, { recursive: true, force: true });
    throw new Error(`debootstrap of ${SUITE} (${arch}) from ${mirror} failed: ${(error as Error).message}`);
  }
  return { root, built: true, ms: Date.now() - started };
}
