/**
 * Interface facts = what the link message says (name, kind, MAC, state, master) + what the
 * device is (driver, bus, PCI ids). The device part cannot change while an ifindex lives
 * (a driver rebind re-registers the netdev under a new ifindex), so it is read once per ifindex
 * and cached; link events then cost no file system access.
 */
import { addon } from '../addon/binding';
import { KernelError } from '../errors';
import type { LinkMessage } from '../events/link-message';
import { readSysfsDevice } from './sysfs';
import type { InterfaceFacts, PciId } from './types';

interface DeviceFacts {
  driver: string | null;
  busInfo: string | null;
  pci: PciId | null;
}

export class InterfaceFactsSource {
  private readonly devices = new Map<number, DeviceFacts>();

  constructor(readonly sysfsRoot: string) {}

  /** Facts for a link message. Throws KernelError (vanished) only if the interface went away. */
  factsFor(link: LinkMessage): InterfaceFacts {
    let device = this.devices.get(link.ifindex);
    if (!device) {
      device = this.readDevice(link);
      this.devices.set(link.ifindex, device);
    }
    return {
      ifindex: link.ifindex,
      name: link.name,
      kind: link.kind,
      mac: link.mac,
      up: link.up,
      operstate: link.operstate,
      master: link.master,
      driver: device.driver,
      busInfo: device.busInfo,
      pci: device.pci,
    };
  }

  forget(ifindex: number): void {
    this.devices.delete(ifindex);
  }

  forgetAll(): void {
    this.devices.clear();
  }

  private readDevice(link: LinkMessage): DeviceFacts {
    const sysfs = readSysfsDevice(this.sysfsRoot, link.name);
    if (sysfs?.driver) return { driver: sysfs.driver, busInfo: sysfs.busInfo, pci: sysfs.pci };
    // Virtual interfaces have no device in sysfs; ethtool still names their driver (veth, tun, bridge).
    let driverInfo: { driver: string; busInfo: string } | null = null;
    try {
      driverInfo = addon.driverInfo(link.name, link.ifindex);
    } catch (error) {
      if (error instanceof KernelError && error.vanished) throw error;
      driverInfo = null; // EOPNOTSUPP (lo, some virtual devices): no driver to match
    }
    return {
      driver: driverInfo?.driver || null,
      busInfo: sysfs?.busInfo ?? (driverInfo?.busInfo || null),
      pci: sysfs?.pci ?? null,
    };
  }
}
