/**
 * What the benchmark runs as the daemon: the checkout (`node bin/offloadd` over dist/, as
 * `npm start` does) or the build the packages ship (the esbuild bundle, the addon next to it and
 * a stripped copy of the pinned node, as scripts/stage.sh installs them), with node options and
 * environment on top (the memory scenario compares them). A bare node of the same binary is the
 * reference for the daemon's RSS.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT, run } from './system';

export interface DaemonRuntime {
  kind: 'checkout' | 'packaged';
  /** The node binary the daemon (and the bare-node reference) runs on. */
  node: string;
  /** The daemon's entry script. */
  entry: string;
  /** Node/V8 options before the entry. */
  nodeFlags: readonly string[];
  /** Environment added to the daemon's. */
  env: Readonly<Record<string, string>>;
}

export function checkoutRuntime(nodeFlags: readonly string[] = []): DaemonRuntime {
  return {
    kind: 'checkout',
    node: process.execPath,
    entry: path.join(REPO_ROOT, 'bin', 'offloadd'),
    nodeFlags,
    env: {},
  };
}

/** The library directory the packages install to; the bundle embeds it (the default policy's path). */
const PACKAGED_LIBDIR = '/usr/lib/offloadd';

function builtAddon(): string {
  const candidates = [
    path.join(REPO_ROOT, 'build', 'Release', 'offloadd.node'),
    path.join(REPO_ROOT, 'prebuilds', `linux-${process.arch}`, 'offloadd.node'),
  ];
  const found = candidates.find((candidate) => fs.existsSync(candidate));
  if (!found) throw new Error('the addon is not built (npm ci, or npm run prebuilds)');
  return found;
}

/**
 * Builds the packaged daemon into a temporary directory (removed at exit): scripts/bundle.js, the
 * built addon, and this node stripped as scripts/stage.sh strips it.
 */
export function packagedRuntime(nodeFlags: readonly string[] = []): DaemonRuntime {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-bench-packaged-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  run(process.execPath, [path.join(REPO_ROOT, 'scripts', 'bundle.js'), dir, PACKAGED_LIBDIR]);
  fs.copyFileSync(builtAddon(), path.join(dir, 'offloadd.node'));
  const node = path.join(dir, 'node', 'bin', 'node');
  fs.mkdirSync(path.dirname(node), { recursive: true });
  fs.copyFileSync(process.execPath, node);
  fs.chmodSync(node, 0o755);
  try {
    run('strip', ['--strip-all', node]);
  } catch {
    throw new Error('strip is needed for the packaged daemon (install binutils)');
  }
  return { kind: 'packaged', node, entry: path.join(dir, 'offloadd.js'), nodeFlags, env: {} };
}

/** The same runtime with other node options and environment (a memory-scenario variant). */
export function withOptions(
  runtime: DaemonRuntime,
  nodeFlags: readonly string[],
  env: Readonly<Record<string, string>>,
): DaemonRuntime {
  return { ...runtime, nodeFlags: [...runtime.nodeFlags, ...nodeFlags], env: { ...runtime.env, ...env } };
}

/**
 * The node options the packages, the image and the unit run the daemon with: DAEMON_NODE_FLAGS in
 * scripts/stage.sh, the one place they are kept (the unit's ExecStart= is checked against it).
 */
export function shippedNodeFlags(): string[] {
  const stage = fs.readFileSync(path.join(REPO_ROOT, 'scripts', 'stage.sh'), 'utf8');
  const value = /^DAEMON_NODE_FLAGS=["']?([^"'\n]*)["']?$/m.exec(stage)?.[1];
  if (value === undefined) throw new Error('scripts/stage.sh sets no DAEMON_NODE_FLAGS');
  return value.split(/\s+/).filter((flag) => flag.length > 0);
}
