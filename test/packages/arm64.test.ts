/**
 * npm run test:packages: the arm64 package installed for real: an arm64 Debian 12 root booted by
 * systemd-nspawn (under qemu-user 7.2, Debian 13's systemd 257 starts no service: every unit fails
 * with "Result: resources" before its process runs; docs/RELEASING.md), every binary in it (systemd, apt, the bundled Node) run by qemu-user through
 * binfmt_misc; offloadd installed from the signed repository with apt, started to READY, and
 * answering offloadctl. qemu-user translates neither SIOCETHTOOL nor generic netlink sockets, so
 * the daemon can change no offload there: it must say so plainly (docs/RELEASING.md).
 */
import { strict as assert } from 'node:assert';
import { MessageId } from '../../src/observe/message-ids';
import { bootContainer, nspawnUnavailableReason, type Container } from '../helpers/nspawn';
import { BUILD_TIMEOUT_MS, sharedPackages, type BuiltPackages } from './build';
import { arm64EmulationUnavailableReason, debianRoot } from '../helpers/debian-root';
import { Host, skip, until } from './host';

/** Everything runs emulated: booting, apt and the daemon's start take several times longer. */
const EMULATED_BOOT_TIMEOUT_MS = 180_000;
/**
 * Units that take systemd credentials (ImportCredential=): under qemu-user, systemd cannot set up
 * their credentials directory ("Failed at step CREDENTIALS: Invalid argument"). offloadd's unit
 * takes none; these are not needed in a throw-away container.
 */
const UNITS_WITH_CREDENTIALS = [
  'systemd-sysctl.service',
  'systemd-sysusers.service',
  'systemd-tmpfiles-setup-dev.service',
  'systemd-tmpfiles-setup.service',
];
const APT = ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', '-y', '-q'];

describe('the arm64 package on an arm64 Debian 12 root under qemu-user (systemd-nspawn)', function () {
  let built: BuiltPackages;
  let c: Container | undefined;
  let h: Host;

  before(async function () {
    this.timeout(BUILD_TIMEOUT_MS);
    const reason = nspawnUnavailableReason() ?? arm64EmulationUnavailableReason();
    if (reason) skip(this, reason);
    const result = await debianRoot({ suite: 'bookworm', arch: 'arm64' });
    if ('skip' in result) skip(this, result.skip);
    if (result.built) process.stdout.write(`      debootstrapped ${result.root} in ${result.ms} ms\n`);
    built = sharedPackages();
    const started = Date.now();
    c = await bootContainer({
      rootDir: result.root,
      repoDir: null,
      catalog: null,
      bindReadOnly: [[built.packages, '/packages']],
      bootTimeoutMs: EMULATED_BOOT_TIMEOUT_MS,
      mask: UNITS_WITH_CREDENTIALS,
    });
    process.stdout.write(`      arm64 systemd booted to running in ${Date.now() - started} ms\n`);
    h = new Host(c);
  });
  after(async () => {
    await c?.stop().catch(() => undefined);
  });

  it('runs an aarch64 systemd as PID 1', async () => {
    assert.equal(await h.run('dpkg', '--print-architecture'), 'arm64');
    assert.equal(await h.run('uname', '-m'), 'aarch64');
  });

  it('installs offloadd (arm64) from the signed repository with apt, and the service reaches READY', async () => {
    await h.run('sh', '-c', 'rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*');
    await h.run('install', '-D', '-m', '0644', '/packages/apt/offloadd-archive-keyring.gpg', '/usr/share/keyrings/offloadd-archive-keyring.gpg');
    await h.run('sh', '-c', "sed 's#^URIs:.*#URIs: file:/packages/apt#' /packages/apt/offloadd.sources > /etc/apt/sources.list.d/offloadd.sources");
    // systemd under qemu-user cannot make the unit's IPC namespace ("Failed to set up IPC
    // namespacing: Input/output error", step NAMESPACE): the one sandbox setting relaxed here.
    h.c.writeFile('/etc/systemd/system/offloadd.service.d/50-qemu-user.conf', '[Service]\nPrivateIPC=no\n');
    await h.run(...APT, 'update');
    const started = Date.now();
    // Returns once the service is READY (Type=notify): an emulated Node starts in tens of seconds.
    await h.c.exec([...APT, 'install', 'offloadd'], { check: true, timeoutMs: EMULATED_BOOT_TIMEOUT_MS });
    process.stdout.write(`      apt-get install offloadd (arm64, emulated) in ${Date.now() - started} ms\n`);
    assert.equal(await h.run('dpkg-query', '-W', '-f', '${Version} ${Architecture}', 'offloadd'), `${built.version} arm64`);
    assert.equal(await h.prop('ActiveState'), 'active');
    assert.match(await h.prop('StatusText'), /0 managed, 0 compliant/);
  });

  it('answers offloadctl status, and says that offloads cannot be changed under qemu-user', async () => {
    const status = JSON.parse(await h.run('offloadctl', 'status', '--json')) as { version: string; pid: number };
    assert.equal(status.version, built.version);
    assert.equal(String(status.pid), await h.prop('MainPID'));
    const text = await h.run('offloadctl', 'status');
    process.stdout.write(`      ${text.split('\n').join('\n      ')}\n`);
    const started = await until(
      async () => (await h.run('journalctl', '--no-pager', '-o', 'cat', '-u', 'offloadd', '-p', 'warning', `MESSAGE_ID=${MessageId.started}`)) || null,
      'the Started entry, as a warning',
    );
    assert.match(started, /offload features can be neither read nor changed here: the SIOCETHTOOL ioctl is not implemented \(ENOSYS\) and ethtool netlink is not available/);
    assert.match(started, /qemu-user/);
  });
});
