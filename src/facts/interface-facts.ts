/**
 * Interface facts = what the link message says (name, kind, MAC, state, master) + what the
 * device is (driver, bus, PCI ids). The device part cannot change while an ifindex lives (a
 * driver rebind re-registers the netdev under a new ifindex), so it is read once per ifindex,
 * and only when first asked for: a rule that matches by name never costs a sysfs look-up or a
 * GDRVINFO ioctl for the many interfaces it does not match.
 */
import * as os from 'node:os';
import { addon } from '../addon/binding';
import { KernelError } from '../errors';
import type { LinkMessage } from '../events/link-message';
import { DEFAULT_SYSFS_ROOT, readSysfsDevice } from './sysfs';
import type { InterfaceFacts, PciId } from './types';

const ENODEV = 19;

interface DeviceFacts {
  driver: string | null;
  busInfo: string | null;
  pci: PciId | null;
}

/** Since 5.13 link messages carry IFLA_PARENT_DEV_NAME whenever the netdev has a parent device. */
function kernelReportsParentDevice(release = os.release()): boolean {
  const [major = 0, minor = 0] = release.split('.').map((part) => Number.parseInt(part, 10));
  return major > 5 || (major === 5 && minor >= 13);
}

/** InterfaceFacts whose device part is read on first access; serialises like a plain object. */
class LinkFacts implements InterfaceFacts {
  readonly ifindex: number;
  readonly name: string;
  readonly kind: string | null;
  readonly mac: string | null;
  readonly up: boolean;
  readonly operstate: string;
  readonly master: number | null;

  constructor(link: LinkMessage, private readonly device: () => DeviceFacts) {
    this.ifindex = link.ifindex;
    this.name = link.name;
    this.kind = link.kind;
    this.mac = link.mac;
    this.up = link.up;
    this.operstate = link.operstate;
    this.master = link.master;
  }

  get driver(): string | null {
    return this.device().driver;
  }

  get busInfo(): string | null {
    return this.device().busInfo;
  }

  get pci(): PciId | null {
    return this.device().pci;
  }

  toJSON(): InterfaceFacts {
    let device: DeviceFacts;
    try {
      device = this.device();
    } catch {
      device = { driver: null, busInfo: null, pci: null }; // vanished meanwhile
    }
    const { ifindex, name, kind, mac, up, operstate, master } = this;
    return { ifindex, name, kind, mac, up, operstate, master, ...device };
  }
}

/** Facts for link messages: from sysfs and the kernel (InterfaceFactsSource) or a test's fake. */
export interface FactsSource {
  factsFor(link: LinkMessage): InterfaceFacts;
  /** The link is gone: drop what is cached for its ifindex. */
  forget(ifindex: number): void;
}

export class InterfaceFactsSource implements FactsSource {
  private readonly devices = new Map<number, DeviceFacts>();
  /**
   * With the real /sys on a kernel that names parent devices in link messages, a link without
   * one has no `device` in sysfs: no need to look. A substitute root (tests, containers) is
   * always looked at, since it may present any interface as any device.
   */
  private readonly trustParentAttribute: boolean;

  constructor(
    readonly sysfsRoot: string,
    /** A device fact could not be read for a reason other than the link vanishing: for logs. */
    private readonly onReadProblem: (message: string, link: LinkMessage, error: Error) => void = () => undefined,
  ) {
    this.trustParentAttribute = sysfsRoot === DEFAULT_SYSFS_ROOT && kernelReportsParentDevice();
  }

  /**
   * Facts for a link message. Reading `driver`, `busInfo` or `pci` may throw KernelError
   * (vanished) if the interface went away before its device was first looked at.
   */
  factsFor(link: LinkMessage): InterfaceFacts {
    return new LinkFacts(link, () => {
      let device = this.devices.get(link.ifindex);
      if (!device) {
        device = this.readDevice(link);
        this.devices.set(link.ifindex, device);
      }
      return device;
    });
  }

  forget(ifindex: number): void {
    this.devices.delete(ifindex);
  }

  private readDevice(link: LinkMessage): DeviceFacts {
    const mayHaveDevice = !this.trustParentAttribute || link.parentDevice !== null;
    const sysfs = mayHaveDevice ? readSysfsDevice(this.sysfsRoot, link.name, link.ifindex) : null;
    if (sysfs === null && this.trustParentAttribute && link.parentDevice !== null) {
      // The kernel says there is a device, but sysfs has none under this name: renamed or gone
      // meanwhile. Caching "no device" would leave a driver-matched NIC unmanaged for good.
      throw new KernelError('ENODEV', ENODEV, 'sysfs', `${link.name} has no device in sysfs although the kernel reports one: renamed or removed meanwhile`, link.name);
    }
    if (sysfs?.driver) return { driver: sysfs.driver, busInfo: sysfs.busInfo, pci: sysfs.pci };
    // Virtual interfaces have no device in sysfs; ethtool still names their driver (veth, tun, bridge).
    let driverInfo: { driver: string; busInfo: string } | null = null;
    try {
      driverInfo = addon.driverInfo(link.name, link.ifindex);
    } catch (error) {
      if (error instanceof KernelError && error.vanished) throw error;
      // EOPNOTSUPP (lo, some virtual devices): no driver to match, nothing to say. Anything
      // else (EPERM under a seccomp filter, EIO from a wedged driver) would silently turn a
      // driver-matched NIC into an unmanaged one: say so.
      const quiet = error instanceof KernelError && (error.code === 'EOPNOTSUPP' || error.code === 'ENOTSUP');
      if (!quiet) this.onReadProblem('cannot read the driver (ETHTOOL_GDRVINFO); rules that match on driver will not match it', link, error as Error);
      driverInfo = null;
    }
    return {
      driver: driverInfo?.driver || null,
      busInfo: sysfs?.busInfo ?? (driverInfo?.busInfo || null),
      pci: sysfs?.pci ?? null,
    };
  }
}

/** Driver and PCI id for logs and records, or nulls when the interface vanished before they were read. */
export function knownDevice(facts: Partial<InterfaceFacts>): { driver: string | null; pci: PciId | null } {
  try {
    return { driver: facts.driver ?? null, pci: facts.pci ?? null };
  } catch {
    return { driver: null, pci: null };
  }
}
