/**
 * Attribution on the real kernel: tracepoint programs see the requests that change features and
 * name their senders. Tracepoints are global (other processes on the host run ethtool too), so
 * every assertion picks the actors of this test's own processes, by pid and by the namespace.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Actor } from '../../src/attribution/actor';
import { startAttribution, type Attribution } from '../../src/attribution/attribution';
import { cgroupHierarchies, removeCgroupTree, runInCgroup } from '../helpers/cgroup';
import { IOCTL_CALLER, renamedEthtool as renamedEthtoolIn, SENDMSG_CALLER } from '../helpers/feature-callers';
import { eachTestInItsOwnNetns, Netns, REPO_ROOT, waitFor } from '../helpers/netns';

interface Harness {
  attribution: Attribution;
  actors: Actor[];
}

/** Both hooks: the raw tracepoint sys_enter (the default) and the per-syscall tracepoints (its fallback). */
for (const hook of ['raw_tracepoint', 'tracepoint'] as const) {
  describe(`attribution (kernel, ${hook})`, function () {
    let ns: Netns;
    let harness: Harness | null = null;
    eachTestInItsOwnNetns((created) => {
      ns = created;
    });
    afterEach(() => {
      harness?.attribution.stop();
      harness = null;
    });

    function ifindexOf(ifname: string): number | undefined {
      try {
        const [link] = JSON.parse(ns.ip('-j', 'link', 'show', 'dev', ifname)) as Array<{ ifindex: number }>;
        return link?.ifindex;
      } catch {
        return undefined;
      }
    }

    function netnsInode(): number {
      return Number(fs.statSync(`/run/netns/${ns.name}`).ino);
    }

    function start(
      options: { selfPid?: number; ringBytes?: number; traceWrite?: boolean; btfFile?: string } = {},
    ): Harness {
      const actors: Actor[] = [];
      const attribution = startAttribution({
        hook,
        ifindexOf,
        netns: netnsInode(),
        onActor: (actor) => actors.push(actor),
        // Requests are named when read; older than the window they are dropped unread.
        windowMs: 60_000,
        ...options,
      });
      const status = attribution.status();
      assert.ok(status.enabled, `attribution did not start: ${status.reason}`);
      assert.equal(status.hook, hook);
      if (options.btfFile === undefined) assert.equal(status.reason, null, 'the namespace is read in the kernel');
      harness = { attribution, actors };
      return harness;
    }

    /** A copy of ethtool whose file name (its comm) is unique to the test. */
    const renamedEthtool = (): string => renamedEthtoolIn(ns.tmp, 'ethtool-t');

    function compileIoctlCaller(): string {
      const source = ns.file('ioctl-caller.c', IOCTL_CALLER);
      const binary = path.join(ns.tmp, 'sgro-caller');
      execFileSync('cc', ['-O2', '-o', binary, source]);
      return binary;
    }

    /**
     * The records wait in the ring buffer until someone asks (the daemon: a drift): ask, as a drift
     * would (ifindex 0 is no interface's), until the actor is there.
     */
    function drained<T>(h: Harness, found: () => T | undefined | false, what: string): Promise<T> {
      return waitFor(() => {
        h.attribution.actorsFor(0, process.hrtime.bigint());
        return found();
      }, what);
    }

    function actorOf(h: Harness, pid: number): Promise<Actor> {
      return drained(h, () => h.actors.find((actor) => actor.pid === pid), `an actor with pid ${pid}`);
    }

    it('names a renamed ethtool that turns gro on over ethtool netlink, with its pid, comm and ifindex', async () => {
      ns.addVeth('v0');
      ns.setFeatures('v0', 'gro', 'off');
      const ethtool = renamedEthtool();
      const h = start();
      const receivedBefore = process.hrtime.bigint();
      const pid = await ns.execAsync(ethtool, '-K', 'v0', 'gro', 'on');
      const actor = await actorOf(h, pid);
      assert.equal(actor.comm, path.basename(ethtool));
      assert.equal(actor.ifname, 'v0');
      assert.equal(actor.ifindex, ifindexOf('v0'));
      assert.equal(actor.request, 'ethtool-netlink FEATURES_SET');
      assert.match(actor.syscall, /^(sendto|sendmsg)$/);
      assert.equal(actor.uid, 0);
      assert.deepEqual(actor.features, { 'rx-gro': true });
      assert.ok(BigInt(actor.time) >= receivedBefore, 'the kernel time is on the clock of process.hrtime');
      const answer = h.attribution.actorsFor(actor.ifindex, process.hrtime.bigint(), 60_000);
      assert.ok(answer.actors.some((listed) => listed.pid === pid));
      process.stdout.write(`      actor: ${JSON.stringify(actor)}\n`);
    });

    it('answers actorsFor at once, before the loop has polled the ring buffer', () => {
      ns.addVeth('v0');
      const ethtool = renamedEthtool();
      const h = start();
      // Synchronous all the way: the loop never runs between the request and the question.
      const child = spawnSync('ip', ['netns', 'exec', ns.name, ethtool, '-K', 'v0', 'gro', 'off']);
      assert.equal(child.status, 0);
      const answer = h.attribution.actorsFor(ifindexOf('v0') as number, process.hrtime.bigint(), 60_000);
      assert.ok(
        answer.actors.some((actor) => actor.pid === child.pid),
        JSON.stringify(answer),
      );
    });

    it('tells apart a request from another network namespace whose sender exited before the ring was read', () => {
      ns.addVeth('v0');
      const other = new Netns();
      try {
        other.addVeth('v0'); // the same name, and the same ifindex: only the namespace tells them apart
        const ethtool = renamedEthtool();
        const h = start();
        // Synchronous: both senders are gone before anything reads the ring buffer.
        const foreign = spawnSync('ip', ['netns', 'exec', other.name, ethtool, '-K', 'v0', 'gro', 'off']);
        assert.equal(foreign.status, 0, foreign.stderr.toString());
        const own = spawnSync('ip', ['netns', 'exec', ns.name, ethtool, '-K', 'v0', 'gro', 'off']);
        assert.equal(own.status, 0, own.stderr.toString());
        const answer = h.attribution.actorsFor(ifindexOf('v0') as number, process.hrtime.bigint(), 60_000);
        const ours = answer.actors.filter((actor) => actor.pid === own.pid || actor.pid === foreign.pid);
        assert.deepEqual(
          ours.map((actor) => actor.pid),
          [own.pid],
          `only the request from the watched namespace: ${JSON.stringify(answer)}`,
        );
        assert.equal(ours[0]?.process, 'exited');
        assert.equal(ours[0]?.netns, netnsInode(), 'the namespace the kernel recorded');
        assert.equal(ours[0]?.partial, 'the process exited before it was resolved (executable unknown)');
        assert.equal(
          h.actors.find((actor) => actor.pid === foreign.pid),
          undefined,
        );
        assert.ok(h.attribution.status().otherNamespace >= 1);
      } finally {
        other.destroySync();
      }
    });

    it("without the kernel's BTF: a wakeup per request, the namespace from /proc, and status says why", async () => {
      ns.addVeth('v0');
      const ethtool = renamedEthtool();
      const h = start({ btfFile: path.join(ns.tmp, 'no-vmlinux') });
      assert.match(h.attribution.status().reason ?? '', /no BTF .*each request wakes offloadd/);
      const pid = await ns.execAsync(ethtool, '-K', 'v0', 'gro', 'on');
      // Nobody asks: the kernel's wakeup alone brings the record in.
      const actor = await waitFor(
        () => h.actors.find((candidate) => candidate.pid === pid),
        `an actor with pid ${pid}`,
      );
      assert.equal(actor.ifindex, ifindexOf('v0'));
    });

    it('names a SIOCETHTOOL ETHTOOL_SGRO caller (the ioctl path)', async () => {
      ns.addVeth('v0');
      const caller = compileIoctlCaller();
      const h = start();
      const pid = await ns.execAsync(caller, 'v0', 'on');
      const actor = await actorOf(h, pid);
      assert.equal(actor.syscall, 'ioctl');
      assert.equal(actor.request, 'ioctl ETHTOOL_SGRO');
      assert.equal(actor.comm, 'sgro-caller');
      assert.equal(actor.ifindex, ifindexOf('v0'));
      assert.deepEqual(actor.features, { gro: true });
    });

    it('names a raw generic-netlink sender that uses sendmsg', async () => {
      ns.addVeth('v0');
      ns.setFeatures('v0', 'gro', 'off');
      const script = ns.file('features-set.py', SENDMSG_CALLER);
      const h = start();
      const ifindex = ifindexOf('v0') as number;
      const pid = await ns.execAsync('python3', script, String(ifindex), 'on');
      const actor = await actorOf(h, pid);
      assert.equal(actor.syscall, 'sendmsg');
      assert.equal(actor.ifindex, ifindex);
      assert.equal(ns.features('v0')['generic-receive-offload'], true);
    });

    it('names a send() of FEATURES_SET: sendto() with no address', async () => {
      ns.addVeth('v0');
      ns.setFeatures('v0', 'gro', 'off');
      const script = ns.file('features-set.py', SENDMSG_CALLER);
      const h = start();
      const ifindex = ifindexOf('v0') as number;
      const pid = await ns.execAsync('python3', script, String(ifindex), 'on', 'send');
      const actor = await actorOf(h, pid);
      assert.equal(actor.syscall, 'sendto');
      assert.equal(actor.ifindex, ifindex);
      assert.equal(ns.features('v0')['generic-receive-offload'], true);
    });

    it('names a write() of FEATURES_SET on a netlink socket when asked to trace write', async () => {
      ns.addVeth('v0');
      ns.setFeatures('v0', 'gro', 'off');
      const script = ns.file('features-set.py', SENDMSG_CALLER);
      const h = start({ traceWrite: true });
      assert.deepEqual(h.attribution.status().traced, ['ioctl', 'sendto', 'sendmsg', 'write']);
      const ifindex = ifindexOf('v0') as number;
      const pid = await ns.execAsync('python3', script, String(ifindex), 'on', 'write');
      const actor = await actorOf(h, pid);
      assert.equal(actor.syscall, 'write');
      assert.equal(actor.ifindex, ifindex);
    });

    it('names the unit of a process in a cgroup the test creates, even after the process exited', async function () {
      const unified = cgroupHierarchies().unified;
      if (!unified) this.skip();
      ns.addVeth('v0');
      const ethtool = renamedEthtool();
      const unit = `attrib-${randomBytes(3).toString('hex')}.service`;
      const slice = path.join(unified, `${ns.name}.slice`);
      try {
        const h = start();
        // runInCgroup keeps the loop busy until the process is gone: the cgroup id is all that is left.
        const child = runInCgroup(path.join(slice, unit), ns.commandLine(ethtool, '-K', 'v0', 'gro', 'off'));
        assert.equal(child.status, 0, child.stderr.toString());
        const actor = await actorOf(h, child.pid);
        assert.equal(actor.unit, unit);
        assert.equal(actor.cgroup.path, `/${ns.name}.slice/${unit}`);
        assert.equal(actor.process, 'exited');
        assert.match(actor.partial ?? '', /exited before it was resolved/);
      } finally {
        removeCgroupTree(slice);
      }
    });

    it("never reports the daemon's own requests", async () => {
      ns.addVeth('v0');
      const ethtool = renamedEthtool();
      // ip netns exec and sh exec in place: the pid is known before the request is sent.
      const own = spawn('ip', ['netns', 'exec', ns.name, 'sh', '-c', `read line; exec ${ethtool} -K v0 gro off`], {
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      const ownExit = new Promise((resolve) => own.once('exit', resolve));
      const h = start({ selfPid: own.pid as number });
      own.stdin?.end('go\n');
      await ownExit;
      const other = await ns.execAsync(ethtool, '-K', 'v0', 'gro', 'on');
      await actorOf(h, other);
      assert.equal(
        h.actors.find((actor) => actor.pid === own.pid),
        undefined,
      );
    });

    it('counts the drops of a storm of requests without blocking the sender', async () => {
      const caller = compileIoctlCaller();
      const h = start({ ringBytes: 16 * 1024 });
      const storm = 20_000;
      // Synchronous: nothing drains the ring buffer while the storm runs, so it must overflow.
      const child = spawnSync('ip', ['netns', 'exec', ns.name, caller, 'nosuch0', 'on', String(storm)]);
      assert.equal(child.status, 0);
      const received = await drained(
        h,
        () => {
          const seen = h.actors.filter((actor) => actor.pid === child.pid).length;
          return seen > 0 && seen;
        },
        'the records queued before the ring buffer filled',
      );
      const dropped = h.attribution.status().dropped;
      assert.ok(dropped > 0, 'a 16 KiB ring buffer cannot hold 20,000 records');
      assert.ok(received + dropped >= storm, `${received} received + ${dropped} dropped < ${storm}`);
    });

    it('gives a partial answer for a request naming an interface that does not exist', async () => {
      const caller = compileIoctlCaller();
      const h = start();
      const pid = await ns.execAsync(caller, 'nosuch0', 'on').catch(() => null);
      assert.equal(pid, null, 'the kernel refuses SGRO on a missing interface');
      const actor = await drained(
        h,
        () => h.actors.find((candidate) => candidate.ifname === 'nosuch0'),
        'the nosuch0 request',
      );
      assert.equal(actor.ifindex, null);
      assert.match(actor.partial ?? '', /no interface named nosuch0/);
    });

    it('says why it is off without CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN', function () {
      const probe = ns.file(
        'probe.js',
        `const { startAttribution } = require(${JSON.stringify(path.join(REPO_ROOT, 'dist', 'src', 'attribution', 'attribution.js'))});
const attribution = startAttribution({ ifindexOf: () => undefined });
process.stdout.write(JSON.stringify({ status: attribution.status(), code: attribution.unavailable && attribution.unavailable.code }));
attribution.stop();`,
      );
      const dropped = '-bpf,-perfmon,-sys_admin';
      const output = execFileSync(
        'setpriv',
        [`--bounding-set=${dropped}`, `--inh-caps=${dropped}`, '--', process.execPath, probe],
        { encoding: 'utf8' },
      );
      const { status, code } = JSON.parse(output) as { status: { enabled: boolean; reason: string }; code: string };
      assert.equal(status.enabled, false);
      assert.equal(code, 'ERR_ATTRIBUTION_UNAVAILABLE');
      assert.match(status.reason, /CAP_BPF and CAP_PERFMON/);
    });
  });
}
