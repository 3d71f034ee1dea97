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
function releaseEnv(): NodeJS.ProcessEnv {
  const runtime = execFileSync(path.join(REPO_ROOT, 'scripts', 'node-runtime.sh'), { encoding: 'utf8' }).trim();
  return { ...process.env, PATH: `${runtime}/bin:${process.env['PATH'] ?? ''}`, npm_config_nodedir: runtime };
}

export function buildPackages(arches: string[] = ['x64', 'arm64']): BuiltPackages {
  const env = releaseEnv();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-release-'));
  const logFile = path.join(dir, 'build.log');
  const log = fs.openSync(logFile, 'a');
  const remove = (): void => fs.rmSync(dir, { recursive: true, force: true });
  try {
    const head = execFileSync('git', ['-C', REPO_ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
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

/** Commits a version bump in the clone and builds the .deb again (an upgrade to test). */
export function rebuildWithNextVersion(built: BuiltPackages, arch = 'x64'): BuiltPackages {
  const src = path.dirname(built.packages);
  const env = releaseEnv();
  const log = fs.openSync(path.join(built.dir, 'rebuild.log'), 'a');
  try {
    run(src, log, 'npm', ['version', 'patch', '--no-git-tag-version'], env);
    run(src, log, 'git', ['-c', 'user.name=test', '-c', 'user.email=test@invalid', 'commit', '--quiet', '-am', 'next version'], env);
    run(src, log, 'npm', ['run', 'package', '--', arch], env);
  } finally {
    fs.closeSync(log);
  }
  return makeResult(src, () => built.remove());
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
