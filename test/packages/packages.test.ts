/**
 * npm run test:packages: the .deb and the tarball, built from a clean clone, installed on a fresh
 * minimal Debian 12 (debootstrap; no Node, no compiler) booted by systemd-nspawn with its own
 * network namespace; and the arm64 addon loaded under qemu-user-static.
 * A missing tool, mirror or network is a skip with its reason printed, never a silent pass.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MessageId } from '../../src/observe/message-ids';
import { waitFor } from '../helpers/netns';
import { bootContainer, nspawnUnavailableReason, type Container } from '../helpers/nspawn';
import { rebuildWithNextVersion, sharedPackages, type BuiltPackages } from './build';
import { debianRoot } from '../helpers/debian-root';
import { Host, NIC, skip, until } from './host';


/** What both installations must do once the service runs: the service behaviour. */
function serviceBehaviour(host: () => Host, prefix: string): void {
  it('is active and READY, as a dynamic user with only CAP_NET_ADMIN, on the bundled runtime', async () => {
    const h = host();
    assert.equal(await h.prop('ActiveState'), 'active');
    assert.match(await h.prop('StatusText'), /1 managed, 1 compliant/);
    const pid = await h.prop('MainPID');
    const status = await h.run('cat', `/proc/${pid}/status`);
    assert.match(status, /^CapEff:\s+0000000000001000$/m);
    assert.match(status, /^CapBnd:\s+0000000000001000$/m);
    assert.notEqual(/^Uid:\s+(\d+)/m.exec(status)?.[1], '0');
    assert.equal(await h.run('readlink', `/proc/${pid}/exe`), `${prefix}/lib/offloadd/node/bin/node`);
    const systemNode = await h.c.exec(['sh', '-c', 'command -v node nodejs']);
    assert.notEqual(systemNode.code, 0, `a system Node is installed: ${systemNode.stdout}`);
  });

  it('has turned GRO and GSO off on the veth presented as a BCM57508', async () => {
    assert.equal(await host().feature('generic-receive-offload'), 'off');
    assert.equal(await host().feature('generic-segmentation-offload'), 'off');
  });

  it('corrects drift and logs it under the unit with INTERFACE=, explained by journalctl -x', async () => {
    const h = host();
    await h.run('ethtool', '-K', NIC, 'gro', 'on');
    const journal = ['journalctl', '--no-pager', '-u', 'offloadd', `INTERFACE=${NIC}`, `MESSAGE_ID=${MessageId.drift}`];
    const entry = await until(async () => (await h.run(...journal, '-o', 'cat')).split('\n').find(Boolean), 'the drift entry');
    assert.match(entry, new RegExp(`${NIC}: rx-gro drifted off → on`));
    assert.equal(await h.feature('generic-receive-offload'), 'off');
    assert.match(await h.run(...journal, '-x'), /^░░ Subject: /m);
  });

  it('answers offloadctl status, list --json and check as root', async () => {
    const h = host();
    const status = JSON.parse(await h.run('offloadctl', 'status', '--json')) as { counters: { drifts: number } };
    assert.equal(status.counters.drifts, 1);
    const list = JSON.parse(await h.run('offloadctl', 'list', '--json')) as unknown;
    assert.match(JSON.stringify(list), new RegExp(NIC));
    assert.match(await h.run('offloadctl', 'check'), /OK/);
  });
}

describe('packages on a fresh Debian 12 (debootstrap, systemd-nspawn)', function () {
  let built: BuiltPackages | undefined;
  let root = '';
  const hosts: Container[] = [];

  before(async function () {
    const reason = nspawnUnavailableReason();
    if (reason) skip(this, reason);
    const result = await debianRoot();
    if ('skip' in result) skip(this, result.skip);
    root = result.root;
    if (result.built) process.stdout.write(`      debootstrapped ${root} in ${result.ms} ms\n`);
    built = sharedPackages();
    process.stdout.write(`      built from a clean clone in ${built.buildMs} ms: ${JSON.stringify(built.sizes)}\n`);
  });
  after(async () => {
    for (const c of hosts) await c.stop().catch(() => undefined);
    // The build is shared with the image's tests: removed when the run ends (build.ts).
  });

  async function boot(): Promise<Host> {
    const c = await bootContainer({ rootDir: root, repoDir: null, catalog: null, bindReadOnly: [[(built as BuiltPackages).packages, '/packages']] });
    hosts.push(c);
    return new Host(c);
  }

  describe('the .deb', () => {
    let h: Host;
    let deb = '';

    before(async () => {
      h = await boot();
      await h.presentBcm57508('/usr/sbin/offloadd');
      deb = `/packages/offloadd_${(built as BuiltPackages).version}_amd64.deb`;
    });

    it('installs with dpkg -i: enabled, and active and READY when dpkg returns', async () => {
      const started = process.hrtime.bigint();
      await h.run('dpkg', '-i', deb);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const startToReadyUs = Number(await h.prop('ActiveEnterTimestampMonotonic')) - Number(await h.prop('ExecMainStartTimestampMonotonic'));
      process.stdout.write(`      dpkg -i to READY: ${ms.toFixed(0)} ms (of which the service's start to READY=1: ${(startToReadyUs / 1000).toFixed(0)} ms)\n`);
      assert.equal(await h.run('systemctl', 'is-enabled', 'offloadd'), 'enabled');
      assert.equal(await h.prop('ActiveState'), 'active');
      assert.equal(await h.prop('FragmentPath'), '/lib/systemd/system/offloadd.service');
    });

    serviceBehaviour(() => h, '/usr');

    it('has man pages man resolves, and bash completion', async () => {
      assert.equal(await h.run('man', '-w', 'offloadctl'), '/usr/share/man/man1/offloadctl.1.gz');
      assert.match(await h.run('man', '-P', 'cat', '8', 'offloadd'), /keep NIC offload features in policy/);
      assert.match(await h.run('man', '-w', '5', 'offloadd.policy'), /offloadd\.policy\.5\.gz$/);
      assert.ok(fs.existsSync(h.c.hostPath('/usr/share/bash-completion/completions/offloadctl')));
    });

    it('reloads an edited policy, and keeps the edit through an upgrade to a rebuilt package', async () => {
      const policy = h.c.readFile('/etc/offloadd/policy.yaml');
      const edited = `${policy}\n  - name: local-edit\n    match: { name: "vx*" }\n    features: { gso: off }\n`;
      h.c.writeFile('/etc/offloadd/policy.yaml', edited);
      await h.run('ip', 'link', 'add', 'vx0', 'type', 'veth', 'peer', 'name', 'peer1');
      const pid = await h.prop('MainPID');
      await h.run('systemctl', 'reload', 'offloadd');
      assert.equal(await h.prop('MainPID'), pid, 'reloaded, not restarted');
      assert.match(await h.run('ethtool', '-k', 'vx0'), /^generic-segmentation-offload: off/m);

      const upgrade = rebuildWithNextVersion(built as BuiltPackages);
      assert.notEqual(upgrade.version, (built as BuiltPackages).version);
      await h.run('dpkg', '-i', `/packages/offloadd_${upgrade.version}_amd64.deb`);
      assert.equal(h.c.readFile('/etc/offloadd/policy.yaml'), edited);
      assert.notEqual(await h.prop('MainPID'), pid, 'restarted on upgrade');
      const status = JSON.parse(await h.run('offloadctl', 'status', '--json')) as { version: string };
      assert.equal(status.version, upgrade.version);
      // StatusText is the last STATUS= systemd took from the service: across a restart it may
      // still be one sent before the new daemon's READY=1 (or a report sent while it was coming
      // up). What counts is the state the upgraded daemon settles in, so wait for that.
      await until(async () => /2 managed, 2 compliant/.test(await h.prop('StatusText')), 'StatusText "2 managed, 2 compliant" after the upgrade');
    });

    it('serves metrics once the shipped drop-in is installed, as on a host with node-exporter', async () => {
      // The drop-in's ExecStart= replaces the test's --sysfs-root one (10-fake-sysfs.conf sorts
      // first): the veth is no BCM57508 meanwhile. What counts here is what the sandbox lets through.
      // What prometheus-node-exporter leaves on a Debian host: its group and textfile directory.
      await h.run('groupadd', '--system', 'prometheus');
      await h.run('install', '-d', '-g', 'prometheus', '-m', '2775', '/var/lib/prometheus/node-exporter');
      await h.run('install', '-D', '-m', '0644', '/usr/share/doc/offloadd/examples/metrics.conf', '/etc/systemd/system/offloadd.service.d/metrics.conf');
      await h.run('systemctl', 'daemon-reload');
      await h.run('systemctl', 'restart', 'offloadd');
      assert.equal(await h.prop('ActiveState'), 'active');
      // No curl in a minimal root: bash's /dev/tcp speaks to the port the drop-in opened.
      const scrape = await h.run('bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/9747 && printf "GET /metrics HTTP/1.0\\r\\n\\r\\n" >&3 && cat <&3');
      assert.match(scrape, /^HTTP\/1\.[01] 200 /);
      assert.match(scrape, /^offloadd_interfaces_managed \d+$/m);
      const textfilePath = h.c.hostPath('/var/lib/prometheus/node-exporter/offloadd.prom');
      const textfile = await waitFor(() => (fs.existsSync(textfilePath) ? fs.readFileSync(textfilePath, 'utf8') : null), 'the textfile');
      assert.match(textfile, /^offloadd_build_info\{version="[^"]+",nodejs_version="\d+/m);
      // Taken away again, the unit is as shipped: no metrics, no IP.
      await h.run('rm', '/etc/systemd/system/offloadd.service.d/metrics.conf');
      await h.run('systemctl', 'daemon-reload');
      await h.run('systemctl', 'restart', 'offloadd');
      assert.equal(await h.prop('ActiveState'), 'active');
    });

    it('removal stops the service and keeps the policy and the drift history', async () => {
      await h.run('dpkg', '-r', 'offloadd');
      assert.notEqual((await h.c.exec(['systemctl', 'is-active', 'offloadd'])).stdout.trim(), 'active');
      assert.ok(fs.existsSync(h.c.hostPath('/etc/offloadd/policy.yaml')));
      assert.ok(fs.readdirSync(h.c.hostPath('/var/lib/private/offloadd')).length > 0, 'the ledger is kept');
      assert.ok(!fs.existsSync(h.c.hostPath('/usr/lib/offloadd')));
    });

    it('purge removes everything the package created', async () => {
      await h.run('dpkg', '-P', 'offloadd');
      for (const left of ['/etc/offloadd', '/var/lib/offloadd', '/var/lib/private/offloadd', '/usr/lib/offloadd',
        '/etc/systemd/system/multi-user.target.wants/offloadd.service', '/lib/systemd/system/offloadd.service']) {
        assert.ok(!fs.existsSync(h.c.hostPath(left)), `${left} is left`);
      }
      assert.equal(await h.run('sh', '-c', 'dpkg-query -W -f "\\${db:Status-Status}" offloadd 2>/dev/null || echo absent'), 'absent');
    });
  });

  describe('the tarball, installed under /usr/local as docs/HARVESTER.md says', () => {
    let h: Host;

    before(async () => {
      h = await boot();
      await h.presentBcm57508('/usr/local/sbin/offloadd');
      const tarball = `/packages/offloadd-${(built as BuiltPackages).version}-linux-x64.tar.gz`;
      // The steps of docs/HARVESTER.md's CloudInit stage, in order.
      await h.run('tar', '-xzf', tarball, '-C', '/usr/local', '--strip-components=1', '--no-same-owner');
      await h.run('install', '-D', '-m', '0644', '/usr/local/lib/offloadd/default-policy.yaml', '/etc/offloadd/policy.yaml');
      await h.run('journalctl', '--update-catalog');
      await h.run('systemctl', 'daemon-reload');
      await h.run('systemctl', 'enable', '--now', 'offloadd.service');
    });

    it('is enabled from /usr/local/lib/systemd/system and ordered before network-pre.target', async () => {
      assert.equal(await h.prop('FragmentPath'), '/usr/local/lib/systemd/system/offloadd.service');
      assert.equal(await h.run('systemctl', 'is-enabled', 'offloadd'), 'enabled');
      assert.match(await h.prop('Before'), /network-pre\.target/);
    });

    serviceBehaviour(() => h, '/usr/local');
  });

  describe('the arm64 build', () => {
    it('loads its addon under qemu-user-static with its own Node runtime, with the same exports as the x64 one', function () {
      const qemu = ['/usr/bin/qemu-aarch64-static', '/usr/bin/qemu-aarch64'].find((file) => fs.existsSync(file));
      if (!qemu) skip(this, 'qemu-user-static is not installed (apt-get install qemu-user-static)');
      if (!fs.existsSync('/usr/aarch64-linux-gnu/lib')) skip(this, 'no arm64 libraries for qemu (apt-get install g++-aarch64-linux-gnu)');
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-arm64-'));
      try {
        const tarball = path.join((built as BuiltPackages).packages, `offloadd-${(built as BuiltPackages).version}-linux-arm64.tar.gz`);
        execFileSync('tar', ['-xzf', tarball, '-C', dir, '--strip-components=1']);
        const lib = path.join(dir, 'lib', 'offloadd');
        assert.match(execFileSync('file', ['-L', path.join(lib, 'offloadd.node')], { encoding: 'utf8' }), /ARM aarch64/);
        const out = execFileSync(qemu, ['-L', '/usr/aarch64-linux-gnu', path.join(lib, 'node', 'bin', 'node'), '-p',
          'process.arch + " " + Object.keys(require(process.argv[1])).sort().join(",")', path.join(lib, 'offloadd.node')], { encoding: 'utf8' });
        // The x64 addon of this build, loaded here, says what the arm64 one must export.
        const x64 = path.join((built as BuiltPackages).packages, `offloadd-${(built as BuiltPackages).version}-linux-x64.tar.gz`);
        execFileSync('tar', ['-xzf', x64, '-C', dir, '--strip-components=3', '--wildcards', '*/lib/offloadd/offloadd.node']);
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- a native addon is loaded with require()
        const expected = Object.keys(require(path.join(dir, 'offloadd.node')) as object).sort();
        assert.ok(expected.includes('getFeatures'), expected.join(','));
        assert.equal(out.trim(), `arm64 ${expected.join(',')}`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
