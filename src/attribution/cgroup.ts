/**
 * A cgroup path says who runs a process: a systemd unit or scope, a user session, a container, a
 * Kubernetes pod. `classifyCgroup` reads that from the path alone (pure); `CgroupIndex` turns the
 * cgroup id the kernel recorded into a path when the process is already gone.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface CgroupOwner {
  /** The innermost systemd unit or scope (`NetworkManager.service`, `session-3.scope`). */
  unit: string | null;
  /** A unit of a user's service manager (under user@UID.service), or null. */
  userUnit: string | null;
  /** The uid of the user slice the path is under (user-1000.slice), or null. */
  sliceUid: number | null;
  container: { runtime: string; id: string } | null;
  /** A Kubernetes pod, by the uid in its cgroup name (underscores read as dashes). */
  pod: { uid: string } | null;
}

const CONTAINER_SCOPE = /^(cri-containerd|crio|docker|libpod)-([0-9a-f]{12,64})\.scope$/;
const RUNTIME_NAMES: Readonly<Record<string, string>> = {
  'cri-containerd': 'containerd',
  crio: 'cri-o',
  docker: 'docker',
  libpod: 'podman',
};
const POD_SLICE = /^kubepods(?:-[a-z]+)?-pod([0-9a-f_-]{36})\.slice$/;
const POD_DIR = /^pod([0-9a-f-]{36})$/;
const BARE_CONTAINER_ID = /^[0-9a-f]{64}$/;
const USER_SLICE = /^user-(\d+)\.slice$/;
const USER_MANAGER = /^user@(\d+)\.service$/;

/** Who owns the cgroup at `cgroupPath` (as in /proc/PID/cgroup's `0::` line). */
export function classifyCgroup(cgroupPath: string): CgroupOwner {
  const owner: CgroupOwner = { unit: null, userUnit: null, sliceUid: null, container: null, pod: null };
  const parts = cgroupPath.split('/').filter((part) => part.length > 0);
  let insideUserManager = false;
  let insideKubepods = false;
  let insideDocker = false;
  for (const part of parts) {
    const slice = USER_SLICE.exec(part);
    if (slice) owner.sliceUid = Number(slice[1]);
    if (part.startsWith('kubepods')) insideKubepods = true;
    const podSlice = POD_SLICE.exec(part) ?? (insideKubepods ? POD_DIR.exec(part) : null);
    if (podSlice?.[1]) owner.pod = { uid: podSlice[1].replaceAll('_', '-') };
    const scope = CONTAINER_SCOPE.exec(part);
    if (scope?.[1] && scope[2]) owner.container = { runtime: RUNTIME_NAMES[scope[1]] ?? scope[1], id: scope[2] };
    else if ((insideKubepods || insideDocker) && BARE_CONTAINER_ID.test(part)) {
      owner.container = { runtime: insideDocker ? 'docker' : 'unknown', id: part };
    }
    if (part === 'docker') insideDocker = true;
    if (part.endsWith('.service') || part.endsWith('.scope')) {
      if (insideUserManager) owner.userUnit = part;
      else owner.unit = part;
    }
    if (USER_MANAGER.test(part)) insideUserManager = true;
  }
  return owner;
}

/** statfs f_type of cgroup2. */
const CGROUP2_SUPER_MAGIC = 0x63677270;
/** A walk of the cgroup tree stops here: enough for any host, bounded on a pathological one. */
export const MAX_CGROUP_DIRECTORIES = 20_000;

/** Where cgroup2 is mounted: /sys/fs/cgroup (unified) or /sys/fs/cgroup/unified (hybrid), or null. */
export function cgroup2Mount(root = '/'): string | null {
  for (const candidate of ['sys/fs/cgroup', 'sys/fs/cgroup/unified']) {
    const dir = path.join(root, candidate);
    try {
      if (fs.statfsSync(dir).type === CGROUP2_SUPER_MAGIC) return dir;
    } catch {
      // not there
    }
  }
  return null;
}

/**
 * cgroup id → path, for a process that exited before it was resolved. The id is the directory's
 * inode number on cgroup2; a cache answers repeats, a bounded walk answers a miss.
 */
export class CgroupIndex {
  private readonly known = new Map<bigint, string>();

  constructor(private readonly mount: string | null) {}

  /** The path (relative to the cgroup2 root, with a leading slash) or null when not found. */
  pathOf(id: bigint): string | null {
    if (this.mount === null) return null;
    const cached = this.known.get(id);
    if (cached !== undefined && this.stillThere(cached, id)) return cached;
    const stack = ['/'];
    let visited = 0;
    while (stack.length > 0 && visited < MAX_CGROUP_DIRECTORIES) {
      const relative = stack.pop() as string;
      visited++;
      let entries: fs.Dirent[];
      try {
        const inode = fs.statSync(path.join(this.mount, relative), { bigint: true }).ino;
        this.remember(inode, relative);
        if (inode === id) return relative;
        entries = fs.readdirSync(path.join(this.mount, relative), { withFileTypes: true });
      } catch {
        continue; // removed while walking
      }
      for (const entry of entries) if (entry.isDirectory()) stack.push(path.posix.join(relative, entry.name));
    }
    return null;
  }

  private stillThere(relative: string, id: bigint): boolean {
    try {
      return fs.statSync(path.join(this.mount as string, relative), { bigint: true }).ino === id;
    } catch {
      return false;
    }
  }

  private remember(id: bigint, relative: string): void {
    if (this.known.size >= MAX_CGROUP_DIRECTORIES) this.known.clear();
    this.known.set(id, relative);
  }
}
