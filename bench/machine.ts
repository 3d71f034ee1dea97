/** The machine the figures were measured on, for the table and the JSON. */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { REPO_ROOT, run } from './system';

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  ethtool: string;
  iproute2: string;
  /** The offloadd commit measured, with "+dirty" when the work tree has changes. */
  commit: string;
  /** Uncommitted changes to what runs (src/, native/): files and a hash of the diff. */
  uncommitted: { files: string[]; diffSha256: string | null };
}

function quietly(read: () => string): string {
  try {
    return read().trim();
  } catch {
    return 'unknown';
  }
}

/** The figures belong to the code as it was: name the uncommitted source changes. */
function uncommittedCode(): { files: string[]; diffSha256: string | null } {
  const files = quietly(() => run('git', ['-C', REPO_ROOT, 'diff', '--name-only', 'HEAD', '--', 'src', 'native']));
  const diff = quietly(() => run('git', ['-C', REPO_ROOT, 'diff', 'HEAD', '--', 'src', 'native']));
  return {
    files: files && files !== 'unknown' ? files.split('\n') : [],
    diffSha256: diff && diff !== 'unknown' ? createHash('sha256').update(diff).digest('hex').slice(0, 16) : null,
  };
}

export function describeMachine(): Machine {
  const cpuinfo = quietly(() => fs.readFileSync('/proc/cpuinfo', 'utf8'));
  const commit = quietly(() => run('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD']));
  const dirty = quietly(() => run('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--untracked-files=no'])) !== '';
  return {
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: os.totalmem() / 1024 ** 3,
    kernel: os.release(),
    node: process.version,
    ethtool: quietly(() => run('ethtool', ['--version'])),
    iproute2: quietly(() => run('ip', ['-V'])),
    commit: `${commit}${dirty ? '+dirty' : ''}`,
    uncommitted: uncommittedCode(),
  };
}
