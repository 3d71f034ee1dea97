/**
 * offloadd as a real systemd service: a real systemd as PID 1 in a container with its own network
 * namespace, booted from the suite's own Debian root with the pinned Node runtime bound in
 * (helpers/nspawn.ts), the project's own unit, installed by the project's own install script.
 */
import { strict as assert } from 'node:assert';
import { MessageId } from '../../src/observe/message-ids';
import {
  bootContainer,
  CONTAINER_SETUP_TIMEOUT_MS,
  containerUnavailableReason,
  keepJournalOfFailure,
  type Container,
} from '../helpers/nspawn';
import { waitForAsync } from '../helpers/wait';

const POLICY = 'rules:\n  - name: uplinks\n    match: { name: "up*" }\n    features: { gro: off, gso: off }\n';

describe('offloadd.service under a real systemd', function () {
  this.timeout(180000);
  let c: Container;
  const run = async (...command: string[]): Promise<string> => (await c.exec(command, { check: true })).stdout.trim();
  const feature = async (ifname: string, name: string): Promise<string> =>
    (await run('ethtool', '-k', ifname)).split('\n').find((line) => line.startsWith(`${name}:`))?.split(/\s+/)[1] ?? '?';
  const prop = async (name: string): Promise<string> => run('systemctl', 'show', '-P', name, 'offloadd.service');

  /**
   * Each test states what it needs (installed, running) instead of relying on the tests before it:
   * the install script runs once, for whichever test asks first, with up0 (GRO on) in place.
   */
  let installation: Promise<string> | null = null;
  const installed = (): Promise<string> =>
    (installation ??= (async () => {
      await run('ip', 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'peer0');
      await run('ethtool', '-K', 'up0', 'gro', 'on');
      c.writeFile('/etc/offloadd/policy.yaml', POLICY);
      // A short watchdog for the freeze test; everything else is the shipped unit.
      c.writeFile('/etc/systemd/system/offloadd.service.d/10-test.conf', '[Service]\nWatchdogSec=3\n');
      const install = await c.exec(['bash', '/src/scripts/install-service.sh'], { timeoutMs: 120000 });
      assert.equal(install.code, 0, install.stdout + install.stderr);
      return install.stdout;
    })());
  const running = async (): Promise<void> => {
    await installed();
    if ((await prop('ActiveState')) !== 'active') await run('systemctl', 'start', 'offloadd');
  };
  const drifts = async (): Promise<number> =>
    (JSON.parse(await run('offloadctl', 'status', '--json')) as { counters: { drifts: number } }).counters.drifts;

  before(async function () {
    this.timeout(CONTAINER_SETUP_TIMEOUT_MS); // the first run debootstraps the test root
    const reason = await containerUnavailableReason();
    if (reason) {
      process.stdout.write(`      skipped: ${reason}\n`);
      this.skip();
    }
    // nspawn's default bounding set has neither CAP_BPF nor CAP_PERFMON (the unit asks for both),
    // and its own seccomp filter allows bpf() only with CAP_SYS_ADMIN: a host's systemd has neither limit.
    c = await bootContainer({
      repoMount: '/src',
      catalog: null,
      nspawnArgs: ['--capability=CAP_BPF,CAP_PERFMON', '--system-call-filter=bpf'],
    });
  });
  afterEach(async function () {
    await keepJournalOfFailure(this, c);
  });
  after(async () => {
    await c?.stop();
  });

  it('installs, and systemctl start returns only once a matching interface is compliant', async () => {
    const stdout = await installed();
    assert.match(stdout, /keeping the existing \/etc\/offloadd\/policy\.yaml/);
    // enable --now returned: READY=1 has been sent, so up0 must already be in policy.
    assert.equal(await feature('up0', 'generic-receive-offload'), 'off');
    assert.equal(await feature('up0', 'generic-segmentation-offload'), 'off');
    assert.equal(await prop('ActiveState'), 'active');
    assert.match(await prop('StatusText'), /1 managed, 1 compliant/);
  });

  it('runs with CAP_NET_ADMIN, CAP_BPF and CAP_PERFMON only, as an unprivileged dynamic user', async () => {
    await running();
    const pid = await prop('MainPID');
    const status = await run('cat', `/proc/${pid}/status`);
    // bits 12 (CAP_NET_ADMIN), 38 (CAP_PERFMON), 39 (CAP_BPF)
    assert.match(status, /^CapEff:\s+000000c000001000$/m);
    assert.match(status, /^CapBnd:\s+000000c000001000$/m);
    assert.match(status, /^Seccomp:\s+2$/m);
    assert.notEqual(/^Uid:\s+(\d+)/m.exec(status)?.[1], '0');
  });

  it('names the actor of a drift under the hardened unit (attribution on: bpf passes its filter)', async () => {
    await running();
    const status = JSON.parse(await run('offloadctl', 'status', '--json')) as {
      attribution: { enabled: boolean; reason: string | null; hook: string | null };
    };
    assert.equal(
      status.attribution.enabled,
      true,
      `attribution off: ${status.attribution.reason}; unit filter: ${await prop('SystemCallFilter')}`,
    );
    assert.equal(status.attribution.hook, 'raw_tracepoint', 'the fallback needs tracefs and perf_event_open');
    await run('ethtool', '-K', 'up0', 'gro', 'on');
    const entry = await waitForAsync(async () => {
      const found = await run('journalctl', '-u', 'offloadd', 'INTERFACE=up0', 'OFFLOADD_ACTOR_COMM=ethtool', '-o', 'json');
      return found.split('\n').filter(Boolean).pop();
    }, 'a drift entry naming ethtool');
    const fields = JSON.parse(entry) as Record<string, string>;
    assert.match(fields['MESSAGE'] ?? '', /up0: rx-gro drifted off → on .*by ethtool \(pid \d+/);
    assert.equal(fields['OFFLOADD_ACTOR_EXE'], undefined, 'ProtectProc=invisible: the executable stays unknown');
  });

  it('corrects drift and logs it under the unit with INTERFACE= and MESSAGE_ID=, explained by journalctl -x', async () => {
    await running();
    const before = await drifts();
    await run('ethtool', '-K', 'up0', 'gro', 'on');
    const entries = await waitForAsync(async () => {
      const found = (await run('journalctl', '-u', 'offloadd', 'INTERFACE=up0', `MESSAGE_ID=${MessageId.drift}`, '-o', 'cat')).split('\n').filter(Boolean);
      return found.length > 0 ? found : null;
    }, 'the drift entry in the journal');
    assert.match(entries[0] ?? '', /up0: rx-gro drifted off → on/);
    assert.equal(await feature('up0', 'generic-receive-offload'), 'off');
    await run('journalctl', '--update-catalog');
    const explained = await run('journalctl', '-x', '-u', 'offloadd', `MESSAGE_ID=${MessageId.drift}`, '--no-pager');
    assert.match(explained, /^░░ Subject: /m);
    assert.equal(await drifts(), before + 1);
  });

  it('reloads a changed policy without a restart', async () => {
    await running();
    c.writeFile('/etc/offloadd/policy.yaml', POLICY);
    await run('systemctl', 'reload', 'offloadd');
    const pid = await prop('MainPID');
    if ((await c.exec(['ip', 'link', 'show', 'vx0'])).code !== 0) await run('ip', 'link', 'add', 'vx0', 'type', 'veth', 'peer', 'name', 'peer1');
    await run('ethtool', '-K', 'vx0', 'gso', 'on');
    assert.equal(await feature('vx0', 'generic-segmentation-offload'), 'on');
    c.writeFile('/etc/offloadd/policy.yaml', POLICY.replace('"up*"', '["up*", "vx*"]'));
    await run('systemctl', 'reload', 'offloadd');
    assert.equal(await feature('vx0', 'generic-segmentation-offload'), 'off');
    assert.equal(await prop('MainPID'), pid, 'same process');
    assert.match(await prop('StatusText'), /2 managed, 2 compliant/);
  });

  it('is killed by the watchdog when frozen, restarted, and re-enforces', async () => {
    await running();
    const restartsBefore = Number(await prop('NRestarts'));
    const pid = await prop('MainPID');
    // `kill -STOP 0` would stop this test's own process group: refuse a missing main process.
    assert.match(pid, /^[1-9]\d*$/, 'offloadd is running');
    await run('kill', '-STOP', pid);
    await run('ethtool', '-K', 'up0', 'gro', 'on'); // drift while nobody watches
    await waitForAsync(async () => {
      const current = await prop('MainPID');
      return current !== pid && current !== '0' && (await prop('ActiveState')) === 'active';
    }, 'a new main process after the watchdog timeout', 20000);
    assert.equal(Number(await prop('NRestarts')), restartsBefore + 1);
    assert.match(await run('journalctl', '-u', 'offloadd', '--no-pager'), /[Ww]atchdog timeout/);
    assert.equal(await feature('up0', 'generic-receive-offload'), 'off', 're-enforced at start');
  });

  it('stops cleanly', async () => {
    await running();
    await run('systemctl', 'stop', 'offloadd');
    assert.equal(await prop('ActiveState'), 'inactive');
    assert.equal(await prop('Result'), 'success');
    const stopping = await run('journalctl', '-u', 'offloadd', `MESSAGE_ID=${MessageId.stopping}`, '-o', 'cat');
    assert.match(stopping, /Stopping/);
  });

  it('uninstalls, keeping the policy and the drift history', async () => {
    await running();
    await run('ethtool', '-K', 'up0', 'gro', 'on'); // a drift, so there is history to keep
    await waitForAsync(async () => (await feature('up0', 'generic-receive-offload')) === 'off', 'the drift corrected');
    const result = await c.exec(['bash', '/src/scripts/uninstall-service.sh'], { check: true });
    assert.match(result.stdout, /kept \/etc\/offloadd/);
    assert.equal((await c.exec(['systemctl', 'cat', 'offloadd'])).code, 1, 'unit gone');
    assert.equal((await c.exec(['test', '-e', '/opt/offloadd'])).code, 1);
    assert.equal((await c.exec(['test', '-s', '/etc/offloadd/policy.yaml'])).code, 0);
    assert.equal((await c.exec(['test', '-s', '/var/lib/private/offloadd/ledger.jsonl'])).code, 0);
    installation = null; // a later test installs again
    await c.exec(['ip', 'link', 'del', 'up0']);
  });
});
