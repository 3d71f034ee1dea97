/**
 * npm run test:packages: the OCI image (npm run image, buildah from scratch), built from the same
 * clean clone as the packages. Its OCI archive, the artifact a node imports, is unpacked and its
 * root file system run as the entrypoint under systemd-nspawn, as a container runtime would
 * (podman cannot start containers on these machines): PID 1 is offloadd, in a test network
 * namespace, with only CAP_NET_ADMIN, a read-only root, the image's environment, and
 * /run/offloadd, /var/lib/offloadd and a ConfigMap-style /etc/offloadd bound in.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigMapDir } from '../helpers/configmap';
import { Netns, waitFor } from '../helpers/netns';
import { Container, nspawnUnavailableReason, REPO_ROOT } from '../helpers/nspawn';
import { sharedImage, sharedPackages, type BuiltImage } from './build';

/** Every Linux capability but CAP_NET_ADMIN: what `capabilities: {drop: [ALL], add: [NET_ADMIN]}` leaves. */
const ALL_BUT_NET_ADMIN = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_RAW',
  'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ',
  'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];
/** CAP_NET_ADMIN alone, as /proc/PID/status shows a capability set. */
const NET_ADMIN_ONLY = '0000000000001000';
/** Kubernetes' default terminationGracePeriodSeconds. */
const GRACE_PERIOD_MS = 30_000;
/** Inside the test's network namespace, which the container shares (hostNetwork on Kubernetes). */
const METRICS_ADDRESS = '127.0.0.1:9747';

const POLICY = `
mode: enforce
rules:
  - name: uplinks
    match: { name: "up*", kind: veth }
    features: { gro: off, gso: off }
`;

interface ImageConfig {
  architecture: string;
  config: { Entrypoint?: string[]; Env?: string[]; Labels?: Record<string, string>; User?: string; Volumes?: Record<string, object> };
}

/** Unpacks an OCI archive's (single) image: its root file system into `rootfs`; returns its config and name. */
function unpackOciArchive(archive: string, rootfs: string): { config: ImageConfig; name: string | undefined } {
  const layout = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-oci-'));
  try {
    execFileSync('tar', ['-xf', archive, '-C', layout]);
    const blob = (digest: string): string => path.join(layout, 'blobs', ...digest.split(':'));
    const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as {
      manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
    };
    assert.equal(index.manifests.length, 1, 'one image per archive');
    const entry = index.manifests[0] as { digest: string; annotations?: Record<string, string> };
    const manifest = JSON.parse(fs.readFileSync(blob(entry.digest), 'utf8')) as {
      config: { digest: string };
      layers: Array<{ digest: string; mediaType: string }>;
    };
    fs.mkdirSync(rootfs, { recursive: true });
    for (const layer of manifest.layers) {
      assert.match(layer.mediaType, /^application\/vnd\.oci\.image\.layer\.v1\.tar(\+gzip)?$/);
      execFileSync('tar', ['-xf', blob(layer.digest), '-C', rootfs, '--numeric-owner']);
    }
    const config = JSON.parse(fs.readFileSync(blob(manifest.config.digest), 'utf8')) as ImageConfig;
    return { config, name: entry.annotations?.['org.opencontainers.image.ref.name'] };
  } finally {
    fs.rmSync(layout, { recursive: true, force: true });
  }
}

function skip(context: Mocha.Context, reason: string): never {
  process.stdout.write(`      skipped: ${reason}\n`);
  context.skip();
}

describe('the OCI image (buildah from scratch) run under systemd-nspawn with only CAP_NET_ADMIN', function () {
  let image: BuiltImage;
  let work = '';
  let rootfs = '';
  let config: ImageConfig;
  let ns: Netns | undefined;
  let c: Container | undefined;
  let volume: ConfigMapDir;

  before(async function () {
    const reason = nspawnUnavailableReason();
    if (reason) skip(this, reason);
    if (spawnSync('buildah', ['--version']).status !== 0) skip(this, 'buildah is not installed (apt-get install buildah)');
    const built = sharedPackages();
    const started = Date.now();
    image = sharedImage(built);
    const sizes = Object.entries(image.archives).map(([arch, file]) => `${arch} ${fs.statSync(file).size} bytes`);
    process.stdout.write(`      npm run image in ${Date.now() - started} ms; OCI archives: ${sizes.join(', ')}\n`);

    work = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-image-'));
    rootfs = path.join(work, 'rootfs');
    const unpacked = unpackOciArchive(image.archives['x64'] as string, rootfs);
    config = unpacked.config;
    assert.equal(unpacked.name, `localhost/offloadd:${image.version}`);
    const bytes = Number(execFileSync('du', ['-sb', rootfs], { encoding: 'utf8' }).split('\t')[0]);
    process.stdout.write(`      image root file system: ${(bytes / 1e6).toFixed(1)} MB\n`);

    ns = new Netns();
    ns.addVeth('up0');
    ns.setFeatures('up0', 'gro', 'on', 'gso', 'on');
    for (const dir of ['run', 'state']) fs.mkdirSync(path.join(work, dir));
    volume = ConfigMapDir.create(path.join(work, 'config'), POLICY);
    const entrypoint = config.config.Entrypoint ?? [];
    c = await Container.start({
      rootDir: rootfs,
      repoDir: null,
      catalog: null,
      privateNetwork: false,
      volatile: false,
      run: {
        command: [
          ...entrypoint,
          '--policy',
          '/etc/offloadd/policy.yaml',
          '--watch-policy',
          '--metrics-listen',
          METRICS_ADDRESS,
        ],
      },
      nspawnArgs: [
        '--read-only',
        `--network-namespace-path=/run/netns/${ns.name}`,
        `--drop-capability=${ALL_BUT_NET_ADMIN.join(',')}`,
        '--capability=CAP_NET_ADMIN',
        '--kill-signal=SIGTERM', // what a container runtime sends PID 1 to stop it
        '--timezone=off',
        '--resolv-conf=off',
        ...(config.config.Env ?? []).map((variable) => `--setenv=${variable}`),
        `--bind=${path.join(work, 'run')}:/run/offloadd`,
        `--bind=${path.join(work, 'state')}:/var/lib/offloadd`,
        `--bind-ro=${volume.dir}:/etc/offloadd`,
      ],
    });
  });

  after(async () => {
    await c?.stop().catch(() => undefined);
    await ns?.destroy();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  const log = (): string => (c as Container).log();
  const waitForLog = (pattern: RegExp, what: string): Promise<string> =>
    waitFor(() => pattern.exec(log())?.[0], `${what}; the container's output:\n${log()}`, 30000);

  it('is named localhost/offloadd:<version>, runs /usr/sbin/offloadd, carries OCI labels, and has no shell', () => {
    assert.equal(config.architecture, 'amd64');
    assert.deepEqual(config.config.Entrypoint, ['/usr/sbin/offloadd']);
    assert.ok(config.config.Env?.includes('container=oci'), 'tells offloadd it runs in a container');
    const labels = config.config.Labels ?? {};
    assert.equal(labels['org.opencontainers.image.version'], image.version);
    assert.equal(labels['org.opencontainers.image.title'], 'offloadd');
    assert.match(labels['org.opencontainers.image.revision'] ?? '', /^[0-9a-f]{40}$/);
    assert.deepEqual(Object.keys(config.config.Volumes ?? {}).sort(), ['/etc/offloadd', '/run/offloadd', '/var/lib/offloadd']);
    for (const file of ['usr/sbin/offloadd', 'usr/bin/offloadctl']) {
      assert.ok(fs.statSync(path.join(rootfs, file)).mode & 0o111, `${file} is executable`);
    }
    for (const shell of ['bin/sh', 'usr/bin/sh', 'bin/bash']) assert.ok(!fs.existsSync(path.join(rootfs, shell)), `${shell} is in the image`);
    const arm64 = unpackOciArchive(image.archives['arm64'] as string, path.join(work, 'rootfs-arm64'));
    assert.equal(arm64.config.architecture, 'arm64');
    assert.match(execFileSync('file', ['-L', path.join(work, 'rootfs-arm64', 'usr/lib/offloadd/node/bin/node')], { encoding: 'utf8' }), /ARM aarch64/);
    // Its Node starts with the image's own loader and libraries (qemu-user, root = the image's).
    const qemu = ['/usr/bin/qemu-aarch64-static', '/usr/bin/qemu-aarch64'].find((file) => fs.existsSync(file));
    if (qemu) {
      const arm64Root = path.join(work, 'rootfs-arm64');
      const script = 'process.arch + " " + typeof require("/usr/lib/offloadd/offloadd.node").getFeatures';
      const out = execFileSync(qemu, ['-L', arm64Root, path.join(arm64Root, 'usr/lib/offloadd/node/bin/node'), '-p', script.replace('/usr', `${arm64Root}/usr`)], { encoding: 'utf8' });
      assert.equal(out.trim(), 'arm64 function');
    } else {
      process.stdout.write('      (qemu-user-static is not installed: the arm64 image is not started)\n');
    }
    fs.rmSync(path.join(work, 'rootfs-arm64'), { recursive: true, force: true });
  });

  it('enforces GRO/GSO off on the veth as PID 1 with only CAP_NET_ADMIN on a read-only root, logging to stderr', async () => {
    const n = ns as Netns;
    await waitFor(() => {
      const features = n.features('up0');
      return features['generic-receive-offload'] === false && features['generic-segmentation-offload'] === false;
    }, 'GRO and GSO off on up0');
    const status = fs.readFileSync(`/proc/${(c as Container).leaderPid}/status`, 'utf8');
    assert.match(status, new RegExp(`^CapEff:\\s+${NET_ADMIN_ONLY}$`, 'm'));
    assert.match(status, new RegExp(`^CapBnd:\\s+${NET_ADMIN_ONLY}$`, 'm'));
    assert.equal(fs.readlinkSync(`/proc/${(c as Container).leaderPid}/exe`).replace(/.*(?=\/usr\/lib)/, ''), '/usr/lib/offloadd/node/bin/node');
    const rootMounts = fs.readFileSync(`/proc/${(c as Container).leaderPid}/mountinfo`, 'utf8').split('\n').filter((line) => line.split(' ')[4] === '/');
    const rootMount = rootMounts[rootMounts.length - 1]; // the topmost
    assert.match(rootMount?.split(' ')[5] ?? '', /^ro\b/, `the root is read-only: ${rootMount}`);
    await waitForLog(/info: Policy loaded from \/etc\/offloadd\/policy\.yaml/, 'the policy logged on stderr');
  });

  it('answers offloadctl status and check inside the image, and on the bound socket from the host', async () => {
    const box = c as Container;
    await waitFor(() => fs.existsSync(path.join(work, 'run', 'offloadd.sock')), 'the API socket');
    const inside = JSON.parse((await box.exec(['/usr/bin/offloadctl', 'status', '--json'], { check: true })).stdout) as {
      version: string;
      policy: { path: string };
      interfaces: { managed: number; compliant: number };
    };
    assert.equal(inside.version, image.version);
    assert.equal(inside.policy.path, '/etc/offloadd/policy.yaml');
    assert.deepEqual([inside.interfaces.managed, inside.interfaces.compliant], [1, 1]);
    // Readiness: exit 0 only when every managed interface is compliant.
    assert.equal((await box.exec(['/usr/bin/offloadctl', 'check'])).code, 0);
    const fromHost = execFileSync(process.execPath, [path.join(REPO_ROOT, 'bin', 'offloadctl'), 'status', '--json', '--socket', path.join(work, 'run', 'offloadd.sock')], { encoding: 'utf8' });
    assert.equal((JSON.parse(fromHost) as { version: string }).version, image.version);
  });

  it('reloads by itself when the ConfigMap-style policy directory is swapped', async () => {
    volume.swap(`${POLICY}  - name: others\n    match: { name: "o*", kind: veth }\n    features: { gso: off }\n`);
    await waitForLog(/Policy reloaded from \/etc\/offloadd\/policy\.yaml \(2 rules/, 'the reload');
    (ns as Netns).addVeth('o0');
    await waitFor(() => (ns as Netns).features('o0')['generic-segmentation-offload'] === false, 'o0 enforced by the new rule');
  });

  it('exposes Prometheus metrics on --metrics-listen in its network namespace', async () => {
    const n = ns as Netns;
    const body = await waitFor(() => {
      const result = spawnSync('ip', ['netns', 'exec', n.name, 'curl', '-sS', '--max-time', '5', `http://${METRICS_ADDRESS}/metrics`], {
        encoding: 'utf8',
      });
      return result.status === 0 && result.stdout.includes('offloadd_build_info') ? result.stdout : null;
    }, 'GET /metrics to answer');
    assert.match(body, new RegExp(`^offloadd_build_info\\{version="${image.version.replace(/\./g, '\\.')}",`, 'm'));
    assert.match(body, /^offloadd_interface_compliant\{interface="up0",driver="veth",pci="",rule="[^"]+"\} 1$/m);
    assert.match(body, /^offloadd_feature_interface_info\{feature_interface="ethtool-netlink"\} 1$/m);
  });

  it('stops on SIGTERM within the grace period: exit 0, "Stopping" on stderr', async () => {
    const status = await (c as Container).stop(GRACE_PERIOD_MS);
    const output = log();
    c = undefined;
    assert.match(output, /info: Received SIGTERM/);
    assert.match(output, /info: Stopping/);
    assert.equal(status, 0, output.split('\n').slice(-10).join('\n'));
  });
});
