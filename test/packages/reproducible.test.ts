/**
 * npm run test:packages: the build is reproducible. The commit's shared build (a clean clone) and
 * a second clean clone of the same commit, in another directory, minutes later and in another time
 * zone, must give byte-identical .debs, tarballs and OCI archives (image layers, config and
 * manifest included), and the same SHA256SUMS, byte for byte. Signatures are not compared: the
 * key is made per build (docs/RELEASING.md says what is pinned and why).
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BUILD_TIMEOUT_MS, buildAgain, sharedImage, sharedPackages, type BuiltImage, type BuiltPackages } from './build';
import { skip } from './host';

/** "sha256  name" lines of a SHA256SUMS file → name → sha256. */
function readSums(file: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const match = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    assert.ok(match, `not a sha256sum line: ${line}`);
    sums.set(match[2] as string, match[1] as string);
  }
  return sums;
}

/** The layer, config and manifest digests of an OCI archive's image. */
function ociDigests(archive: string): string[] {
  const index = JSON.parse(execFileSync('tar', ['-xOf', archive, 'index.json'], { encoding: 'utf8' })) as { manifests: Array<{ digest: string }> };
  const digests: string[] = [];
  for (const entry of index.manifests) {
    digests.push(`manifest ${entry.digest}`);
    const blob = `blobs/${entry.digest.replace(':', '/')}`;
    const manifest = JSON.parse(execFileSync('tar', ['-xOf', archive, blob], { encoding: 'utf8' })) as {
      config: { digest: string };
      layers: Array<{ digest: string }>;
    };
    digests.push(`config ${manifest.config.digest}`, ...manifest.layers.map((layer) => `layer ${layer.digest}`));
  }
  return digests;
}

describe('reproducible builds: the same commit built twice, elsewhere and later', function () {
  let first: BuiltPackages;
  let firstImage: BuiltImage;
  let second: BuiltPackages;
  let secondImage: BuiltImage;

  before(function () {
    this.timeout(2 * BUILD_TIMEOUT_MS);
    if (spawnSync('buildah', ['--version']).status !== 0) skip(this, 'buildah is not installed (apt-get install buildah)');
    first = sharedPackages();
    firstImage = sharedImage(first);
    const started = Date.now();
    const { again, image } = buildAgain(first);
    second = again;
    secondImage = image;
    process.stdout.write(`      second build (npm run prebuilds, package, image in another clone) in ${Date.now() - started} ms\n`);
  });

  it('writes the same SHA256SUMS, byte for byte, listing every artifact', () => {
    const a = fs.readFileSync(path.join(first.packages, 'SHA256SUMS'), 'utf8');
    const b = fs.readFileSync(path.join(second.packages, 'SHA256SUMS'), 'utf8');
    const sums = readSums(path.join(first.packages, 'SHA256SUMS'));
    const version = first.version;
    for (const name of [
      ...['amd64', 'arm64'].map((arch) => `offloadd_${version}_${arch}.deb`),
      ...['x64', 'arm64'].map((arch) => `offloadd-${version}-linux-${arch}.tar.gz`),
      ...['x64', 'arm64'].map((arch) => `offloadd-${version}-oci-${arch}.tar`),
      'apt/dists/stable/Release',
      'apt/dists/stable/main/binary-amd64/Packages',
      'apt/offloadd.sources',
    ]) {
      assert.ok(sums.has(name), `SHA256SUMS lists ${name}`);
    }
    const report = [...sums].map(([name, sha]) => `${sha}  ${name} (${fs.statSync(path.join(first.packages, name)).size} bytes)`);
    process.stdout.write(`      SHA256SUMS of both builds:\n${report.map((line) => `        ${line}`).join('\n')}\n`);
    assert.equal(b, a);
  });

  it('gives byte-identical .debs, tarballs and OCI archives', () => {
    const sums = readSums(path.join(first.packages, 'SHA256SUMS'));
    for (const name of sums.keys()) {
      const a = fs.readFileSync(path.join(first.packages, name));
      const b = fs.readFileSync(path.join(second.packages, name));
      assert.ok(a.equals(b), `${name} differs between the two builds`);
    }
  });

  it('gives the same image layers, config and manifest (digests)', () => {
    for (const arch of ['x64', 'arm64']) {
      assert.deepEqual(ociDigests(secondImage.archives[arch] as string), ociDigests(firstImage.archives[arch] as string), arch);
    }
  });

  it('signs both with keys of their own (a throw-away key per build), each verifying its own SHA256SUMS', () => {
    for (const built of [first, second]) {
      const home = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-gpgv-'));
      try {
        execFileSync('gpgv', ['--homedir', home, '--keyring', path.join(built.packages, 'apt', 'offloadd-archive-keyring.gpg'),
          path.join(built.packages, 'SHA256SUMS.asc'), path.join(built.packages, 'SHA256SUMS')], { stdio: 'pipe' });
      } finally {
        fs.rmSync(home, { recursive: true, force: true });
      }
    }
  });
});
