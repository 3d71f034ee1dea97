/**
 * The native addon's surface, declared once as plain data, and the only place that loads it:
 * lazily, at the first call, so that importing a module (matching, planning, formatting, the
 * kernel-free unit suites, `offloadctl --help`) never needs the compiled addon. Errors thrown by the addon carry `errno`, `syscall` and `ifname` as properties; they are
 * turned into KernelError here so the rest of the daemon sees one error type.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { KernelError, OffloaddError } from '../errors';
import { describeErrno } from './errno';

export interface DriverInfo {
  driver: string;
  version: string;
  firmware: string;
  busInfo: string;
}

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** The kernel's 64-bit interface counters (IFLA_STATS64): the ones the doctor reads. */
export interface LinkCounters {
  rxPackets: bigint;
  txPackets: bigint;
  rxBytes: bigint;
  txBytes: bigint;
  rxErrors: bigint;
  txErrors: bigint;
  rxDropped: bigint;
  txDropped: bigint;
  rxOverErrors: bigint;
  rxFifoErrors: bigint;
  rxMissedErrors: bigint;
  txFifoErrors: bigint;
}

export interface LinkStats {
  mtu: number;
  stats: LinkCounters;
}

/** ethtool -S: the driver's counter names and values, pairwise. */
export interface DriverStats {
  names: string[];
  values: BigUint64Array;
}

export interface NativeUnixListener {
  /** Stops accepting and closes the socket; the path is left for the caller to remove. */
  close(): void;
  /** Stops accepting for now (connections wait in the kernel's backlog)... */
  pause(): void;
  /** ...and accepts again. */
  resume(): void;
}

export interface NativeLinkMonitor {
  close(): void;
  /** A kernel-side filter drops link messages without IFLA_PARENT_DEV_NAME (on), or none (off). */
  dropDevicelessLinks(on: boolean): void;
  /** The next IFLA_EVENT_FEATURES message for `ifindex` is the daemon's own: dropped unseen. */
  expectOwnFeatureEvent(ifindex: number): void;
  /** Drops the expectations of one link, or of all (no argument). */
  forgetOwnFeatureEvents(ifindex?: number): void;
  /** Reads and delivers what is queued now, as a wake-up would; true when more may be queued. */
  deliverPending(): boolean;
  /** Asks for this receive buffer (as the constructor does); returns what the kernel granted. */
  setReceiveBuffer(bytes: number): number;
  receiveBufferBytes(): number;
  ref(): void;
  unref(): void;
}

/**
 * One interface's features as the kernel keeps them: bitsets over the ETH_SS_FEATURES string set
 * (bit i is feature name i; one u32 per 32 features, sized by the addon from the set).
 */
export interface FeatureBitsets {
  /** hw_features: what the device lets be changed. */
  available: Uint32Array;
  /** wanted_features: what was last asked for. */
  requested: Uint32Array;
  /** features: what is in effect. */
  active: Uint32Array;
  /** NETIF_F_NEVER_CHANGE: never changeable on any device. */
  neverChanged: Uint32Array;
}

/** Features to turn on and off, by bit (index in the ETH_SS_FEATURES string set). */
export interface WantedFeatures {
  enable: number[];
  disable: number[];
}

/** A FEATURES_GET answer's bitsets in FeaturesBatch.bits, in this order (FeatureBitsets' meanings). */
export const FEATURE_BITSET = { available: 0, requested: 1, active: 2, neverChanged: 3, count: 4 } as const;

/**
 * A FEATURES_SET reply's bitsets in FeaturesBatch.bits, in this order: the active bits the request
 * changed, their values now, and the requested bits the kernel did not grant (all zero when
 * nothing changed).
 */
export const SET_REPLY_BITSET = { activeChanged: 0, activeNow: 1, unmet: 2, count: 3 } as const;

/**
 * A pipelined batch's answers, flat: one object and two typed arrays per batch, however many
 * requests (an object with a typed-array view per bitset and interface was the largest
 * allocation of a check). Request i's bitsets are in `bits` from i × count × `words`, `words`
 * u32 each, in FEATURE_BITSET (readFeatures) or SET_REPLY_BITSET (writeFeatures) order.
 */
export interface FeaturesBatch {
  /** u32 words per bitset. */
  words: number;
  bits: Uint32Array;
  /**
   * Per request: 0 when answered, else the errno of the kernel's refusal, or of no usable answer
   * (ENOBUFS: none; EBADMSG: one that did not parse). A refused request's bitsets are zero.
   */
  errnos: Int32Array;
  /** Per request, the kernel's extended ACK text ('' when none); null when it gave none at all. */
  extacks: string[] | null;
}

interface NativeAddon {
  featureNames: (ifname: string) => string[];
  getFeatures: (ifname: string, ifindex: number) => FeatureBitsets;
  /** ETHTOOL_SFEATURES. Returns the kernel's ETHTOOL_F_* flags. */
  setFeatures: (ifname: string, ifindex: number, wanted: WantedFeatures) => number;
  driverInfo: (ifname: string, ifindex: number) => DriverInfo;
  /** Whether this kernel has the ethtool generic netlink family (resolved once). */
  ethtoolNetlinkAvailable: () => boolean;
  /** FEATURES_GET by ifindex over ethtool netlink, every request pipelined: answers in order. */
  readFeatures: (ifindexes: readonly number[]) => FeaturesBatch;
  /** FEATURES_SET by ifindex over ethtool netlink, every request pipelined: answers in order. */
  writeFeatures: (writes: ReadonlyArray<WantedFeatures & { ifindex: number }>) => FeaturesBatch;
  LinkMonitor: new (
    receiveBufferBytes: number,
    onDatagrams: (errno: number, datagrams: Buffer[]) => void,
  ) => NativeLinkMonitor;
  /** RTM_GETLINK dump of every link: the raw reply datagrams. */
  dumpLinks: () => Buffer[];
  /** RTM_GETLINK for one ifindex: the raw reply, or null when no link has it. */
  getLink: (ifindex: number) => Buffer | null;
  sendDatagram: (socketPath: string, data: Buffer, allowMemfd: boolean) => void;
  /**
   * Every datagram in order, many per sendmmsg(2), each as sendDatagram would send it. Returns how
   * many went; throws at the first that could not go, with `sent` = how many went before it.
   */
  sendDatagrams: (socketPath: string, datagrams: readonly Buffer[], allowMemfd: boolean) => number;
  UnixListener: new (
    path: string,
    backlog: number,
    onConnection: (fd: number, errno: number, pid: number, uid: number, gid: number) => void,
  ) => NativeUnixListener;
  /** RTM_GETLINK for one ifindex: IFLA_MTU and IFLA_STATS64. */
  linkStats: (ifindex: number) => LinkStats;
  /** ETH_SS_STATS names + ETHTOOL_GSTATS; EOPNOTSUPP where the driver has none. */
  driverStats: (ifname: string, ifindex: number) => DriverStats;
  /** flock(fd, LOCK_EX | LOCK_NB): false when another open file description holds the lock. */
  tryLockExclusive: (fd: number) => boolean;
  /** V8's Isolate::LowMemoryNotification(): full collections down to what is live. Synchronous. */
  releaseHeap: () => void;
  /** malloc_trim(0): true if any free native memory went back to the kernel. */
  trimNativeHeap: () => boolean;
}

const EXPECTED_FUNCTIONS: ReadonlyArray<keyof NativeAddon> = [
  'featureNames',
  'getFeatures',
  'setFeatures',
  'driverInfo',
  'ethtoolNetlinkAvailable',
  'readFeatures',
  'writeFeatures',
  'LinkMonitor',
  'dumpLinks',
  'getLink',
  'sendDatagram',
  'sendDatagrams',
  'UnixListener',
  'linkStats',
  'driverStats',
  'tryLockExclusive',
  'releaseHeap',
  'trimNativeHeap',
];

/**
 * Where the addon may be, first found wins: next to the bundled application (the packages), the
 * developer's own build (`npm ci` runs node-gyp), then the prebuilt binary for this architecture
 * (`npm run prebuilds`). From dist/src/addon, the checkout is three levels up.
 */
function addonCandidates(dir = __dirname): string[] {
  const checkout = path.resolve(dir, '..', '..', '..');
  return [
    path.join(dir, 'offloadd.node'),
    path.join(checkout, 'build', 'Release', 'offloadd.node'),
    path.join(checkout, 'prebuilds', `${process.platform}-${process.arch}`, 'offloadd.node'),
  ];
}

function loadAddon(): NativeAddon {
  const candidates = addonCandidates();
  const file = candidates.find((candidate) => existsSync(candidate));
  if (!file) {
    throw new OffloaddError('ERR_ADDON', `the native addon is missing; looked for ${candidates.join(', ')}`, {
      hint: 'build it with `npm ci` (or `npx node-gyp rebuild`; it needs python3, make and g++), or reinstall the package',
    });
  }
  let loaded: Record<string, unknown>;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a native addon is loaded with require()
    loaded = require(file) as Record<string, unknown>;
  } catch (error) {
    throw new OffloaddError('ERR_ADDON', `cannot load the native addon ${file}: ${(error as Error).message}`, {
      hint: `it must be built for ${process.platform}-${process.arch}: rebuild it with \`npx node-gyp rebuild\`, or reinstall the package`,
      cause: error,
    });
  }
  const missing = EXPECTED_FUNCTIONS.filter((name) => typeof loaded[name] !== 'function');
  if (missing.length > 0) {
    throw new OffloaddError('ERR_ADDON', `native addon ${file} lacks ${missing.join(', ')}`, {
      hint: 'it is stale: rebuild it with `npx node-gyp rebuild`',
    });
  }
  return loaded as unknown as NativeAddon;
}

let nativeAddon: NativeAddon | undefined;

/** The addon, loaded at the first call that needs it (ERR_ADDON, with a hint, if it cannot be). */
function native(): NativeAddon {
  return (nativeAddon ??= loadAddon());
}

/** Rewraps an addon error as KernelError; anything else (TypeError: our bug) passes through. */
export function kernelError(error: unknown): unknown {
  if (error instanceof Error && typeof (error as { errno?: unknown }).errno === 'number') {
    const { errno, syscall, ifname } = error as Error & { errno: number; syscall?: string; ifname?: string };
    const { name, description } = describeErrno(errno);
    // The addon says an errno no C library names as "errno N" (native/syscall.h): named here.
    const unnamed = `errno ${errno}`;
    const message = error.message.endsWith(unnamed)
      ? error.message.slice(0, -unnamed.length) + description
      : error.message;
    return new KernelError(name, errno, syscall ?? 'unknown', message, ifname);
  }
  return error;
}

/** A call into the addon, loading it first if need be, with its errors rewrapped (see kernelError). */
function wrap<K extends keyof NativeAddon>(name: K): NativeAddon[K] {
  return ((...args: unknown[]): unknown => {
    try {
      return (native()[name] as (...args: unknown[]) => unknown)(...args);
    } catch (error) {
      throw kernelError(error);
    }
  }) as NativeAddon[K];
}

/** As wrap(), for a function that is not one of the addon's own. */
function guarded<A extends unknown[], R>(call: (...args: A) => R): (...args: A) => R {
  return (...args: A): R => {
    try {
      return call(...args);
    } catch (error) {
      throw kernelError(error);
    }
  };
}

export const addon = {
  featureNames: wrap('featureNames'),
  getFeatures: wrap('getFeatures'),
  setFeatures: wrap('setFeatures'),
  driverInfo: wrap('driverInfo'),
  ethtoolNetlinkAvailable: wrap('ethtoolNetlinkAvailable'),
  readFeatures: wrap('readFeatures'),
  writeFeatures: wrap('writeFeatures'),
  dumpLinks: wrap('dumpLinks'),
  getLink: wrap('getLink'),
  sendDatagram: wrap('sendDatagram'),
  /**
   * As the addon's sendDatagrams, with the first failure given back rather than thrown: `sent`
   * datagrams went, and `error` (when set) is why datagrams[sent] did not; the rest were not tried.
   */
  sendDatagrams: (
    socketPath: string,
    datagrams: readonly Buffer[],
    allowMemfd: boolean,
  ): { sent: number; error?: KernelError } => {
    try {
      return { sent: native().sendDatagrams(socketPath, datagrams, allowMemfd) };
    } catch (error) {
      const sent = (error as { sent?: unknown }).sent;
      const wrapped = kernelError(error);
      if (typeof sent !== 'number' || !(wrapped instanceof KernelError)) throw wrapped;
      return { sent, error: wrapped };
    }
  },
  /**
   * Listens on `path` (the caller sets the umask and checks the path) and hands each accepted
   * connection over as a descriptor with its SO_PEERCRED, or the errno that kept them from it.
   */
  listenUnix: guarded(
    (
      path: string,
      backlog: number,
      onConnection: (fd: number, errno: number, credentials: PeerCredentials) => void,
    ): NativeUnixListener =>
      new (native().UnixListener)(path, backlog, (fd, errno, pid, uid, gid) =>
        onConnection(fd, errno, { pid, uid, gid }),
      ),
  ),
  linkStats: wrap('linkStats'),
  driverStats: wrap('driverStats'),
  tryLockExclusive: wrap('tryLockExclusive'),
  releaseHeap: wrap('releaseHeap'),
  trimNativeHeap: wrap('trimNativeHeap'),
  openLinkMonitor: guarded(
    (receiveBufferBytes: number, onDatagrams: (errno: number, datagrams: Buffer[]) => void): NativeLinkMonitor =>
      new (native().LinkMonitor)(receiveBufferBytes, onDatagrams),
  ),
} as const;

/**
 * The KernelError for an errno a batch call delivered as data, worded as the addon words a thrown
 * one (with the kernel's extended ACK text in parentheses when it gave one).
 */
export function kernelErrorOf(errno: number, syscall: string, ifname: string, extack?: string): KernelError {
  const { name, description } = describeErrno(errno);
  const text = `${syscall} on ${ifname} failed: ${description}${extack ? ` (${extack})` : ''}`;
  return new KernelError(name, errno, syscall, text, ifname);
}

// ---- Attribution (issue 19): the kernel side of "who changed it" --------------------------------
// Kept apart from NativeAddon and EXPECTED_FUNCTIONS: an addon without it still runs the daemon,
// attribution then reports itself unavailable.

/** The traced system calls and the daemon's own tgid, which the kernel side never reports. */
export interface NativeAttributionOptions {
  selfTgid: number;
  /** Ring buffer size: a power of two, at least one page. */
  ringBytes?: number;
  /** Of 'ioctl', 'sendto', 'sendmsg', 'write'. */
  syscalls?: string[];
  /**
   * 'tracepoint': a program per syscalls:sys_enter_X through perf_event_open (needs tracefs);
   * 'raw_tracepoint': one program on sys_enter for every system call, dispatching on its number.
   */
  hook?: AttributionHook;
  /**
   * Byte offsets from the kernel's BTF (src/attribution/btf.ts): the records then carry the
   * sender's network namespace, and the daemon is woken only when the ring is half full.
   */
  netns?: { taskNsproxy: number; nsproxyNetNs: number; netInum: number };
  /**
   * stat(/proc/self/ns/pid)'s st_dev and st_ino, given when the daemon's PID namespace is not the
   * initial one: pids are then recorded as the daemon sees them, and a sender outside that
   * namespace with pid 0 and a flag (src/attribution/pid-namespace.ts).
   */
  pidNamespace?: { dev: number; ino: number };
}

export type AttributionHook = 'tracepoint' | 'raw_tracepoint';

export interface NativeAttribution {
  /** Detaches the programs and frees the maps. */
  close(): void;
  /** Records the kernel dropped because the ring buffer was full. */
  dropped(): number;
  /** The system calls whose tracepoints have a program attached. */
  attached(): string[];
  /** The ethtool generic-netlink family id the kernel side filters on (0: none). */
  ethtoolFamily(): number;
  hook(): AttributionHook;
  /** Whether the records carry the sender's network namespace (the `netns` option was taken). */
  kernelNetns(): boolean;
  /** Whether pids are recorded in the daemon's PID namespace (the `pidNamespace` option was taken). */
  pidNamespace(): boolean;
  /** Delivers the records the ring buffer holds now, synchronously (to onRecords). */
  drain(): void;
  ref(): void;
  unref(): void;
}

export interface AttributionAddon {
  /** Throws an addon error with errno, syscall, `stage` and, from the verifier, `verifierLog`. */
  open(options: NativeAttributionOptions, onRecords: (records: Buffer, count: number) => void): NativeAttribution;
  recordBytes: number;
}

/** The addon's attribution part, or null when this build of the addon has none. */
export function attributionAddon(): AttributionAddon | null {
  const loaded = native() as unknown as {
    Attribution?: new (
      options: NativeAttributionOptions,
      onRecords: (records: Buffer, count: number) => void,
    ) => NativeAttribution;
    attributionRecordBytes?: number;
  };
  const { Attribution, attributionRecordBytes } = loaded;
  if (typeof Attribution !== 'function' || typeof attributionRecordBytes !== 'number') return null;
  return { open: (options, onRecords) => new Attribution(options, onRecords), recordBytes: attributionRecordBytes };
}
