/**
 * A directory laid out as kubelet's atomic writer lays out a ConfigMap volume, for tests of
 * offloadd --watch-policy.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * A ConfigMap volume as kubelet writes it (its atomic writer): `..<timestamp>/policy.yaml`, the
 * `..data` link to that directory, and `policy.yaml` → `..data/policy.yaml`.
 */
export class ConfigMapDir {
  constructor(readonly dir: string) {}

  static create(dir: string, content: string): ConfigMapDir {
    fs.mkdirSync(dir, { recursive: true });
    const volume = new ConfigMapDir(dir);
    const stamp = volume.writeTimestampDir(content);
    fs.symlinkSync(stamp, path.join(dir, '..data'));
    fs.symlinkSync('..data/policy.yaml', path.join(dir, 'policy.yaml'));
    return volume;
  }

  get policyPath(): string {
    return path.join(this.dir, 'policy.yaml');
  }

  private writeTimestampDir(content: string): string {
    const stamp = `..2026_11_26_00_00_00.${randomBytes(5).toString('hex')}`;
    fs.mkdirSync(path.join(this.dir, stamp), { mode: 0o755 });
    fs.writeFileSync(path.join(this.dir, stamp, 'policy.yaml'), content, { mode: 0o644 });
    return stamp;
  }

  /** The update: a new timestamped directory, a temporary link renamed over `..data`, the old one removed. */
  swap(content: string): void {
    const old = fs.readlinkSync(path.join(this.dir, '..data'));
    const stamp = this.writeTimestampDir(content);
    fs.symlinkSync(stamp, path.join(this.dir, '..data_tmp'));
    fs.renameSync(path.join(this.dir, '..data_tmp'), path.join(this.dir, '..data'));
    fs.rmSync(path.join(this.dir, old), { recursive: true });
  }
}
