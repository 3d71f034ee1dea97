/**
 * cgroups for the tests' own units and containers: where systemd-style tools track processes,
 * and removing a test's cgroup tree (killing what is left in it) afterwards.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sleepSync } from './proc';

/** statfs f_type of a cgroup2 file system. */
const CGROUP2_SUPER_MAGIC = 0x63677270;

/**
 * The cgroup hierarchies systemd-style tools track processes in, in the order systemd checks
 * them: the unified hierarchy (cgroup v2 on /sys/fs/cgroup, or on /sys/fs/cgroup/unified in
 * "hybrid" mode) and, when present, the named v1 hierarchy name=systemd. journald derives
 * _SYSTEMD_UNIT from the first; systemd-nspawn --keep-unit needs the process placed in all.
 */
export function cgroupHierarchies(): { unified: string | null; all: string[] } {
  const isCgroup2 = (dir: string): boolean => {
    try {
      return fs.statfsSync(dir).type === CGROUP2_SUPER_MAGIC;
    } catch {
      return false;
    }
  };
  if (isCgroup2('/sys/fs/cgroup')) return { unified: '/sys/fs/cgroup', all: ['/sys/fs/cgroup'] };
  const all: string[] = [];
  const v1 = '/sys/fs/cgroup/systemd';
  if (fs.existsSync(path.join(v1, 'cgroup.procs'))) all.push(v1);
  const hybrid = '/sys/fs/cgroup/unified';
  const unified = isCgroup2(hybrid) ? hybrid : null;
  if (unified) all.push(unified);
  return { unified, all };
}

/** The hierarchy journald reads a sender's unit from (unified if there is one, else name=systemd). */
export function journaldCgroupRoot(): string {
  const { unified, all } = cgroupHierarchies();
  const root = unified ?? all[0];
  if (!root) throw new Error('no cgroup hierarchy found under /sys/fs/cgroup (neither cgroup2 nor name=systemd)');
  return root;
}

/**
 * Runs `command` to its end inside the cgroup `dir` (made if need be), as systemd starts a unit's
 * process: the shell moves itself in, then execs the command. The caller removes the cgroup
 * (removeCgroupTree).
 */
export function runInCgroup(dir: string, command: string[]): SpawnSyncReturns<Buffer> {
  fs.mkdirSync(dir, { recursive: true });
  return spawnSync('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', dir, ...command]);
}

/**
 * Removes a cgroup directory and everything below it, deepest first; processes still inside are
 * killed first (a cgroup with processes cannot be removed). Never throws for "already gone".
 */
export function removeCgroupTree(dir: string, timeoutMs = 3000): void {
  if (!fs.existsSync(dir)) return;
  const children = fs.readdirSync(dir, { withFileTypes: true }).filter((entry) => entry.isDirectory());
  for (const child of children) removeCgroupTree(path.join(dir, child.name), timeoutMs);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = readPids(path.join(dir, 'cgroup.procs'));
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    try {
      fs.rmdirSync(dir);
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || Date.now() > deadline) {
        throw new Error(
          `cannot remove cgroup ${dir} (${code}); processes left: ${readPids(path.join(dir, 'cgroup.procs')).join(' ') || 'none'}`,
        );
      }
      sleepSync(20);
    }
  }
}

function readPids(file: string): number[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
