/**
 * Builds the packages the way a release would: from a clean clone of the checked-out commit
 * (uncommitted changes are not in it), with npm ci, npm run prebuilds and npm run package.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { destroyAtExit } from '../helpers/cleanup';
import { REPO_ROOT } from '../helpers/nspawn';
import { cacheDir } from '../helpers/debian-root';

/**
 * The release before this tree's version, for the upgrade tests: its commit (a hash, not the tag:
 * tags need not exist in a clone) and version. Bump both when a release is made.
 */
export const PREVIOUS_RELEASE = { version: '0.3.0', commit: '5e1983fe189a91dc8a494a0b5909b855a136cf35' };

/**
 * How long a hook that builds may take: a clean build of both architectures is ~4 min on an idle
 * 2-core machine, but several times that on a loaded one (dpkg-deb's xz, lintian).
 */
export const BUILD_TIMEOUT_MS = 30 * 60 * 1000;

export interface BuiltPackages {
  /** The clone; its packages/ holds the artifacts. Removed by remove(). */
  dir: string;
  version: string;
  packages: string;
  /** Artifact file name → bytes. */
  sizes: Record<string, number>;
  /** How long the build took (sharedPackages: the one build of the run). */
  buildMs?: number;
  remove(): void;
}

/** Runs a command in the clone under the shipped runtime; its output goes to the log. */
function run(dir: string, log: number, command: string, args: string[], env: NodeJS.ProcessEnv): void {
  execFileSync(command, args, { cwd: dir, env, stdio: ['ignore', log, log], timeout: 15 * 60 * 1000 });
}

/** The shipped runtime first on PATH, and its headers for node-gyp, as .ci/run sets them. */
export function releaseEnv(): NodeJS.ProcessEnv {
  const runtime = execFileSync(path.join(REPO_ROOT, 'scripts', 'node-runtime.sh'), { encoding: 'utf8' }).trim();
  // A clone that only packages needs no developer build of the addon after the prebuilds.
  return { ...process.env, PATH: `${runtime}/bin:${process.env['PATH'] ?? ''}`, npm_config_nodedir: runtime, OFFLOADD_PREBUILDS_ONLY: '1' };
}

/** A clean clone of COMMIT (default: HEAD) built with npm ci, npm run prebuilds and npm run package. */
export function buildPackages(arches: string[] = ['x64', 'arm64'], commit?: string, env: NodeJS.ProcessEnv = releaseEnv()): BuiltPackages {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-release-'));
  const logFile = path.join(dir, 'build.log');
  const log = fs.openSync(logFile, 'a');
  const remove = (): void => fs.rmSync(dir, { recursive: true, force: true });
  try {
    const head = commit ?? execFileSync('git', ['-C', REPO_ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    run(dir, log, 'git', ['clone', '--quiet', '--shared', '--no-checkout', REPO_ROOT, 'src'], env);
    const src = path.join(dir, 'src');
    run(src, log, 'git', ['checkout', '--quiet', '--detach', head], env);
    run(src, log, 'npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], env);
    run(src, log, 'npm', ['run', 'prebuilds', '--', ...arches], env);
    run(src, log, 'npm', ['run', 'package', '--', ...arches], env);
    return makeResult(src, remove);
  } catch (error) {
    const tail = fs.readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n');
    remove();
    throw new Error(`building the packages failed: ${(error as Error).message}\n${tail}`);
  } finally {
    fs.closeSync(log);
  }
}

let shared: { built: BuiltPackages } | { error: Error } | null = null;

/**
 * The packages of this commit, built once per test run and shared by the test files (the
 * packages, the image); removed when the run ends. A failed build fails every user alike.
 */
export function sharedPackages(): BuiltPackages {
  const reuse = process.env['OFFLOADD_TEST_REUSE_BUILD'];
  if (!shared && reuse) {
    // A directory an earlier run built (src/, and next/ if it made one), for iterating on the
    // tests without a full build; never set in CI. Left as it is afterwards.
    const built = makeResult(path.join(reuse, 'src'), () => undefined);
    built.buildMs = 0;
    shared = { built };
  }
  if (!shared) {
    try {
      const started = Date.now();
      const built = buildPackages();
      built.buildMs = Date.now() - started;
      shared = { built };
      destroyAtExit({ destroySync: () => built.remove() });
    } catch (error) {
      shared = { error: error as Error };
    }
  }
  if ('error' in shared) throw shared.error;
  return shared.built;
}

export interface BuiltImage {
  version: string;
  /** Architecture → packages/offloadd-<version>-oci-<arch>.tar */
  archives: Record<string, string>;
}

/**
 * npm run image in the clone, with buildah's storage of its own inside the clone's directory
 * (vfs: plain files, removed with it), so the host's images are neither used nor touched.
 */
const images = new Map<BuiltPackages, BuiltImage>();

/** buildImage once per build and run (the image's tests and the reproducibility test share it). */
export function sharedImage(built: BuiltPackages): BuiltImage {
  let image = images.get(built);
  if (!image) {
    image = buildImage(built);
    images.set(built, image);
  }
  return image;
}

export function buildImage(built: BuiltPackages, arches: string[] = ['x64', 'arm64']): BuiltImage {
  const src = path.dirname(built.packages);
  const storage = path.join(built.dir, 'containers-storage');
  fs.mkdirSync(storage, { recursive: true });
  const conf = path.join(storage, 'storage.conf');
  fs.writeFileSync(
    conf,
    `[storage]\ndriver = "vfs"\ngraphroot = "${storage}/graph"\nrunroot = "${storage}/run"\n`,
  );
  const log = fs.openSync(path.join(built.dir, 'image.log'), 'a');
  try {
    run(src, log, 'npm', ['run', 'image', '--', ...arches], { ...releaseEnv(), CONTAINERS_STORAGE_CONF: conf });
  } catch (error) {
    const tail = fs.readFileSync(path.join(built.dir, 'image.log'), 'utf8').split('\n').slice(-30).join('\n');
    throw new Error(`npm run image failed: ${(error as Error).message}\n${tail}`);
  } finally {
    fs.closeSync(log);
  }
  const version = (JSON.parse(fs.readFileSync(path.join(src, 'package.json'), 'utf8')) as { version: string }).version;
  const archives: Record<string, string> = {};
  for (const arch of arches) archives[arch] = path.join(built.packages, `offloadd-${version}-oci-${arch}.tar`);
  return { version, archives };
}

let nextVersion: { of: BuiltPackages; next: BuiltPackages } | null = null;

/**
 * Commits a version bump in the clone and builds the amd64 .deb again, with its apt repository
 * (an upgrade to test); done once per run, and shared by the test files that upgrade.
 */
export function rebuildWithNextVersion(built: BuiltPackages, arch = 'x64'): BuiltPackages {
  if (nextVersion?.of === built) return nextVersion.next;
  const next = rebuild(built, arch);
  nextVersion = { of: built, next };
  return next;
}

/**
 * The next version in a worktree of its own beside the clone (its node_modules hard-linked, the
 * addon copied), so the shared build stays exactly what the commit builds (reproducible.test.ts
 * compares it); the new .deb is also copied into the shared packages/ for tests that bound it.
 */
function rebuild(built: BuiltPackages, arch: string): BuiltPackages {
  const src = path.dirname(built.packages);
  const next = path.join(built.dir, 'next');
  if (process.env['OFFLOADD_TEST_REUSE_BUILD'] && fs.existsSync(path.join(next, 'packages'))) return makeResult(next, () => undefined);
  const env = releaseEnv();
  const log = fs.openSync(path.join(built.dir, 'rebuild.log'), 'a');
  try {
    run(src, log, 'git', ['worktree', 'add', '--quiet', '--detach', next, 'HEAD'], env);
    run(src, log, 'cp', ['-al', 'node_modules', path.join(next, 'node_modules')], env);
    // Copied now, so newer than the worktree's native/ (package.sh refuses an addon older than its sources).
    run(src, log, 'cp', ['-r', 'prebuilds', path.join(next, 'prebuilds')], env);
    run(next, log, 'npm', ['version', 'patch', '--no-git-tag-version'], env);
    run(next, log, 'git', ['-c', 'user.name=test', '-c', 'user.email=test@invalid', 'commit', '--quiet', '-am', 'next version'], env);
    run(next, log, 'npm', ['run', 'package', '--', arch], env);
  } catch (error) {
    const tail = fs.readFileSync(path.join(built.dir, 'rebuild.log'), 'utf8').split('\n').slice(-30).join('\n');
    throw new Error(`building the next version failed: ${(error as Error).message}\n${tail}`);
  } finally {
    fs.closeSync(log);
  }
  const result = makeResult(next, () => built.remove());
  for (const name of Object.keys(result.sizes)) {
    if (name.endsWith('.deb')) fs.copyFileSync(path.join(result.packages, name), path.join(built.packages, name));
  }
  return result;
}

/**
 * The same commit as `built`, built again from a second clean clone in another directory, later,
 * in another time zone: packages, tarballs and images (reproducible.test.ts compares the two).
 * Reused from the first build: the npm dependencies (node_modules hard-linked: package-lock.json
 * pins them, and they are inputs, not outputs) and the cached Node runtime; the addon is compiled
 * again. Removed with `built`'s directory.
 */
export function buildAgain(built: BuiltPackages): { again: BuiltPackages; image: BuiltImage } {
  const first = path.dirname(built.packages);
  const dir = path.join(built.dir, 'second-build', 'elsewhere');
  fs.mkdirSync(dir, { recursive: true });
  // lintian already checked the first build's identical bytes: not run twice.
  const env = { ...releaseEnv(), TZ: 'Pacific/Kiritimati', OFFLOADD_NO_LINTIAN: '1' };
  const logFile = path.join(dir, 'build.log');
  const log = fs.openSync(logFile, 'a');
  try {
    const head = execFileSync('git', ['-C', first, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    run(dir, log, 'git', ['clone', '--quiet', '--shared', '--no-checkout', REPO_ROOT, 'checkout'], env);
    const src = path.join(dir, 'checkout');
    run(src, log, 'git', ['checkout', '--quiet', '--detach', head], env);
    run(src, log, 'cp', ['-al', path.join(first, 'node_modules'), 'node_modules'], env);
    run(src, log, 'npm', ['run', 'prebuilds'], env);
    run(src, log, 'npm', ['run', 'package'], env);
    const again = makeResult(src, () => undefined);
    again.dir = dir;
    return { again, image: buildImage(again) };
  } catch (error) {
    const tail = fs.readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n');
    throw new Error(`building the commit a second time failed: ${(error as Error).message}\n${tail}`);
  } finally {
    fs.closeSync(log);
  }
}

/**
 * The previous release's amd64 .deb, built from its commit once and kept in $OFFLOADD_CACHE
 * (releases/): a real upgrade starts from what operators have installed, not from this tree
 * with a lower number. Building it costs a clean clone's npm ci, x64 prebuild and package (~2 min).
 */
export function previousReleaseDeb(): { version: string; deb: string; built: boolean; ms: number } {
  const { version, commit } = PREVIOUS_RELEASE;
  const dir = path.join(cacheDir(), 'releases', commit);
  const deb = path.join(dir, `offloadd_${version}_amd64.deb`);
  if (fs.existsSync(deb)) return { version, deb, built: false, ms: 0 };
  const started = Date.now();
  const built = buildPackages(['x64'], commit);
  try {
    fs.mkdirSync(dir, { recursive: true });
    const partial = `${deb}.partial`;
    fs.copyFileSync(path.join(built.packages, path.basename(deb)), partial);
    fs.renameSync(partial, deb);
  } finally {
    built.remove();
  }
  return { version, deb, built: true, ms: Date.now() - started };
}

function makeResult(src: string, remove: () => void): BuiltPackages {
  const version = (JSON.parse(fs.readFileSync(path.join(src, 'package.json'), 'utf8')) as { version: string }).version;
  const packages = path.join(src, 'packages');
  const sizes: Record<string, number> = {};
  for (const name of fs.readdirSync(packages)) {
    if (/\.(deb|tar\.gz)$/.test(name)) sizes[name] = fs.statSync(path.join(packages, name)).size;
  }
  return { dir: path.dirname(src), version, packages, sizes, remove };
}
