/**
 * A fresh minimal Debian 12 root for the package tests: debootstrap'ed once and cached (booted
 * read-only under systemd-nspawn's throw-away overlay, so every container starts from it
 * pristine). No Node and no compiler in it: the packages must bring their own runtime.
 *
 * Cache: $OFFLOADD_CACHE/debian-bookworm-root, by default ~/.cache/offloadd/ (shared with
 * scripts/node-runtime.sh); deleting it makes the next run build it again (~1 min). Mirror:
 * $OFFLOADD_DEBIAN_MIRROR, else the host's apt sources, else deb.debian.org.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const SUITE = 'bookworm';
/** systemd as init, ip and ethtool for the tests' links, procps for ExecReload's kill, man-db for man(1). */
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

/** The cached root, built when missing; a skip reason when it cannot be (no debootstrap, no mirror). */
export async function debianRoot(): Promise<RootResult> {
  const root = path.join(cacheDir(), `debian-${SUITE}-root`);
  if (fs.existsSync(path.join(root, COMPLETE_STAMP))) return { root, built: false, ms: 0 };
  try {
    execFileSync('debootstrap', ['--version'], { stdio: 'ignore' });
  } catch {
    return { skip: 'debootstrap is not installed (apt-get install debootstrap)' };
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
    execFileSync('debootstrap', ['--variant=minbase', `--include=${INCLUDE.join(',')}`, SUITE, work, mirror], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 15 * 60 * 1000,
    });
    // No console in the container, and no timers or daily jobs that could run during a test.
    for (const unit of ['console-getty.service', 'apt-daily.timer', 'apt-daily-upgrade.timer', 'man-db.timer']) {
      fs.symlinkSync('/dev/null', path.join(work, 'etc', 'systemd', 'system', unit));
    }
    fs.writeFileSync(path.join(work, COMPLETE_STAMP), `${SUITE} from ${mirror}, ${new Date().toISOString()}\n`);
    fs.rmSync(root, { recursive: true, force: true });
    fs.renameSync(work, root);
  } catch (error) {
    fs.rmSync(work, { recursive: true, force: true });
    throw new Error(`debootstrap of ${SUITE} from ${mirror} failed: ${(error as Error).message}`);
  }
  return { root, built: true, ms: Date.now() - started };
}
