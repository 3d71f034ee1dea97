/**
 * Attribution run by a daemon in a PID namespace of its own (a container without the host's PIDs,
 * like the DaemonSet without hostPID): a small script started under `unshare --pid --fork
 * --mount-proc`, in the test's network namespace, starts the attribution, writes features itself
 * (as the daemon does), runs a renamed ethtool inside its PID namespace, and prints what it named.
 * A second renamed ethtool runs outside that PID namespace (from this test). The one inside is
 * named with the pid the script sees, the one outside as outside the PID namespace with its comm,
 * and the script's own write is never reported.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { Actor } from '../../src/attribution/actor';
import { renamedEthtool } from '../helpers/feature-callers';
import { eachTestInItsOwnNetns, REPO_ROOT, type Netns } from '../helpers/netns';

/** How long the script waits for the kernel's records of both senders before it reports anyway. */
const SCRIPT_DEADLINE_MS = 20_000;

const DAEMON_IN_PID_NAMESPACE = `'use strict';
const fs = require('node:fs');
const { spawnSync } = require('node:child_process');
const readline = require('node:readline');
const dist = ${JSON.stringify(path.join(REPO_ROOT, 'dist', 'src'))};
const { startAttribution } = require(dist + '/attribution/attribution.js');
const { addon } = require(dist + '/addon/binding.js');
const [hook, ifname, insideEthtool, insideComm, outsideComm] = process.argv.slice(2);
const say = (message) => process.stdout.write(JSON.stringify(message) + '\\n');
const ifindexOf = (name) => {
  try {
    return Number(fs.readFileSync('/sys/class/net/' + name + '/ifindex', 'utf8'));
  } catch {
    return undefined;
  }
};
const ifindex = ifindexOf(ifname);
const actors = [];
const attribution = startAttribution({ hook, ifindexOf, windowMs: 60000, onActor: (actor) => actors.push(actor) });
say({ ready: true, pid: process.pid, pidNamespace: fs.readlinkSync('/proc/self/ns/pid'), status: attribution.status() });
readline.createInterface({ input: process.stdin }).once('line', () => {
  // The daemon's own write (ETHTOOL_SFEATURES from this process): never to be reported.
  const gro = addon.featureNames(ifname).indexOf('rx-gro');
  addon.setFeatures(ifname, ifindex, { enable: [], disable: [gro] });
  const inside = spawnSync(insideEthtool, ['-K', ifname, 'gro', 'on']);
  const deadline = Date.now() + ${SCRIPT_DEADLINE_MS};
  const poll = () => {
    attribution.actorsFor(ifindex, process.hrtime.bigint(), 60000);
    const seen = (comm) => actors.some((actor) => actor.comm === comm);
    if ((seen(insideComm) && seen(outsideComm)) || Date.now() > deadline) {
      say({ insidePid: inside.pid, insideStatus: inside.status, actors, status: attribution.status() });
      attribution.stop();
      process.exit(0);
    }
    setTimeout(poll, 10);
  };
  poll();
});
`;

interface Ready {
  ready: true;
  pid: number;
  pidNamespace: string;
  status: { enabled: boolean; reason: string | null };
}
interface Report {
  insidePid: number;
  insideStatus: number;
  actors: Actor[];
}

for (const hook of ['raw_tracepoint', 'tracepoint'] as const) {
  describe(`attribution in a PID namespace of its own (kernel, ${hook})`, function () {
    let ns: Netns;
    eachTestInItsOwnNetns((created) => (ns = created));

    it('names a sender inside by its pid there, one outside as outside, and never its own write', async () => {
      ns.addVeth('v0');
      const script = ns.file('daemon-in-pid-namespace.js', DAEMON_IN_PID_NAMESPACE);
      const inside = renamedEthtool(ns.tmp, 'eth-in-');
      const outside = renamedEthtool(ns.tmp, 'eth-out-');
      const [insideComm, outsideComm] = [path.basename(inside), path.basename(outside)];
      const daemon = spawn(
        'ip',
        [
          ...['netns', 'exec', ns.name, 'unshare', '--pid', '--fork', '--kill-child', '--mount-proc'],
          ...[process.execPath, script, hook, 'v0', inside, insideComm, outsideComm],
        ],
        { stdio: ['pipe', 'pipe', 'inherit'] },
      );
      const exited = new Promise((resolve) => daemon.once('exit', resolve));
      try {
        const reader = readline.createInterface({ input: daemon.stdout as NodeJS.ReadableStream });
        const lines = reader[Symbol.asyncIterator]();
        const next = async <T>(): Promise<T> => {
          const line = await lines.next();
          assert.ok(!line.done, 'the script ended without a report');
          return JSON.parse(line.value) as T;
        };
        const ready = await next<Ready>();
        assert.ok(ready.status.enabled, `attribution did not start: ${ready.status.reason}`);
        assert.notEqual(ready.pidNamespace, fs.readlinkSync('/proc/self/ns/pid'), 'a PID namespace of its own');
        assert.equal(ready.pid, 1, 'the first process of its PID namespace');

        const fromOutside = spawnSync('ip', ['netns', 'exec', ns.name, outside, '-K', 'v0', 'gro', 'off']);
        assert.equal(fromOutside.status, 0, fromOutside.stderr.toString());
        daemon.stdin?.end('go\n');
        const report = await next<Report>();
        assert.equal(report.insideStatus, 0);
        process.stdout.write(
          `      actors: ${JSON.stringify(report.actors.map(({ pid, comm, process, partial }) => ({ pid, comm, process, partial })))}\n`,
        );

        // Only requests from the test's network namespace reach the log: these are all of them.
        const named = report.actors;
        const insideActor = named.find((actor) => actor.comm === insideComm);
        assert.ok(insideActor, `the sender inside is named: ${JSON.stringify(named)}`);
        assert.equal(insideActor.pid, report.insidePid, 'its pid as the script sees it');
        assert.notEqual(insideActor.process, 'outside-pid-namespace');

        const outsideActor = named.find((actor) => actor.comm === outsideComm);
        assert.ok(outsideActor, `the sender outside is named: ${JSON.stringify(named)}`);
        assert.equal(outsideActor.process, 'outside-pid-namespace');
        assert.equal(outsideActor.pid, 0);
        assert.equal(outsideActor.exe, null);
        assert.equal(outsideActor.netns, Number(fs.statSync(`/run/netns/${ns.name}`).ino));
        assert.match(outsideActor.partial ?? '', /outside offloadd's PID namespace/);

        assert.deepEqual(
          named.filter((actor) => actor !== insideActor && actor !== outsideActor),
          [],
          'nothing else: the script’s own write is not reported',
        );
      } finally {
        if (daemon.exitCode === null) daemon.kill();
        await exited;
      }
    });
  });
}
