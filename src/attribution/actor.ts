/**
 * The actor behind a feature change: the process that sent the request, as far as it could be
 * named, plus what it asked for. One type for the ledger, the journal, the API and the CLI.
 */
import type { RequestSyscall } from './record';

export interface Actor {
  /**
   * Thread group id of the sender (what ps and systemd call the pid) as offloadd sees pids: in
   * its own PID namespace when it runs in a container; 0 for a sender outside it.
   */
  pid: number;
  /** The sending thread (0 outside offloadd's PID namespace). */
  tid: number;
  /** The process's name (/proc/PID/comm), or the sending thread's when the process is gone. */
  comm: string;
  /** /proc/PID/exe, or null (exited, or a kernel thread). */
  exe: string | null;
  /** The command line, bounded (ACTOR_CMDLINE_MAX_BYTES), or null. */
  cmdline: string[] | null;
  uid: number;
  /** The uid's name from the passwd file, or null. */
  user: string | null;
  /** The systemd unit or scope the process ran in (NetworkManager.service, session-3.scope), or null. */
  unit: string | null;
  /** A unit of a user's service manager, or null. */
  userUnit: string | null;
  container: { runtime: string; id: string } | null;
  pod: { uid: string } | null;
  /** The cgroup2 id the kernel recorded (decimal, as it is a u64) and its path when found. */
  cgroup: { id: string; path: string | null };
  /** The sender's network namespace inode (the kernel's record, else /proc), or null when unknown. */
  netns: number | null;
  syscall: RequestSyscall;
  /** What was asked: "ethtool-netlink FEATURES_SET", "ioctl ETHTOOL_SGRO", ... */
  request: string;
  ifindex: number | null;
  ifname: string | null;
  /** Features and the values asked for, where the request's bytes show them. */
  features: Record<string, boolean>;
  /** Kernel time of the request, CLOCK_MONOTONIC nanoseconds (decimal). */
  time: string;
  /**
   * running: named from /proc when read; exited: gone (or its pid reused) before that;
   * outside-pid-namespace: offloadd runs in a PID namespace of its own (a container) and the
   * sender was not in it, so it has no pid there: what the kernel recorded is all that is said.
   */
  process: 'running' | 'exited' | typeof OUTSIDE_PID_NAMESPACE;
  /** The process that started the sender, when it was still there (what ran a short-lived tool). */
  parent: { pid: number; comm: string; exe: string | null } | null;
  /** What could not be found out, or null. */
  partial: string | null;
}

/** The answer for a drift: the actors in the window before it, latest first, or why there is none. */
export interface ActorAnswer {
  actors: Actor[];
  /** Set when `actors` is empty. */
  none: string | null;
}

/** Actor.process for a sender outside offloadd's PID namespace (it has no pid offloadd can name). */
export const OUTSIDE_PID_NAMESPACE = 'outside-pid-namespace';

export const NO_USER_SPACE_REQUEST =
  'no request from user space: the kernel or the driver changed it (for example re-registration, or a change on a master device)';

/** `NetworkManager.service (pid 812, /usr/sbin/NetworkManager)`, `ethtool (pid 4242, uid 0, session-3.scope)`. */
export function describeActor(actor: Actor): string {
  const where = actor.container
    ? `${actor.pod ? `pod ${actor.pod.uid}, ` : ''}${actor.container.runtime} container ${actor.container.id.slice(0, 12)}`
    : (actor.userUnit ?? actor.unit);
  const exited = `${actor.process === 'exited' ? ', exited' : ''}${actor.parent ? `, run by ${actor.parent.comm} (pid ${actor.parent.pid})` : ''}`;
  if (actor.unit?.endsWith('.service') && !actor.container && !actor.userUnit) {
    return `${actor.unit} (${pidText(actor)}, ${actor.exe ?? actor.comm}${exited})`;
  }
  const details = [pidText(actor), `uid ${actor.user ?? actor.uid}`, ...(where ? [where] : [])];
  return `${actor.comm} (${details.join(', ')}${exited})`;
}

/** `pid 4242`, or where the sender was when it has no pid offloadd can name. */
function pidText(actor: Actor): string {
  return actor.process === OUTSIDE_PID_NAMESPACE ? "outside offloadd's PID namespace" : `pid ${actor.pid}`;
}

/** The journal fields for an actor (OFFLOADD_ACTOR_*); empty values are left out. */
export function actorJournalFields(actor: Actor): Record<string, string> {
  const fields: Record<string, string | null> = {
    OFFLOADD_ACTOR: describeActor(actor),
    OFFLOADD_ACTOR_PID: actor.process === OUTSIDE_PID_NAMESPACE ? null : String(actor.pid),
    OFFLOADD_ACTOR_COMM: actor.comm,
    OFFLOADD_ACTOR_EXE: actor.exe,
    OFFLOADD_ACTOR_UID: String(actor.uid),
    OFFLOADD_ACTOR_UNIT: actor.unit,
    OFFLOADD_ACTOR_USER_UNIT: actor.userUnit,
    OFFLOADD_ACTOR_CONTAINER: actor.container ? `${actor.container.runtime}:${actor.container.id}` : null,
    OFFLOADD_ACTOR_POD: actor.pod?.uid ?? null,
    OFFLOADD_ACTOR_CGROUP: actor.cgroup.path,
    OFFLOADD_ACTOR_SYSCALL: actor.syscall,
    OFFLOADD_ACTOR_REQUEST: actor.request,
    OFFLOADD_ACTOR_PARENT: actor.parent ? `${actor.parent.comm} (pid ${actor.parent.pid})` : null,
  };
  return Object.fromEntries(Object.entries(fields).filter((entry): entry is [string, string] => !!entry[1]));
}

/**
 * A drift's actor as records carry it: the process behind the latest request, or `{ none }` when
 * the kernel event had no request from user space before it (docs/API.md's glossary: actor).
 */
export type RecordActor = Actor | { none: string };

/** The label one actor counts under (metrics) and the short word for it: the unit, else the comm. */
export function actorName(actor: RecordActor): string {
  if ('none' in actor) return 'kernel';
  return actor.unit?.endsWith('.service') && !actor.container ? actor.unit : (actor.userUnit ?? actor.comm);
}

/** One cell of `offloadctl drift`'s BY column: `NetworkManager.service (pid 812)`, `kernel`. */
export function shortActor(actor: RecordActor): string {
  return 'none' in actor ? 'kernel' : `${actorName(actor)} (${pidText(actor)})`;
}
