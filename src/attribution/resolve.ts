/**
 * Names the process behind a request from /proc, when the daemon reads the request (a drift asks
 * for it; a short-lived `ethtool` is often gone by then). A process already gone, or a pid that
 * now belongs to a newer process, is "exited": what the kernel recorded (comm, uid, cgroup id →
 * path, network namespace) is all that is said.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OUTSIDE_PID_NAMESPACE, type Actor } from './actor';
import { classifyCgroup, type CgroupIndex } from './cgroup';
import type { KernelRequest } from './record';
import type { DecodedRequest } from './request';
import { monotonicMs } from '../clock';

/** A command line longer than this is cut (an argument list can be megabytes). */
export const ACTOR_CMDLINE_MAX_BYTES = 1024;
/** USER_HZ: /proc/PID/stat's start time is in these ticks on every Linux architecture. */
const CLOCK_TICKS_PER_SECOND = 100;
/** A process that started this long after the request cannot have sent it: its pid was reused. */
const START_TIME_SLACK_NS = 20_000_000n;
/**
 * How long what was read of a running process (executable, command line, cgroup, parent) is
 * trusted for its next requests: a manager that keeps fighting costs one read of its stat per
 * drift, not eight, while a changed command line or cgroup is seen within this time.
 */
const PROCESS_FACTS_TTL_MS = 60_000;
/** Running processes whose facts are kept; the ones that keep changing features are few. */
const PROCESS_FACTS_MAX = 256;

/** What was read of a running process, by pid and start time (a reused pid is another key). */
interface ProcessFacts {
  comm: string | null;
  exe: string;
  cmdline: string[] | null;
  cgroupPath: string | null;
  parent: Actor['parent'];
  readAtMs: number;
}

export interface ResolverOptions {
  procRoot?: string;
  passwdFile?: string;
  cgroups: CgroupIndex;
}

export class ActorResolver {
  private readonly procRoot: string;
  private readonly passwdFile: string;
  private users: Map<number, string> | null = null;
  private readonly known = new Map<string, ProcessFacts>();

  constructor(private readonly options: ResolverOptions) {
    this.procRoot = options.procRoot ?? '/proc';
    this.passwdFile = options.passwdFile ?? '/etc/passwd';
  }

  resolve(request: KernelRequest, decoded: DecodedRequest): Actor {
    if (request.outsidePidNamespace) return this.outsidePidNamespace(request, decoded);
    const proc = path.join(this.procRoot, String(request.pid));
    const stat = readStat(proc);
    let alive = stat !== null && isSameProcess(stat, request.ktimeNs) && !stat.exited;
    const key = stat !== null && alive ? `${request.pid}:${stat.startedNs}` : null;
    const known = key === null ? undefined : this.knownFacts(key);
    const exe = known ? known.exe : alive ? readLink(path.join(proc, 'exe')) : null;
    // No executable while alive: exiting right now (its memory is already gone), or not ours to read.
    if (alive && exe === null && (readStat(proc)?.exited ?? true)) alive = false;
    // /proc/PID missing while the pid exists: hidden from this daemon (ProtectProc=invisible).
    const hidden = stat === null && processExists(request.pid);
    const cgroupPath =
      (alive ? (known ? known.cgroupPath : this.cgroupPathOf(proc)) : null) ??
      this.options.cgroups.pathOf(request.cgroupId);
    const actor: Actor = {
      pid: request.pid,
      tid: request.tid,
      comm: (alive ? (known ? known.comm : readTrimmed(path.join(proc, 'comm'))) : null) ?? request.comm,
      exe,
      cmdline: alive ? (known ? known.cmdline : readCmdline(path.join(proc, 'cmdline'))) : null,
      ...this.requestFacts(request, decoded, cgroupPath),
      netns: request.netns ?? (alive ? netnsOf(proc) : null),
      process: alive || hidden ? 'running' : 'exited',
      parent:
        known !== undefined
          ? known.parent
          : stat !== null && isSameProcess(stat, request.ktimeNs)
            ? this.parentOf(stat.ppid, request.ktimeNs)
            : null,
      partial: decoded.partial,
    };
    if (key !== null && alive && exe !== null && !known) this.remember(key, actor, cgroupPath);
    if (alive && exe === null) {
      const why = "its executable could not be read (it was exiting, or is not offloadd's to read)";
      actor.partial = actor.partial ? `${actor.partial}; ${why}` : why;
    }
    if (!alive) {
      const why = hidden
        ? 'the process is hidden from offloadd (ProtectProc=invisible): executable and network namespace unknown'
        : `the process exited before it was resolved (executable${actor.netns === null ? ' and network namespace' : ''} unknown)`;
      actor.partial = actor.partial ? `${actor.partial}; ${why}` : why;
    }
    return actor;
  }

  /**
   * A sender outside offloadd's PID namespace (offloadd in a container, the sender on the host or
   * in another container): no pid to look up in this /proc, so nothing is read from it (a pid
   * there would be another process). What the kernel recorded names it: comm, uid, cgroup id
   * (its path through the cgroup file system, when it is mounted here) and network namespace.
   */
  private outsidePidNamespace(request: KernelRequest, decoded: DecodedRequest): Actor {
    const cgroupPath = this.options.cgroups.pathOf(request.cgroupId);
    const why =
      "the sender is outside offloadd's PID namespace (offloadd runs in a container without the host's PIDs): " +
      `no pid, executable or command line${request.netns === null ? ', network namespace unknown' : ''}`;
    return {
      pid: 0,
      tid: 0,
      comm: request.comm,
      exe: null,
      cmdline: null,
      ...this.requestFacts(request, decoded, cgroupPath),
      netns: request.netns,
      process: OUTSIDE_PID_NAMESPACE,
      parent: null,
      partial: decoded.partial ? `${decoded.partial}; ${why}` : why,
    };
  }

  /** What the kernel recorded and the request said, the same whether the sender is found or not. */
  private requestFacts(
    request: KernelRequest,
    decoded: DecodedRequest,
    cgroupPath: string | null,
  ): Omit<Actor, 'pid' | 'tid' | 'comm' | 'exe' | 'cmdline' | 'netns' | 'process' | 'parent' | 'partial'> {
    const owner = classifyCgroup(cgroupPath ?? '');
    return {
      uid: request.uid,
      user: this.userName(request.uid),
      unit: owner.unit,
      userUnit: owner.userUnit,
      container: owner.container,
      pod: owner.pod,
      cgroup: { id: request.cgroupId.toString(), path: cgroupPath },
      syscall: request.syscall,
      request: decoded.request,
      ifindex: decoded.ifindex,
      ifname: decoded.ifname,
      features: decoded.features,
      time: request.ktimeNs.toString(),
    };
  }

  /**
   * The parent that started the sender (a zombie's stat still names it): what ran a short-lived
   * `ethtool` (a script, cron, cloud-init) is often still there when the tool is gone.
   */
  private parentOf(ppid: number, requestNs: bigint): Actor['parent'] {
    if (ppid <= 1) return null;
    const proc = path.join(this.procRoot, String(ppid));
    const stat = readStat(proc);
    if (stat === null || stat.exited || !isSameProcess(stat, requestNs)) return null;
    return {
      pid: ppid,
      comm: readTrimmed(path.join(proc, 'comm')) ?? stat.comm,
      exe: readLink(path.join(proc, 'exe')),
    };
  }

  private knownFacts(key: string): ProcessFacts | undefined {
    const facts = this.known.get(key);
    if (facts && monotonicMs() - facts.readAtMs <= PROCESS_FACTS_TTL_MS) return facts;
    this.known.delete(key);
    return undefined;
  }

  private remember(key: string, actor: Actor, cgroupPath: string | null): void {
    // The oldest entry goes first (a Map keeps insertion order).
    if (this.known.size >= PROCESS_FACTS_MAX) this.known.delete(this.known.keys().next().value as string);
    const { comm, exe, cmdline, parent } = actor;
    this.known.set(key, { comm, exe: exe as string, cmdline, cgroupPath, parent, readAtMs: monotonicMs() });
  }

  private cgroupPathOf(proc: string): string | null {
    const content = readTrimmed(path.join(proc, 'cgroup'));
    const unified = content?.split('\n').find((line) => line.startsWith('0::'));
    return unified ? unified.slice(3) : null;
  }

  private userName(uid: number): string | null {
    if (this.users === null) {
      this.users = new Map();
      const passwd = readTrimmed(this.passwdFile) ?? '';
      for (const line of passwd.split('\n')) {
        const [name, , id] = line.split(':');
        if (name && id && /^\d+$/.test(id)) this.users.set(Number(id), name);
      }
    }
    return this.users.get(uid) ?? null;
  }
}

interface ProcStat {
  comm: string;
  /** A zombie (exited, not yet reaped): its stat stays readable, nothing else of it does. */
  exited: boolean;
  ppid: number;
  /** Start time on the boot-time clock, in nanoseconds. */
  startedNs: bigint;
}

/** /proc/PID/stat's fields after the parenthesised comm (which may hold spaces and parentheses). */
/** kill(pid, 0): EPERM means it exists but belongs to someone else; ESRCH that it is gone. */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** include/linux/sched.h: set at the start of do_exit(). */
const PF_EXITING = 0x4;

function readStat(proc: string): ProcStat | null {
  const stat = readTrimmed(path.join(proc, 'stat'));
  if (stat === null) return null;
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  const [state, ppid, flags, ticks] = [fields[0], fields[1], fields[6], fields[19]];
  if (state === undefined || ppid === undefined || ticks === undefined || !/^\d+$/.test(ticks)) return null;
  return {
    comm: stat.slice(stat.indexOf('(') + 1, close),
    // PF_EXITING: in do_exit(), its memory (and so its executable) may already be gone.
    exited: state === 'Z' || state === 'X' || (Number(flags) & PF_EXITING) !== 0,
    ppid: Number(ppid),
    startedNs: (BigInt(ticks) * 1_000_000_000n) / BigInt(CLOCK_TICKS_PER_SECOND),
  };
}

/**
 * Whether the process at this pid can have made a request at `requestNs`: it did not start after
 * it (else the pid was reused). starttime is on the boot-time clock, which runs ahead of
 * CLOCK_MONOTONIC only across a suspend: then a real sender may look newer, and is conservatively
 * called "exited".
 */
function isSameProcess(stat: ProcStat, requestNs: bigint): boolean {
  return stat.startedNs <= requestNs + START_TIME_SLACK_NS;
}

function readTrimmed(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd();
  } catch {
    return null;
  }
}

function readLink(file: string): string | null {
  try {
    return fs.readlinkSync(file);
  } catch {
    return null;
  }
}

function readCmdline(file: string): string[] | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const buffer = Buffer.alloc(ACTOR_CMDLINE_MAX_BYTES);
    const length = fs.readSync(fd, buffer, 0, buffer.length, 0);
    if (length === 0) return null;
    return buffer.subarray(0, length).toString('utf8').replace(/\0$/, '').split('\0');
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

/** The inode of /proc/PID/ns/net ("net:[4026531840]"), or null. */
export function netnsOf(proc: string): number | null {
  const link = readLink(path.join(proc, 'ns', 'net'));
  const match = link ? /\[(\d+)\]/.exec(link) : null;
  return match?.[1] ? Number(match[1]) : null;
}
