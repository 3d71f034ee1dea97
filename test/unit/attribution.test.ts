import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  actorJournalFields,
  describeActor,
  NO_USER_SPACE_REQUEST,
  OUTSIDE_PID_NAMESPACE,
  shortActor,
  type Actor,
} from '../../src/attribution/actor';
import { ActorLog } from '../../src/attribution/actor-log';
import { unavailableReason } from '../../src/attribution/unavailable';
import { attributionText } from '../../src/cli/offloadctl-format';
import { CgroupIndex, classifyCgroup } from '../../src/attribution/cgroup';
import { parseRecords, type KernelRequest } from '../../src/attribution/record';
import { decodeRequest } from '../../src/attribution/request';
import { ActorResolver } from '../../src/attribution/resolve';
import { INITIAL_PID_NAMESPACE_INODE, pidNamespaceToTranslate } from '../../src/attribution/pid-namespace';

const RECORD_BYTES = 200;
/** `ethtool -K v0 gro on` as ethtool 6.1 sent it (captured by the kernel side on this machine). */
const ETHTOOL_GRO_ON = Buffer.from(
  '440000001500050003000000000000000c01000014000180070002007630000008000300010000001c00038018000380140001800b00020072782d67726f000004000300',
  'hex',
);
/** The daemon's own FEATURES_SET by ifindex 3, gro off (compact form has no names). */
const BY_IFINDEX = Buffer.from(
  '4c0000001500010004000000000000000c01000014000180080001000300000008000300010000002400038008000200400000000c00040000000000000000000c0005000048000000000000',
  'hex',
);

function record(
  fields: Partial<{
    syscall: number;
    command: number;
    argument: number;
    comm: string;
    payload: Buffer;
    tgid: number;
    ktime: bigint;
    /** The kernel-recorded network namespace (flag kRecordHasNetns set), or absent. */
    netns: number;
    /** Flag kRecordOutsidePidNamespace, pid and tid 0: the sender had no pid in the daemon's namespace. */
    outsidePidNamespace: boolean;
    cgroupId: bigint;
  }>,
): Buffer {
  const buffer = Buffer.alloc(RECORD_BYTES);
  buffer.writeBigUInt64LE(fields.ktime ?? 1_000_000_000n, 0);
  buffer.writeBigUInt64LE(fields.cgroupId ?? 42n, 8);
  const tgid = fields.outsidePidNamespace ? 0 : (fields.tgid ?? 4242);
  buffer.writeUInt32LE(tgid, 16);
  buffer.writeUInt32LE(tgid, 20);
  buffer.writeUInt32LE(0, 24);
  buffer.writeUInt32LE(fields.syscall ?? 2, 32);
  buffer.writeUInt32LE(fields.command ?? 12, 36);
  buffer.writeUInt32LE(fields.argument ?? 21, 40);
  const payload = fields.payload ?? ETHTOOL_GRO_ON;
  buffer.writeUInt32LE(Math.min(payload.length, 128), 44);
  buffer.write(fields.comm ?? 'ethtool', 48, 'latin1');
  if (fields.netns !== undefined) {
    buffer.writeUInt32LE(fields.netns, 64);
    buffer.writeUInt32LE(1, 68);
  }
  if (fields.outsidePidNamespace) buffer.writeUInt32LE(buffer.readUInt32LE(68) | 2, 68);
  payload.copy(buffer, 72, 0, 128);
  return buffer;
}

function request(fields: Parameters<typeof record>[0] = {}): KernelRequest {
  const [parsed] = parseRecords(record(fields), 1, RECORD_BYTES);
  assert.ok(parsed);
  return parsed;
}

const links = new Map([['v0', 3]]);
const ifindexOf = (name: string): number | undefined => links.get(name);

function actor(overrides: Partial<Actor> = {}): Actor {
  return {
    pid: 4242,
    tid: 4242,
    comm: 'ethtool',
    exe: '/usr/sbin/ethtool',
    cmdline: ['ethtool', '-K', 'v0', 'gro', 'on'],
    uid: 0,
    user: 'root',
    unit: 'session-3.scope',
    userUnit: null,
    container: null,
    pod: null,
    cgroup: { id: '42', path: '/user.slice/user-0.slice/session-3.scope' },
    netns: 4026531840,
    syscall: 'sendto',
    request: 'ethtool-netlink FEATURES_SET',
    ifindex: 3,
    ifname: 'v0',
    features: { 'rx-gro': true },
    time: '1000000000',
    process: 'running',
    parent: null,
    partial: null,
    ...overrides,
  };
}

describe('attribution: kernel records and requests', () => {
  it('reads a batch of records and skips an unknown kind', () => {
    const batch = Buffer.concat([
      record({ tgid: 1 }),
      record({ syscall: 99 }),
      record({ tgid: 3, comm: 'NetworkManager' }),
    ]);
    const requests = parseRecords(batch, 3, RECORD_BYTES);
    assert.deepEqual(
      requests.map((r) => [r.pid, r.comm, r.syscall]),
      [
        [1, 'ethtool', 'sendto'],
        [3, 'NetworkManager', 'sendto'],
      ],
    );
    assert.equal(
      parseRecords(batch.subarray(0, 100), 3, RECORD_BYTES).length,
      0,
      'a short batch is not read past its end',
    );
  });

  it('decodes ethtool netlink by name (resolved through the link table) with the wanted features', () => {
    const decoded = decodeRequest(request(), ifindexOf);
    assert.deepEqual(decoded, {
      request: 'ethtool-netlink FEATURES_SET',
      ifindex: 3,
      ifname: 'v0',
      features: { 'rx-gro': true },
      partial: null,
    });
  });

  it('decodes ethtool netlink by ifindex', () => {
    const decoded = decodeRequest(request({ payload: BY_IFINDEX }), () => undefined);
    assert.equal(decoded.ifindex, 3);
    assert.equal(decoded.partial, null);
  });

  it('gives a partial answer for every truncation of a request, never an exception', () => {
    for (let length = 0; length < ETHTOOL_GRO_ON.length; length++) {
      const decoded = decodeRequest(request({ payload: ETHTOOL_GRO_ON.subarray(0, length) }), ifindexOf);
      assert.ok(decoded.ifindex === 3 || decoded.partial !== null, `truncated at ${length}`);
    }
    const garbage = Buffer.from(ETHTOOL_GRO_ON);
    garbage.writeUInt16LE(2, 20); // an attribute shorter than its own header
    assert.match(decodeRequest(request({ payload: garbage }), ifindexOf).partial ?? '', /before the request header/);
  });

  it('decodes a legacy ioctl set and says when its interface does not exist', () => {
    const ifname = Buffer.alloc(16);
    ifname.write('nosuch0');
    const decoded = decodeRequest(request({ syscall: 1, command: 0x2c, argument: 0, payload: ifname }), ifindexOf);
    assert.equal(decoded.request, 'ioctl ETHTOOL_SGRO');
    assert.deepEqual(decoded.features, { gro: false });
    assert.equal(decoded.ifindex, null);
    assert.match(decoded.partial ?? '', /no interface named nosuch0/);
  });
});

describe('attribution: cgroups', () => {
  const cases: Array<[string, Partial<ReturnType<typeof classifyCgroup>>]> = [
    ['/system.slice/NetworkManager.service', { unit: 'NetworkManager.service' }],
    ['/user.slice/user-1000.slice/session-3.scope', { unit: 'session-3.scope', sliceUid: 1000 }],
    [
      '/user.slice/user-1000.slice/user@1000.service/app.slice/tool.service',
      { unit: 'user@1000.service', userUnit: 'tool.service', sliceUid: 1000 },
    ],
    [
      '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f1e2d3c_4b5a_6978_8695_a4b3c2d1e0f9.slice/cri-containerd-' +
        'a'.repeat(64) +
        '.scope',
      {
        unit: `cri-containerd-${'a'.repeat(64)}.scope`,
        pod: { uid: '0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9' },
        container: { runtime: 'containerd', id: 'a'.repeat(64) },
      },
    ],
    [
      `/kubepods/besteffort/pod0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9/${'b'.repeat(64)}`,
      { pod: { uid: '0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9' }, container: { runtime: 'unknown', id: 'b'.repeat(64) } },
    ],
    [`/system.slice/docker-${'c'.repeat(64)}.scope`, { container: { runtime: 'docker', id: 'c'.repeat(64) } }],
    [`/docker/${'d'.repeat(64)}`, { container: { runtime: 'docker', id: 'd'.repeat(64) } }],
    [`/machine.slice/libpod-${'e'.repeat(64)}.scope`, { container: { runtime: 'podman', id: 'e'.repeat(64) } }],
    ['/', {}],
  ];
  for (const [cgroupPath, expected] of cases) {
    it(`classifies ${cgroupPath.slice(0, 70)}`, () => {
      const owner = classifyCgroup(cgroupPath);
      const want = { unit: null, userUnit: null, sliceUid: null, container: null, pod: null, ...expected };
      if (cgroupPath.includes('docker-') || cgroupPath.includes('libpod-'))
        want.unit = cgroupPath.split('/').pop() as string;
      assert.deepEqual(owner, want);
    });
  }

  it('finds a cgroup directory by its id (inode), and says null for one that is gone', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-cgroup-'));
    try {
      fs.mkdirSync(path.join(root, 'a.slice', 'b.service'), { recursive: true });
      const id = fs.statSync(path.join(root, 'a.slice', 'b.service'), { bigint: true }).ino;
      const index = new CgroupIndex(root);
      assert.equal(index.pathOf(id), '/a.slice/b.service');
      assert.equal(index.pathOf(id), '/a.slice/b.service', 'again, from the cache');
      fs.rmdirSync(path.join(root, 'a.slice', 'b.service'));
      assert.equal(index.pathOf(id), null);
      assert.equal(new CgroupIndex(null).pathOf(id), null);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('attribution: the actor resolver', () => {
  let procRoot: string;
  beforeEach(() => {
    procRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-proc-'));
  });
  afterEach(() => fs.rmSync(procRoot, { recursive: true, force: true }));

  /** A /proc/PID directory with a stat line whose start time is `startTicks` (USER_HZ ticks). */
  function fakeProcess(pid: number, startTicks: number, state = 'S', ppid = 0): void {
    const dir = path.join(procRoot, String(pid));
    fs.mkdirSync(path.join(dir, 'ns'), { recursive: true });
    const after = [state, String(ppid), ...Array.from({ length: 17 }, () => '0'), String(startTicks), '0'];
    fs.writeFileSync(path.join(dir, 'stat'), `${pid} (eth tool) ${after.join(' ')}\n`);
    fs.writeFileSync(path.join(dir, 'comm'), 'ethtool\n');
    fs.writeFileSync(path.join(dir, 'cgroup'), '12:cpu:/\n0::/system.slice/tuned.service\n');
    fs.writeFileSync(path.join(dir, 'cmdline'), 'ethtool\0-K\0v0\0gro\0on\0');
    fs.symlinkSync('/usr/sbin/ethtool', path.join(dir, 'exe'));
    fs.symlinkSync('net:[4026531840]', path.join(dir, 'ns', 'net'));
  }

  const resolver = (): ActorResolver =>
    new ActorResolver({ procRoot, passwdFile: '/nonexistent', cgroups: new CgroupIndex(null) });

  it('names a running process from /proc', () => {
    fakeProcess(4242, 50); // started 0.5 s after boot, the request came at 1 s
    const got = resolver().resolve(request(), decodeRequest(request(), ifindexOf));
    assert.equal(got.process, 'running');
    assert.equal(got.exe, '/usr/sbin/ethtool');
    assert.equal(got.unit, 'tuned.service');
    assert.equal(got.netns, 4026531840);
    assert.deepEqual(got.cmdline, ['ethtool', '-K', 'v0', 'gro', 'on']);
    assert.equal(describeActor(got), 'tuned.service (pid 4242, /usr/sbin/ethtool)');
  });

  it('names a process that keeps asking from what was read of it first, and a reused pid afresh', () => {
    fakeProcess(4242, 50);
    const names = resolver();
    const first = names.resolve(request(), decodeRequest(request(), ifindexOf));
    // Its executable and command line are not read again: only its stat, which proves it is the same process.
    fs.rmSync(path.join(procRoot, '4242', 'exe'));
    fs.writeFileSync(path.join(procRoot, '4242', 'cmdline'), 'changed\0');
    const again = names.resolve(request(), decodeRequest(request(), ifindexOf));
    assert.equal(again.process, 'running');
    assert.equal(again.exe, first.exe);
    assert.deepEqual(again.cmdline, first.cmdline);
    // The same pid, started again (another process): read afresh.
    fs.rmSync(path.join(procRoot, '4242'), { recursive: true });
    fakeProcess(4242, 60);
    fs.writeFileSync(path.join(procRoot, '4242', 'cmdline'), 'other\0');
    assert.deepEqual(names.resolve(request(), decodeRequest(request(), ifindexOf)).cmdline, ['other']);
  });

  it('calls a reused pid "exited" rather than naming the newer process', () => {
    fakeProcess(4242, 500); // started 5 s after boot: after the request
    const got = resolver().resolve(request(), decodeRequest(request(), ifindexOf));
    assert.equal(got.process, 'exited');
    assert.equal(got.exe, null);
    assert.equal(got.unit, null);
    assert.match(got.partial ?? '', /exited before it was resolved/);
  });

  it('names the parent that ran an exited tool', () => {
    fakeProcess(77, 10);
    fakeProcess(4242, 50, 'Z', 77);
    const got = resolver().resolve(request(), decodeRequest(request(), ifindexOf));
    assert.equal(got.process, 'exited');
    assert.deepEqual(got.parent, { pid: 77, comm: 'ethtool', exe: '/usr/sbin/ethtool' });
    assert.match(describeActor(got), /exited, run by ethtool \(pid 77\)/);
  });

  it('keeps the network namespace the kernel recorded for a process that exited', () => {
    const got = resolver().resolve(request({ netns: 4026532999 }), decodeRequest(request(), ifindexOf));
    assert.equal(got.process, 'exited');
    assert.equal(got.netns, 4026532999);
    assert.equal(got.partial, 'the process exited before it was resolved (executable unknown)');
    assert.equal(request().netns, null, 'no namespace without the flag');
    assert.equal(request({ netns: 0 }).netns, null, 'and none when the kernel found none');
  });

  it("names a sender outside the daemon's PID namespace by what the kernel recorded, never by a pid in /proc", () => {
    fakeProcess(4242, 50); // a process of the daemon's namespace with some pid: must not be named
    fakeProcess(1, 1);
    const cgroupRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-cgroup-'));
    try {
      const unitDir = path.join(cgroupRoot, 'system.slice', 'NetworkManager.service');
      fs.mkdirSync(unitDir, { recursive: true });
      const cgroupId = fs.statSync(unitDir, { bigint: true }).ino;
      const outside = request({ outsidePidNamespace: true, netns: 4026531840, comm: 'NetworkManager', cgroupId });
      assert.equal(outside.outsidePidNamespace, true);
      assert.equal(outside.pid, 0);
      assert.equal(request().outsidePidNamespace, false, 'no flag: a pid of the daemon’s namespace');
      const got = new ActorResolver({
        procRoot,
        passwdFile: '/nonexistent',
        cgroups: new CgroupIndex(cgroupRoot),
      }).resolve(outside, decodeRequest(outside, ifindexOf));
      assert.equal(got.process, OUTSIDE_PID_NAMESPACE);
      assert.equal(got.pid, 0);
      assert.equal(got.comm, 'NetworkManager');
      assert.equal(got.exe, null, 'nothing read from /proc');
      assert.equal(got.cmdline, null);
      assert.equal(got.parent, null);
      assert.equal(got.netns, 4026531840);
      assert.deepEqual(got.cgroup, { id: cgroupId.toString(), path: '/system.slice/NetworkManager.service' });
      assert.equal(got.unit, 'NetworkManager.service');
      assert.equal(got.ifindex, 3);
      assert.match(
        got.partial ?? '',
        /^the sender is outside offloadd's PID namespace .*no pid, executable or command line$/,
      );
      assert.equal(describeActor(got), "NetworkManager.service (outside offloadd's PID namespace, NetworkManager)");
      assert.equal(shortActor(got), "NetworkManager.service (outside offloadd's PID namespace)");
      assert.equal('OFFLOADD_ACTOR_PID' in actorJournalFields(got), false, 'no pid rather than pid 0');
      const unknownNetns = request({ outsidePidNamespace: true });
      assert.match(
        resolver().resolve(unknownNetns, decodeRequest(unknownNetns, ifindexOf)).partial ?? '',
        /network namespace unknown$/,
      );
    } finally {
      fs.rmSync(cgroupRoot, { recursive: true, force: true });
    }
  });

  it('calls a zombie and a missing process "exited"', () => {
    fakeProcess(4242, 50, 'Z');
    assert.equal(resolver().resolve(request(), decodeRequest(request(), ifindexOf)).process, 'exited');
    const gone = resolver().resolve(request({ tgid: 999 }), decodeRequest(request({ tgid: 999 }), ifindexOf));
    assert.equal(gone.process, 'exited');
    assert.equal(gone.comm, 'ethtool', 'the kernel-recorded comm stays');
  });
});

describe('attribution: ActorLog', () => {
  it('answers every actor in the window before the event, latest first', () => {
    const log = new ActorLog();
    log.add(actor({ pid: 1, time: '1000000000' }));
    log.add(actor({ pid: 3, time: '3000000000' }));
    log.add(actor({ pid: 2, time: '2000000000' })); // out of order across CPUs
    log.add(actor({ pid: 9, time: '2500000000', ifindex: 4 }));
    const answer = log.actorsFor(3, 3_000_000_000n, 1500);
    assert.deepEqual(
      answer.actors.map((a) => a.pid),
      [3, 2],
    );
    assert.equal(answer.none, null);
    assert.deepEqual(
      log.actorsFor(3, 2_500_000_000n, 10_000).actors.map((a) => a.pid),
      [2, 1],
      'nothing after the event',
    );
  });

  it('says precisely when no user-space request came before the event', () => {
    const log = new ActorLog();
    log.add(actor({ time: '1000000000' }));
    assert.deepEqual(log.actorsFor(3, 9_000_000_000n, 1000), { actors: [], none: NO_USER_SPACE_REQUEST });
    assert.equal(log.actorsFor(7, 9_000_000_000n, 1000).none, NO_USER_SPACE_REQUEST);
  });

  it('stays bounded per interface and in interfaces, and forgets a removed interface', () => {
    const log = new ActorLog(4, 2);
    for (let i = 0; i < 100; i++) log.add(actor({ pid: i, time: String(i), ifindex: 3 }));
    assert.equal(log.size, 4);
    log.add(actor({ ifindex: 4 }));
    log.add(actor({ ifindex: 5 }));
    assert.equal(log.actorsFor(3, 1000n, 1).actors.length, 0, 'the least recently written interface went first');
    log.forget(5);
    assert.equal(log.size, 1);
    log.add(actor({ ifindex: null }));
    assert.equal(log.size, 1, 'a request without an interface is not kept');
  });
});

describe('attribution: the PID namespace the kernel gives pids in', () => {
  it('translates nothing in the initial PID namespace, and the daemon’s own namespace elsewhere', () => {
    const initial = fs.readlinkSync('/proc/self/ns/pid') === `pid:[${INITIAL_PID_NAMESPACE_INODE}]`;
    const own = pidNamespaceToTranslate();
    if (initial) assert.equal(own, null);
    else assert.equal(own?.ino, fs.statSync('/proc/self/ns/pid').ino);
  });

  it('takes any other namespace file’s device and inode, and null for one that cannot be read', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-pidns-'));
    try {
      const file = path.join(dir, 'pid');
      fs.writeFileSync(file, '');
      const stat = fs.statSync(file);
      assert.deepEqual(pidNamespaceToTranslate(file), { dev: stat.dev, ino: stat.ino });
      assert.equal(pidNamespaceToTranslate(path.join(dir, 'missing')), null);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('attribution: descriptions', () => {
  it('status: on the slower way (no BTF) says why after the counts', () => {
    const status = { enabled: true, dropped: 0, attributed: 3, otherNamespace: 0, traced: ['ioctl'] };
    assert.equal(
      attributionText({ ...status, hook: 'raw_tracepoint', reason: 'the kernel has no BTF (…)' }),
      'on (raw_tracepoint), 3 attributed, 0 dropped; the kernel has no BTF (…)',
    );
  });

  it('describes services, sessions, containers and exited processes', () => {
    assert.equal(
      describeActor(
        actor({ comm: 'NetworkManager', exe: '/usr/sbin/NetworkManager', unit: 'NetworkManager.service', pid: 812 }),
      ),
      'NetworkManager.service (pid 812, /usr/sbin/NetworkManager)',
    );
    assert.equal(describeActor(actor()), 'ethtool (pid 4242, uid root, session-3.scope)');
    assert.equal(
      describeActor(
        actor({ pod: { uid: 'p-1' }, container: { runtime: 'containerd', id: 'a'.repeat(64) }, user: null }),
      ),
      'ethtool (pid 4242, uid 0, pod p-1, containerd container aaaaaaaaaaaa)',
    );
    assert.equal(describeActor(actor({ unit: null, process: 'exited' })), 'ethtool (pid 4242, uid root, exited)');
  });

  it('gives the OFFLOADD_ACTOR_* journal fields without empty ones', () => {
    const fields = actorJournalFields(actor());
    assert.equal(fields.OFFLOADD_ACTOR_PID, '4242');
    assert.equal(fields.OFFLOADD_ACTOR_UNIT, 'session-3.scope');
    assert.equal(fields.OFFLOADD_ACTOR_REQUEST, 'ethtool-netlink FEATURES_SET');
    assert.equal('OFFLOADD_ACTOR_CONTAINER' in fields, false);
  });

  it('says why attribution is off, per cause', () => {
    assert.match(
      unavailableReason({ message: '', errno: 1, stage: 'load', syscall: 'bpf(BPF_PROG_LOAD)' }),
      /CAP_BPF and CAP_PERFMON/,
    );
    assert.match(
      unavailableReason({
        message: '',
        errno: 13,
        stage: 'tracefs',
        syscall: 'open(/sys/kernel/tracing/events/syscalls)',
      }),
      /CAP_DAC_READ_SEARCH/,
    );
    assert.match(
      unavailableReason({ message: '', errno: 1, stage: 'tracefs', syscall: 'mount(tracefs, /sys/kernel/tracing)' }),
      /mounting it needs CAP_SYS_ADMIN/,
    );
    assert.match(unavailableReason({ message: '', errno: 38 }), /no bpf\(\) system call/);
    assert.match(
      unavailableReason({
        message: '',
        errno: 22,
        stage: 'load',
        syscall: 'bpf(BPF_PROG_LOAD)',
        verifierLog: 'a\nR1 invalid mem access\n',
      }),
      /refused the tracepoint program .*R1 invalid mem access/,
    );
    assert.match(unavailableReason({ message: '', errno: 22, stage: 'map' }), /ring buffer/);
  });
});
