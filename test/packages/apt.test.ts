/**
 * npm run test:packages: the signed apt repository (packages/apt/) as an operator uses it, on a
 * fresh Debian 13 (trixie, Proxmox VE 9's base) booted by systemd-nspawn: the README's three lines
 * (key, sources file, apt install), apt refusing a tampered repository or package, an upgrade with
 * apt-get upgrade from the previous release's package, an upgrade interrupted between unpack and
 * configure, and purge.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bootContainer, nspawnUnavailableReason, type Container } from '../helpers/nspawn';
import { BUILD_TIMEOUT_MS, previousReleaseDeb, rebuildWithNextVersion, sharedPackages, type BuiltPackages } from './build';
import { debianRoot } from '../helpers/debian-root';
import { Host, NIC, skip, until } from './host';

const KEYRING = '/usr/share/keyrings/offloadd-archive-keyring.gpg';
const SOURCES = '/etc/apt/sources.list.d/offloadd.sources';
/** apt and dpkg without questions; an edited conffile is kept, as unattended-upgrades does. */
const APT = ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', '-y', '-q', '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold'];

interface LedgerRecord {
  seq: number;
  event: string;
  interface: string;
}

describe('the signed apt repository on a fresh Debian 13 (trixie)', function () {
  let built: BuiltPackages;
  let previous: { version: string; deb: string };
  let root = '';
  let work = '';
  const hosts: Container[] = [];

  before(async function () {
    this.timeout(BUILD_TIMEOUT_MS);
    const reason = nspawnUnavailableReason();
    if (reason) skip(this, reason);
    const result = await debianRoot({ suite: 'trixie', arch: 'amd64' });
    if ('skip' in result) skip(this, result.skip);
    root = result.root;
    if (result.built) process.stdout.write(`      debootstrapped ${root} in ${result.ms} ms\n`);
    built = sharedPackages();
    const prior = previousReleaseDeb();
    previous = prior;
    process.stdout.write(`      previous release ${prior.version}: ${prior.built ? `built from its commit in ${prior.ms} ms` : 'cached'}\n`);
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-apt-'));
  });
  after(async () => {
    for (const c of hosts) await c.stop().catch(() => undefined);
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  /** A trixie container with the given directories bound read-only, and no Debian sources (no network). */
  async function boot(binds: Array<[string, string]>): Promise<Host> {
    const c = await bootContainer({ rootDir: root, repoDir: null, catalog: null, bindReadOnly: binds });
    hosts.push(c);
    const h = new Host(c);
    await h.run('sh', '-c', 'rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*');
    return h;
  }

  /** The README's first two lines, with the repository at file:DIR: the key, then the sources file. */
  async function addRepository(h: Host, dir: string): Promise<void> {
    await h.run('install', '-D', '-m', '0644', `${dir}/offloadd-archive-keyring.gpg`, KEYRING);
    await h.run('sh', '-c', `sed 's#^URIs:.*#URIs: file:${dir}#' ${dir}/offloadd.sources > ${SOURCES}`);
  }

  async function stop(h: Host): Promise<void> {
    await h.c.stop().catch(() => undefined);
    hosts.splice(hosts.indexOf(h.c), 1);
  }

  async function records(h: Host): Promise<LedgerRecord[]> {
    return (JSON.parse(await h.run('offloadctl', 'drift', '--json', '--limit', '1000')) as { records: LedgerRecord[] }).records;
  }

  it('is signed: InRelease and Release.gpg verify with the shipped key (keyring and armored), and SHA256SUMS too', () => {
    const apt = path.join(built.packages, 'apt');
    for (const file of ['offloadd-archive-keyring.gpg', 'offloadd-archive-keyring.asc', 'offloadd.sources', 'dists/stable/InRelease', 'dists/stable/Release.gpg']) {
      assert.ok(fs.existsSync(path.join(apt, file)), `packages/apt/${file}`);
    }
    const sources = fs.readFileSync(path.join(apt, 'offloadd.sources'), 'utf8');
    assert.match(sources, /^Signed-By: \/usr\/share\/keyrings\/offloadd-archive-keyring\.gpg$/m);
    assert.match(sources, /^Types: deb$/m);
    const release = fs.readFileSync(path.join(apt, 'dists/stable/Release'), 'utf8');
    assert.match(release, /^Architectures: amd64 arm64$/m);
    for (const arch of ['amd64', 'arm64']) {
      const index = fs.readFileSync(path.join(apt, `dists/stable/main/binary-${arch}/Packages`), 'utf8');
      assert.match(index, new RegExp(`^Filename: pool/main/o/offloadd/offloadd_${built.version}_${arch}\\.deb$`, 'm'));
    }
    const sums = fs.readFileSync(path.join(built.packages, 'SHA256SUMS'), 'utf8');
    for (const name of Object.keys(built.sizes).filter((artifact) => artifact.includes(built.version))) {
      assert.match(sums, new RegExp(`  ${name.replace(/[.+]/g, '\\$&')}$`, 'm'));
    }
    assert.ok(fs.existsSync(path.join(built.packages, 'SHA256SUMS.asc')));
  });

  describe('installed with apt from the repository, then purged', () => {
    let h: Host;

    before(async () => {
      h = await boot([[built.packages, '/packages']]);
      await h.presentBcm57508('/usr/sbin/offloadd');
    });
    after(async () => h && (await stop(h)));

    it('verifies SHA256SUMS and its signature with gpgv and the shipped keyring', async () => {
      // gpgv or sqv (trixie's apt verifies with sqv): whichever this root has.
      const verify = await h.run('sh', '-c', `if command -v sqv >/dev/null; then sqv --keyring ${'/packages/apt/offloadd-archive-keyring.gpg'} /packages/SHA256SUMS.asc /packages/SHA256SUMS; else gpgv --keyring /packages/apt/offloadd-archive-keyring.gpg /packages/SHA256SUMS.asc /packages/SHA256SUMS 2>&1; fi && cd /packages && sha256sum -c --quiet SHA256SUMS && echo verified`);
      assert.match(verify, /verified$/);
    });

    it('installs with the README\'s three lines: key, sources file, apt install offloadd; active and READY', async () => {
      await addRepository(h, '/packages/apt');
      await h.run(...APT, 'update');
      const started = process.hrtime.bigint();
      await h.run(...APT, 'install', 'offloadd');
      process.stdout.write(`      apt-get install offloadd to READY: ${(Number(process.hrtime.bigint() - started) / 1e6).toFixed(0)} ms\n`);
      assert.equal(await h.run('dpkg-query', '-W', '-f', '${Version}', 'offloadd'), built.version);
      assert.equal(await h.prop('ActiveState'), 'active');
      assert.match(await h.prop('StatusText'), /1 managed, 1 compliant/);
      assert.equal(await h.prop('FragmentPath'), '/usr/lib/systemd/system/offloadd.service');
      assert.equal(await h.feature('generic-receive-offload'), 'off');
      assert.match(await h.run('apt-cache', 'policy', 'offloadd'), /file:\/packages\/apt stable\/main amd64 Packages/);
    });

    it('says its version and commit (offloadd --version, offloadctl --version), and the changelog from CHANGELOG.md', async () => {
      for (const program of ['offloadd', 'offloadctl']) {
        assert.match(await h.run(program, '--version'), new RegExp(`^${program} ${built.version.replace(/\./g, '\\.')} \\(commit [0-9a-f]{12}\\)$`));
      }
      const changelog = await h.run('sh', '-c', 'zcat /usr/share/doc/offloadd/changelog.gz');
      assert.match(changelog, new RegExp(`^offloadd \\(${built.version.replace(/\./g, '\\.')}\\) unstable; urgency=medium$`, 'm'));
      for (const older of ['0.2.0', '0.1.0']) assert.match(changelog, new RegExp(`^offloadd \\(${older.replace(/\./g, '\\.')}\\)`, 'm'));
    });

    it('purge removes the package, its policy and its state', async () => {
      await h.run(...APT, 'purge', 'offloadd');
      for (const left of ['/etc/offloadd', '/var/lib/offloadd', '/var/lib/private/offloadd', '/usr/lib/offloadd', '/usr/lib/systemd/system/offloadd.service']) {
        assert.ok(!fs.existsSync(h.c.hostPath(left)), `${left} is left`);
      }
    });
  });

  describe('bad input: apt refuses a tampered repository or package', () => {
    let h: Host;
    let tampered = '';

    before(async () => {
      tampered = path.join(work, 'tampered');
      fs.cpSync(path.join(built.packages, 'apt'), tampered, { recursive: true });
      h = await boot([[tampered, '/srv/apt']]);
      await addRepository(h, '/srv/apt');
    });
    after(async () => h && (await stop(h)));

    /** Flips one bit of one byte in the middle of FILE, in place (same size). */
    function flipOneByte(file: string, at = Math.floor(fs.statSync(file).size / 2)): void {
      const fd = fs.openSync(file, 'r+');
      try {
        const byte = Buffer.alloc(1);
        fs.readSync(fd, byte, 0, 1, at);
        byte[0] = (byte[0] as number) ^ 0x01;
        fs.writeSync(fd, byte, 0, 1, at);
      } finally {
        fs.closeSync(fd);
      }
    }

    it('refuses a repository whose InRelease signature does not verify (one byte changed in a checksum)', async () => {
      const inRelease = path.join(tampered, 'dists/stable/InRelease');
      const text = fs.readFileSync(inRelease, 'utf8');
      // A hex digit of the first SHA256 line: still well-formed, no longer what was signed.
      const at = Buffer.byteLength(text.slice(0, text.indexOf('SHA256:') + 'SHA256:\n '.length + 1));
      flipOneByte(inRelease, at);
      fs.rmSync(path.join(tampered, 'dists/stable/Release.gpg'));
      const update = await h.c.exec([...APT, 'update']);
      assert.notEqual(update.code, 0, update.stdout);
      assert.match(update.stdout + update.stderr, /(BADSIG|signature|not signed|NO_PUBKEY|bad signature)/i);
      const install = await h.c.exec([...APT, 'install', 'offloadd']);
      assert.notEqual(install.code, 0);
      assert.match(install.stderr, /Unable to locate package offloadd/);
      fs.cpSync(path.join(built.packages, 'apt', 'dists'), path.join(tampered, 'dists'), { recursive: true });
    });

    it('refuses a package whose checksum differs from the signed index (one byte changed in the .deb)', async () => {
      await h.run(...APT, 'update');
      flipOneByte(path.join(tampered, `pool/main/o/offloadd/offloadd_${built.version}_amd64.deb`));
      const install = await h.c.exec([...APT, 'install', 'offloadd']);
      assert.notEqual(install.code, 0, install.stdout);
      assert.match(install.stdout + install.stderr, /Hash Sum mismatch|hashes do not match|Hashes of expected file|File has unexpected size/i);
      assert.ok(!fs.existsSync(h.c.hostPath('/usr/lib/offloadd')), 'nothing installed');
    });
  });

  describe(`upgrading from the previous release's package with apt-get upgrade`, () => {
    let next: BuiltPackages;
    let h: Host;
    let edited = '';
    let previousState: { pid: string; records: LedgerRecord[] };

    /** The previous release installed (its .deb, as an operator has it), its policy edited, drift recorded. */
    async function previousReleaseInstalled(): Promise<Host> {
      const host = await boot([[path.dirname(previous.deb), '/previous'], [next.packages, '/packages']]);
      await host.presentBcm57508('/usr/sbin/offloadd');
      await host.run(...APT, 'install', `/previous/${path.basename(previous.deb)}`);
      assert.equal(await host.run('dpkg-query', '-W', '-f', '${Version}', 'offloadd'), previous.version);
      await until(async () => /1 managed, 1 compliant/.test(await host.prop('StatusText')), 'the previous release READY');
      edited = `${host.c.readFile('/etc/offloadd/policy.yaml')}\n  - name: local-edit\n    match: { name: "vx*" }\n    features: { gso: off }\n`;
      host.c.writeFile('/etc/offloadd/policy.yaml', edited);
      await host.run('systemctl', 'reload', 'offloadd');
      await host.run('ethtool', '-K', NIC, 'gro', 'on');
      await until(async () => (await host.feature('generic-receive-offload')) === 'off', 'the drift corrected');
      await addRepository(host, '/packages/apt');
      return host;
    }

    before(function () {
      this.timeout(BUILD_TIMEOUT_MS);
      next = rebuildWithNextVersion(built);
      assert.notEqual(next.version, previous.version);
    });
    after(async () => h && (await stop(h)));

    it('keeps the edited policy, continues the ledger and its sequence numbers, and restarts the service once', async () => {
      h = await previousReleaseInstalled();
      previousState = { pid: await h.prop('MainPID'), records: await records(h) };
      assert.ok(previousState.records.some((r) => r.event === 'drift' && r.interface === NIC), 'a drift recorded by the previous release');
      await h.run(...APT, 'update');
      await h.run(...APT, 'upgrade');
      assert.equal(await h.run('dpkg-query', '-W', '-f', '${Version}', 'offloadd'), next.version);
      assert.equal(h.c.readFile('/etc/offloadd/policy.yaml'), edited);
      assert.notEqual(await h.prop('MainPID'), previousState.pid, 'restarted');
      // One start by the install, one by the upgrade: restarted once.
      const starts = await h.run('sh', '-c', 'journalctl --no-pager -o cat -u offloadd | grep -c "^Started offloadd"');
      assert.equal(starts, '2');
      const status = JSON.parse(await h.run('offloadctl', 'status', '--json')) as { version: string };
      assert.equal(status.version, next.version);
      await h.run('ethtool', '-K', NIC, 'gso', 'on');
      await until(async () => (await h.feature('generic-segmentation-offload')) === 'off', 'drift corrected after the upgrade');
      const after = await until(async () => {
        const now = await records(h);
        return now.length > previousState.records.length ? now : null;
      }, 'a new ledger record');
      const maxBefore = Math.max(...previousState.records.map((r) => r.seq));
      for (const old of previousState.records) assert.ok(after.some((r) => r.seq === old.seq), `record ${old.seq} kept`);
      const added = after.filter((r) => r.seq > maxBefore);
      assert.ok(added.length > 0, 'new records continue the sequence');
      assert.equal(Math.min(...added.map((r) => r.seq)), maxBefore + 1, 'no gap and no restart at 1');
    });

    it('an upgrade killed between unpack and configure is finished by dpkg --configure -a: running, compliant, ledger intact', async () => {
      await stop(h);
      h = await previousReleaseInstalled();
      const recordsBefore = await records(h);
      await h.run(...APT, 'update');
      // apt runs dpkg --unpack, then dpkg --configure: a dpkg that apt starts (Dir::Bin::dpkg) kills
      // apt-get and itself (SIGKILL) when asked to configure the unpacked package, as a power cut or
      // an OOM kill would between the two.
      h.c.writeFile('/usr/local/sbin/dpkg-killed-before-configure', [
        '#!/bin/sh',
        'case " $* " in *" --configure "*)',
        "  if dpkg-query -W -f '${Status}' offloadd | grep -q ' unpacked$'; then kill -KILL $PPID $$; fi ;;",
        'esac',
        'exec /usr/bin/dpkg "$@"',
        '',
      ].join('\n'), 0o755);
      const killed = await h.c.exec([...APT, '-o', 'Dir::Bin::dpkg=/usr/local/sbin/dpkg-killed-before-configure', 'upgrade']);
      assert.notEqual(killed.code, 0, `apt-get upgrade was not interrupted: ${killed.stdout}`);
      assert.match(await h.run('dpkg-query', '-W', '-f', '${Status} ${Version}', 'offloadd'), new RegExp(` (unpacked|half-configured) ${next.version.replace(/\./g, '\\.')}$`));
      await h.run('env', 'DEBIAN_FRONTEND=noninteractive', 'dpkg', '--configure', '-a');
      assert.equal(await h.run('dpkg-query', '-W', '-f', '${Status}', 'offloadd'), 'install ok installed');
      assert.equal(await h.prop('ActiveState'), 'active');
      const status = JSON.parse(await h.run('offloadctl', 'status', '--json')) as { version: string; interfaces: { managed: number; compliant: number } };
      assert.equal(status.version, next.version);
      assert.equal(status.interfaces.compliant, status.interfaces.managed);
      assert.match(await h.run('offloadctl', 'check'), /OK/);
      const recordsAfter = await records(h);
      for (const old of recordsBefore) assert.ok(recordsAfter.some((r) => r.seq === old.seq && r.event === old.event), `record ${old.seq} kept`);
      assert.equal(h.c.readFile('/etc/offloadd/policy.yaml'), edited);
    });
  });
});
