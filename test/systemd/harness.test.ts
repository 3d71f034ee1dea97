/**
 * The systemd test harness itself, proven with stand-ins (not the daemon): a real standalone
 * journald (helpers/journald.ts) and a real systemd as PID 1 in a container (helpers/nspawn.ts)
 * booted from the suite's own Debian root (helpers/debian-root.ts), never the host's tree.
 * Skipped, with the reason printed, only when not root, systemd-nspawn is missing, or the root
 * cannot be built (no debootstrap, no Debian mirror).
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MessageId } from '../../src/observe/message-ids';
import { cgroupHierarchies } from '../helpers/cgroup';
import { startJournald, type Journald } from '../helpers/journald';
import {
  bootContainer,
  CONTAINER_SETUP_TIMEOUT_MS,
  containerUnavailableReason,
  keepJournalOfFailure,
  REPO_ROOT,
  type Container,
} from '../helpers/nspawn';

function skipWith(context: Mocha.Context, reason: string): never {
  process.stdout.write(`      skipped: ${reason}\n`);
  context.skip();
}

const token = (): string => randomBytes(6).toString('hex');

/**
 * A Type=notify stand-in's [Service] section: its main process (socat) sends READY=1 itself
 * after `delaySec`, as offloadd will, so NotifyAccess=main holds. (`systemd-notify --ready` from
 * a shell sends from a short-lived child: systemd drops the message when that child is gone
 * before it is read, even with NotifyAccess=all.) `line` goes to the journal first.
 */
function standInService(line: string, delaySec = 0.3): string {
  return [
    '[Service]',
    'Type=notify',
    'NotifyAccess=main',
    `ExecStart=/bin/sh -c 'exec socat -u "SYSTEM:echo ${line} >&2; sleep ${delaySec}; echo READY=1; exec sleep infinity" "UNIX-SENDTO:$NOTIFY_SOCKET"'`,
    'SuccessExitStatus=143', // socat exits 128+15 on SIGTERM
    // SIGTERM to socat alone: were its child killed first, socat would exit 1 ("failed"), as
    // seen under load; the child is killed after socat is gone.
    'KillMode=mixed',
    '',
  ].join('\n');
}

describe('systemd harness: standalone journald', function () {
  let journald: Journald | undefined;

  before(async function () {
    if (process.getuid?.() !== 0) skipWith(this, 'needs root (mount namespaces, cgroups)');
    journald = await startJournald();
  });

  after(async function () {
    await journald?.stop();
  });

  it('stores a native-protocol entry with custom fields, found by a field match', async function () {
    const j = journald as Journald;
    const id = token();
    const result = await j.exec('logger', ['--journald'], {
      input: `MESSAGE=harness: custom fields\nMESSAGE_ID=${MessageId.drift}\nINTERFACE=v0\nOFFLOADD_TEST=${id}\n`,
    });
    assert.equal(result.code, 0, `logger --journald failed: ${result.stderr}`);
    const entries = await j.waitForEntries([`OFFLOADD_TEST=${id}`]);
    assert.equal(entries.length, 1);
    const entry = entries[0]!;
    assert.equal(entry['MESSAGE'], 'harness: custom fields');
    assert.equal(entry['MESSAGE_ID'], MessageId.drift);
    assert.equal(entry['INTERFACE'], 'v0');
  });

  it('tags a sender in a unit-named cgroup with _SYSTEMD_UNIT, so -u works', async function () {
    const j = journald as Journald;
    const id = token();
    // A stream (stdout) sender that outlives its message: journald reads the sender's cgroup
    // when the message arrives, and a sender that is already gone gets no _SYSTEMD_UNIT.
    const result = await j.exec('systemd-cat', ['-t', 'offloadd-standin', 'sh', '-c', `echo "stand-in ${id}"; sleep 0.3`], { cgroupUnit: 'offloadd.service' });
    assert.equal(result.code, 0, result.stderr);
    const entries = await j.waitForEntries(['SYSLOG_IDENTIFIER=offloadd-standin'], 1, 10000, ['-u', 'offloadd.service']);
    assert.deepEqual(entries.map((entry) => entry['MESSAGE']), [`stand-in ${id}`]);
    assert.equal(entries[0]!['_SYSTEMD_UNIT'], 'offloadd.service');
  });

  it('takes datagrams from outside the namespace through socketPathFromOutside', async function () {
    const j = journald as Journald;
    const id = token();
    const { spawnSync } = await import('node:child_process');
    const sent = spawnSync('socat', ['-u', 'STDIN', `UNIX-SENDTO:${j.socketPathFromOutside}`], { input: `MESSAGE=from outside\nOFFLOADD_TEST=${id}\n` });
    assert.equal(sent.status, 0, `socat failed (apt-get install socat): ${sent.stderr?.toString() ?? sent.error}`);
    const entries = await j.waitForEntries([`OFFLOADD_TEST=${id}`]);
    assert.equal(entries[0]!['MESSAGE'], 'from outside');
  });

  it('stop() ends journald and removes its scratch and cgroup directories', async function () {
    const j = journald as Journald;
    journald = undefined;
    const slice = j.cgroupSlice;
    assert.equal(path.dirname(slice), cgroupHierarchies().unified ?? cgroupHierarchies().all[0]);
    assert.ok(fs.existsSync(slice), `${slice} should exist after a cgroupUnit run`);
    await j.stop();
    assert.ok(!fs.existsSync(`/proc/${j.journaldPid}`), 'journald still running');
    assert.ok(!fs.existsSync(slice), `${slice} left behind`);
    assert.ok(!fs.existsSync(j.dir), `${j.dir} left behind`);
  });
});

describe('systemd harness: systemd as PID 1 in a container', function () {
  let container: Container | undefined;

  before(async function () {
    this.timeout(CONTAINER_SETUP_TIMEOUT_MS); // the first run debootstraps the test root
    const reason = await containerUnavailableReason();
    if (reason) skipWith(this, reason);
    container = await bootContainer();
  });

  afterEach(async function () {
    await keepJournalOfFailure(this, container);
  });

  after(async function () {
    await container?.stop();
  });

  it('boots to "running" with its own network namespace', async function () {
    const c = container as Container;
    assert.ok(c.bootMs > 0);
    assert.notEqual(fs.readlinkSync(`/proc/${c.leaderPid}/ns/net`), fs.readlinkSync('/proc/self/ns/net'));
    await c.exec(['ip', 'link', 'add', 'hv0', 'type', 'veth', 'peer', 'name', 'hv0p'], { check: true });
    const links = await c.exec(['ip', '-o', 'link', 'show'], { check: true });
    assert.match(links.stdout, /hv0p?@/);
    const hostLinks = fs.readdirSync('/sys/class/net');
    assert.ok(!hostLinks.includes('hv0'), 'a link made inside the container appeared on the host');
  });

  it("boots the suite's own Debian root with the pinned Node bound in, nothing of the host's tree", async function () {
    const c = container as Container;
    assert.notEqual(c.rootDir, '/');
    assert.ok(fs.existsSync(c.hostPath('/.offloadd-root-complete')), 'the cached debootstrap root');
    const pinned = fs.readFileSync(path.join(REPO_ROOT, '.node-version'), 'utf8').trim();
    for (const node of ['node', '/usr/bin/node']) {
      assert.equal((await c.exec([node, '--version'], { check: true })).stdout.trim(), `v${pinned}`, node);
    }
    // The root's own units, init scripts and generators only: none of the host's.
    const hostOnly = fs.readdirSync('/etc/init.d').filter((script) => !fs.existsSync(path.join(c.rootDir, 'etc', 'init.d', script)));
    for (const script of hostOnly) assert.ok(!fs.existsSync(c.hostPath(`/etc/init.d/${script}`)), `the host's /etc/init.d/${script} is inside`);
  });

  it('starts a Type=notify stand-in: systemctl start returns after READY=1, then active, logged under -u', async function () {
    const c = container as Container;
    const id = token();
    await c.installUnit('offloadd-standin.service', `[Unit]\nDescription=offloadd harness stand-in\n${standInService(`stand-in ${id} starting`)}`);
    const began = Date.now();
    const start = await c.systemctl('start', 'offloadd-standin.service');
    const startMs = Date.now() - began;
    assert.equal(start.code, 0, `systemctl start failed: ${start.stderr}`);
    assert.ok(startMs >= 250, `systemctl start returned after ${startMs} ms, before the stand-in sent READY=1`);
    const active = await c.systemctl('is-active', 'offloadd-standin.service');
    assert.equal(active.stdout.trim(), 'active');
    const entries = await c.journal('offloadd-standin.service');
    assert.ok(entries.some((entry) => entry['MESSAGE'] === `stand-in ${id} starting`),
      `no stand-in line under journalctl -u:\n${entries.map((entry) => String(entry['MESSAGE'])).join('\n')}`);
    await c.systemctl('stop', 'offloadd-standin.service');
    assert.equal((await c.systemctl('is-active', 'offloadd-standin.service')).stdout.trim(), 'inactive');
  });

  it('has offloadd\'s catalog: journalctl -x explains its MESSAGE_IDs with the entry\'s fields', async function () {
    const c = container as Container;
    const listed = await c.exec(['journalctl', '--list-catalog'], { check: true });
    for (const [kind, id] of Object.entries(MessageId)) assert.ok(listed.stdout.includes(id), `no catalog entry for ${kind} (${id})`);
    const logged = await c.exec(['logger', '--journald'], {
      input: `MESSAGE=harness drift\nMESSAGE_ID=${MessageId.drift}\nINTERFACE=hv0\nOFFLOADD_FEATURE=rx-gro\nOFFLOADD_WANTED=off\nOFFLOADD_ACTIVE=on\nOFFLOADD_RULE=test\n`,
      check: true,
    });
    assert.equal(logged.code, 0);
    await c.exec(['journalctl', '--sync'], { check: true });
    const explained = await c.exec(['journalctl', '-x', '--no-pager', `MESSAGE_ID=${MessageId.drift}`], { check: true });
    assert.match(explained.stdout, /Subject: rx-gro on hv0 drifted to on \(policy: off\)/);
    assert.match(explained.stdout, /Defined-By: offloadd/);
  });

  it('stop() halts the container and removes its cgroup and scratch directories', async function () {
    const c = container as Container;
    container = undefined;
    assert.ok(c.cgroupDirs.every((dir) => fs.existsSync(dir)));
    await c.stop();
    assert.ok(!fs.existsSync(`/proc/${c.nspawnPid}`), 'systemd-nspawn still running');
    assert.ok(!fs.existsSync(`/proc/${c.leaderPid}`), 'the container\'s systemd still running');
    for (const dir of c.cgroupDirs) assert.ok(!fs.existsSync(dir), `${dir} left behind`);
    assert.ok(!fs.existsSync(c.dir), `${c.dir} left behind`);
  });
});

describe('systemd harness: units present from the start of the boot', function () {
  let container: Container | undefined;

  before(async function () {
    this.timeout(CONTAINER_SETUP_TIMEOUT_MS); // the first run debootstraps the test root
    const reason = await containerUnavailableReason();
    if (reason) skipWith(this, reason);
  });

  afterEach(async function () {
    await keepJournalOfFailure(this, container);
  });

  after(async function () {
    await container?.stop();
  });

  it('boots with offloadd.service\'s [Unit] ordering and cloud-init-like early units: no cycle, all start, in order', async function () {
    // The shipped unit's [Unit] section (the ordering under test) over a stand-in [Service].
    const shipped = fs.readFileSync(path.join(REPO_ROOT, 'systemd', 'offloadd.service'), 'utf8');
    const unitSection = shipped.split(/^\[Service\]$/m)[0] as string;
    const oneshot = '[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n';
    container = await bootContainer({
      units: {
        'offloadd.service': `${unitSection}${standInService('offloadd stand-in starting', 0.1)}`,
        // As cloud-init's network stage: before sysinit.target, after the network managers.
        'fake-cloud-init.service': `[Unit]\nDefaultDependencies=no\nWants=fake-networking.service\nAfter=fake-networking.service\nBefore=sysinit.target\n${oneshot}`,
        // As networkd, NetworkManager, ifupdown: after network-pre.target.
        'fake-networking.service': `[Unit]\nDefaultDependencies=no\nAfter=network-pre.target local-fs.target\nBefore=network.target\n${oneshot}`,
      },
      enable: { 'sysinit.target': ['fake-cloud-init.service'], 'multi-user.target': ['offloadd.service'] },
    });
    const c = container;
    const monotonic = async (unit: string, property: string): Promise<number> =>
      Number((await c.systemctl('show', '-P', property, unit)).stdout.trim());
    for (const unit of ['offloadd.service', 'fake-networking.service', 'fake-cloud-init.service']) {
      const state = (await c.systemctl('is-active', unit)).stdout.trim();
      assert.equal(state, 'active', `${unit} is ${state}: a start job deleted to break an ordering cycle?`);
    }
    const offloaddReady = await monotonic('offloadd.service', 'ActiveEnterTimestampMonotonic');
    const networkingStarted = await monotonic('fake-networking.service', 'InactiveExitTimestampMonotonic');
    assert.ok(offloaddReady > 0 && offloaddReady <= networkingStarted, `network manager stand-in started (${networkingStarted}) before offloadd was ready (${offloaddReady})`);
  });
});
