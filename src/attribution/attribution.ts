/**
 * Attribution: who asked the kernel to change an interface's features. Starts the kernel side
 * (native/attribution.cc) and keeps an ActorLog the daemon asks when it records a drift. Never
 * throws for a kernel that cannot do it: `status()` says why attribution is off, once, for the
 * caller to report.
 *
 * Where the kernel has BTF (src/attribution/btf.ts), each record carries the sender's network
 * namespace as the kernel saw it, and the kernel does not wake the daemon per request: records wait
 * in the ring until a drift asks for its actor (or the ring is half full), and are named from /proc
 * then. A request about another namespace's interface is told apart even when its sender is long
 * gone; a sender that exited keeps what the kernel recorded (comm, uid, cgroup id → path). Without
 * BTF, every request wakes the daemon, which reads the sender's namespace from /proc at once and
 * names it RESOLVE_DELAY_MS later; status().reason says so.
 *
 * PIDs: in a PID namespace of its own (a container without the host's PIDs), the programs give
 * pids as the daemon sees them (src/attribution/pid-namespace.ts), so its own requests are
 * dropped in the kernel and senders are named from its /proc; a sender outside that namespace
 * is named by what the kernel recorded (comm, uid, cgroup, network namespace), with pid 0.
 *
 * Clocks: the kernel stamps requests with bpf_ktime_get_ns() (CLOCK_MONOTONIC). Link events carry
 * no kernel time, so the caller passes the time it received the event from
 * process.hrtime.bigint(), which is CLOCK_MONOTONIC too (libuv's uv_hrtime).
 */
import { attributionAddon, type AttributionHook, type NativeAttribution } from '../addon/binding';
import type { Actor, ActorAnswer } from './actor';
import { ActorLog, windowStartNs } from './actor-log';
import { CgroupIndex, cgroup2Mount } from './cgroup';
import { parseRecords, type KernelRequest } from './record';
import { kernelNetnsOffsets, type NetnsOffsets } from './btf';
import { pidNamespaceToTranslate } from './pid-namespace';
import { decodeRequest } from './request';
import { ActorResolver, netnsOf } from './resolve';
import { AttributionUnavailable, unavailableReason, type AddonFailure } from './unavailable';

/** How far before a drift a request still counts as its cause, unless the caller says otherwise. */
export const DEFAULT_ATTRIBUTION_WINDOW_MS = 2000;
const DEFAULT_SYSCALLS = ['ioctl', 'sendto', 'sendmsg'];
/**
 * Without the namespace in the record (no BTF): a request is named this long after it arrives,
 * unless a drift asks for it first. The kernel's
 * record is made at the system call's entry, before the change and its link event: naming the
 * sender at once (reading /proc, ~40-100 µs) would hold back the correction of the drift it
 * causes. A drift check asks after its correction and names what is pending then.
 */
const RESOLVE_DELAY_MS = 1;
/** More requests than this waiting (a storm) are named at once: the backlog stays bounded. */
const MAX_PENDING_REQUESTS = 256;

export interface AttributionOptions {
  /** The name → ifindex look-up of the watched namespace (the daemon's link table). */
  ifindexOf: (ifname: string) => number | undefined;
  /** Never blamed: the daemon's own pid (default: this process). */
  selfPid?: number;
  /** The network namespace whose interfaces are watched (inode; default: this process's). */
  netns?: number | null;
  windowMs?: number;
  ringBytes?: number;
  /**
   * Where the programs hook in: 'auto' (the default) tries the raw tracepoint sys_enter (cheaper
   * per traced call, no tracefs, no perf_event_open; a few loads on every system call) and falls
   * back to the syscall tracepoints.
   */
  hook?: AttributionHook | 'auto';
  /** Also trace write() on netlink sockets (off by default: write is the host's hottest call). */
  traceWrite?: boolean;
  /** Called for every attributed request, after it is in the log. */
  onActor?: (actor: Actor) => void;
  procRoot?: string;
  /** The kernel's BTF, to find where a task's network namespace lies (default /sys/kernel/btf/vmlinux). */
  btfFile?: string;
  /** The daemon's PID namespace file (default /proc/self/ns/pid): pids are given as seen there. */
  pidNamespaceFile?: string;
}

export interface AttributionStatus {
  enabled: boolean;
  /**
   * Why attribution is off; when on, null, or why it runs the slower way (no BTF: a wakeup per
   * request, the sender's namespace read from /proc).
   */
  reason: string | null;
  /** Requests the kernel could not hand over (ring buffer full). */
  dropped: number;
  /** Requests named so far. */
  attributed: number;
  /** Requests from another network namespace, about its own interfaces: ignored. */
  otherNamespace: number;
  /** The system calls traced. */
  traced: string[];
  /** Where the programs hook in, or null when off. */
  hook: AttributionHook | null;
}

export interface Attribution {
  /** Why the kernel side did not start, as a typed error (errno and stage in its cause), or null. */
  readonly unavailable: AttributionUnavailable | null;
  actorsFor(ifindex: number, receivedAtNs: bigint, windowMs?: number): ActorAnswer;
  /** The ifindex is gone: its history must not be blamed for the next device with that number. */
  forget(ifindex: number): void;
  status(): AttributionStatus;
  stop(): void;
}

function disabled(reason: string, cause?: unknown): Attribution {
  return {
    unavailable: new AttributionUnavailable(reason, { cause }),
    actorsFor: () => ({ actors: [], none: `attribution is off: ${reason}` }),
    forget: () => undefined,
    status: () => ({ enabled: false, reason, dropped: 0, attributed: 0, otherNamespace: 0, traced: [], hook: null }),
    stop: () => undefined,
  };
}

export function startAttribution(options: AttributionOptions): Attribution {
  const addon = attributionAddon();
  if (addon === null) return disabled('this build of the native addon has no attribution support');
  const procRoot = options.procRoot ?? '/proc';
  const watchedNetns = options.netns === undefined ? netnsOf(`${procRoot}/self`) : options.netns;
  const windowMs = options.windowMs ?? DEFAULT_ATTRIBUTION_WINDOW_MS;
  const log = new ActorLog();
  const resolver = new ActorResolver({ procRoot, cgroups: new CgroupIndex(cgroup2Mount()) });
  let attributed = 0;
  let otherNamespace = 0;
  let family = 0;
  const pending: KernelRequest[] = [];
  let resolveTimer: NodeJS.Timeout | null = null;
  const offsets = kernelNetnsOffsets(options.btfFile);
  const kernelNetns: NetnsOffsets | null = 'missing' in offsets ? null : offsets;
  const slowerWay =
    'missing' in offsets
      ? `${offsets.missing}; each request wakes offloadd, which reads the sender's network namespace from /proc at once`
      : null;

  const resolvePending = (): void => {
    if (resolveTimer !== null) clearTimeout(resolveTimer);
    resolveTimer = null;
    // A request older than the window can be no drift's cause any more: not worth naming.
    const oldest = windowStartNs(process.hrtime.bigint(), windowMs);
    for (const request of pending.splice(0)) {
      if (request.ktimeNs < oldest) continue;
      const decoded = decodeRequest(request, options.ifindexOf);
      const actor = resolver.resolve(request, decoded);
      attributed++;
      log.add(actor);
      options.onActor?.(actor);
    }
  };

  const onRecords = (records: Buffer, count: number): void => {
    for (const request of parseRecords(records, count, addon.recordBytes)) {
      if (request.syscall !== 'ioctl' && (family === 0 || request.argument !== family)) continue;
      // A request about another namespace's ifindex 3 must never be blamed for ours: the kernel
      // recorded the sender's namespace, or (no BTF) it is read at once, while a short-lived
      // sender still exists (one readlink). The rest waits.
      const netns =
        request.netns ?? (kernelNetns || request.outsidePidNamespace ? null : netnsOf(`${procRoot}/${request.pid}`));
      if (netns !== null && watchedNetns !== null && netns !== watchedNetns) {
        otherNamespace++;
        continue;
      }
      pending.push(request);
    }
    // With the namespace in the record, no timer: a drift's question (or a half-full ring) drains.
    if (pending.length > MAX_PENDING_REQUESTS) resolvePending();
    else if (!kernelNetns && pending.length > 0 && resolveTimer === null)
      resolveTimer = setTimeout(resolvePending, RESOLVE_DELAY_MS).unref();
  };

  const hooks: AttributionHook[] =
    options.hook === undefined || options.hook === 'auto' ? ['raw_tracepoint', 'tracepoint'] : [options.hook];
  let native: NativeAttribution | null = null;
  let failure: unknown = null;
  const pidNamespace = pidNamespaceToTranslate(options.pidNamespaceFile);
  for (const hook of hooks) {
    try {
      native = addon.open(
        {
          selfTgid: options.selfPid ?? process.pid,
          ringBytes: options.ringBytes,
          syscalls: options.traceWrite ? [...DEFAULT_SYSCALLS, 'write'] : DEFAULT_SYSCALLS,
          hook,
          ...(kernelNetns ? { netns: kernelNetns } : {}),
          ...(pidNamespace ? { pidNamespace } : {}),
        },
        onRecords,
      );
      break;
    } catch (error) {
      // The last hook's failure is the one reported: the fallback's reason is the actionable one.
      failure = error;
    }
  }
  if (native === null) return disabled(unavailableReason(failure as AddonFailure), failure);
  const opened = native;
  family = opened.ethtoolFamily();
  opened.unref();
  let stopped = false;
  return {
    unavailable: null,
    actorsFor: (ifindex, receivedAtNs, window = windowMs) => {
      // The link event may be handled before the loop polled the ring buffer: take in what is there.
      if (!stopped) opened.drain();
      resolvePending();
      return log.actorsFor(ifindex, receivedAtNs, window);
    },
    forget: (ifindex) => {
      // Requests still in the ring name the gone device: into the log first, then forgotten with it.
      if (!stopped) opened.drain();
      resolvePending();
      log.forget(ifindex);
    },
    status: () => ({
      enabled: !stopped,
      reason: stopped ? 'stopped' : slowerWay,
      dropped: stopped ? 0 : opened.dropped(),
      attributed,
      otherNamespace,
      traced: stopped ? [] : opened.attached(),
      hook: stopped ? null : opened.hook(),
    }),
    stop: () => {
      stopped = true;
      if (resolveTimer !== null) clearTimeout(resolveTimer);
      resolveTimer = null;
      pending.length = 0;
      opened.close();
    },
  };
}
