/**
 * A container on a cached Debian root for the package tests, with helpers to run commands in it,
 * read the unit's properties and present a veth as a BCM57508 to an installed daemon.
 */
import { fakePciDevice } from '../helpers/netns';
import { type Container } from '../helpers/nspawn';

/** Named like a BCM57508 port; the fake sysfs (a drop-in adds --sysfs-root) says bnxt_en, 14e4:1750. */
export const NIC = 'ens1f0np0';
const FAKE_SYSFS = '/srv/fake-sys';

export function skip(context: Mocha.Context, reason: string): never {
  process.stdout.write(`      skipped: ${reason}\n`);
  context.skip();
}

export async function until<T>(probe: () => Promise<T | null | undefined | false>, what: string, timeoutMs = 20000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** One container on the cached Debian root, with the packages bound read-only at /packages. */
export class Host {
  constructor(readonly c: Container) {}

  async run(...command: string[]): Promise<string> {
    return (await this.c.exec(command, { check: true, timeoutMs: 120000 })).stdout.trim();
  }

  async feature(name: string): Promise<string> {
    return (await this.run('ethtool', '-k', NIC)).split('\n').find((line) => line.startsWith(`${name}:`))?.split(/\s+/)[1] ?? '?';
  }

  prop(name: string): Promise<string> {
    return this.run('systemctl', 'show', '-P', name, 'offloadd.service');
  }

  /** A veth presented as a BCM57508 to a daemon started as `sbin` --sysfs-root (a drop-in), GRO/GSO on. */
  async presentBcm57508(sbin: string): Promise<void> {
    await this.run('ip', 'link', 'add', NIC, 'type', 'veth', 'peer', 'name', 'peer0');
    await this.run('ethtool', '-K', NIC, 'gro', 'on', 'gso', 'on');
    fakePciDevice(this.c.hostPath(FAKE_SYSFS), NIC, { vendor: '14e4', device: '1750', driver: 'bnxt_en', bus: '0000:3b:00.0' });
    this.c.writeFile('/etc/systemd/system/offloadd.service.d/10-fake-sysfs.conf',
      `[Service]\nExecStart=\nExecStart=${sbin} --sysfs-root ${FAKE_SYSFS}\n`);
  }
}
