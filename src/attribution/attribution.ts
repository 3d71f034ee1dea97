/**
 * Attribution: who asked the kernel to change an interface's features. Starts the kernel side
 * (native/attribution.cc), names each request's sender within a millisecond (RESOLVE_DELAY_MS),
 * and keeps an ActorLog the daemon asks when it records a drift. Never throws for a kernel that cannot do it: `status()` says why
 * attribution is off, once, for the caller to report.
 *
 * Clocks: the kernel stamps requests with bpf_ktime_get_ns() (CLOCK_MONOTONIC). Link events carry
 * no kernel time, so the caller passes the time it received the event from
 * process.hrtime.bigint(), which is CLOCK_MONOTONIC too (libuv's uv_hrtime).
 */
import { attributionAddon, type AttributionHook, type NativeAttribution } from '../addon/binding';
import type { Actor, ActorAnswer } from './actor';
import { ActorLog } from './actor-log';
import { CgroupIndex, cgroup2Mount } from './cgroup';
import { parseRecords, type KernelRequest } from './record';
import { decodeRequest } from './request';
import { ActorResolver, netnsOf } from './resolve';
import { AttributionUnavailable, unavailableReason, type AddonFailure } from './unavailable';

/** How far before a drift a request still counts as its cause, unless the caller says otherwise. */
export const DEFAULT_ATTRIBUTION_WINDOW_MS = 2000;
const DEFAULT_SYSCALLS = ['ioctl', 'sendto', 'sendmsg'];
/**
 * A request is named this long after it arrives, unless a drift asks for it first. The kernel's
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
}

export interface AttributionStatus {
  enabled: boolean;
  /** Why attribution is off (null when on). */
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

  const resolvePending = (): void => {
    if (resolveTimer !== null) clearTimeout(resolveTimer);
    resolveTimer = null;
    for (const request of pending.splice(0)) {
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
      // The namespace is read at once (one readlink), while a short-lived sender still exists: a
      // request about another namespace's ifindex 3 must never be blamed for ours. The rest waits.
      const netns = netnsOf(`${procRoot}/${request.pid}`);
      if (netns !== null && watchedNetns !== null && netns !== watchedNetns) {
        otherNamespace++;
        continue;
      }
      pending.push(request);
    }
    if (pending.length > MAX_PENDING_REQUESTS) resolvePending();
    else if (pending.length > 0 && resolveTimer === null)
      resolveTimer = setTimeout(resolvePending, RESOLVE_DELAY_MS).unref();
  };

  const hooks: AttributionHook[] =
    options.hook === undefined || options.hook === 'auto' ? ['raw_tracepoint', 'tracepoint'] : [options.hook];
  let native: NativeAttribution | null = null;
  let failure: unknown = null;
  for (const hook of hooks) {
    try {
      native = addon.open(
        {
          selfTgid: options.selfPid ?? process.pid,
          ringBytes: options.ringBytes,
          syscalls: options.traceWrite ? [...DEFAULT_SYSCALLS, 'write'] : DEFAULT_SYSCALLS,
          hook,
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
    forget: (ifindex) => log.forget(ifindex),
    status: () => ({
      enabled: !stopped,
      reason: stopped ? 'stopped' : null,
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
