/**
 * Interface facts = what the link message says (name, kind, MAC, state, master: LinkFacts, no
 * I/O) + what the device is (driver, bus, PCI ids: DeviceFacts, sysfs and an ioctl). The device
 * part cannot change while an ifindex lives (a driver rebind re-registers the netdev under a new
 * ifindex), so it is read once per ifindex, and only when asked for: the matcher says when it
 * needs it (NEEDS_DEVICE), so a rule that matches by name never costs a sysfs look-up or a
 * GDRVINFO ioctl for the many interfaces it does not match. This is the one place where reading
 * device facts can fail.
 */
import * as os from 'node:os';
import { addon } from '../addon/binding';
import { KernelError } from '../errors';
import { readLink } from '../events/link-events';
import type { LinkMessage } from '../events/link-message';
import { DEFAULT_SYSFS_ROOT, readSysfsDevice } from './sysfs';
import type { DeviceFacts, LinkFacts } from './types';

/**
 * Virtual kinds whose driver ETHTOOL_GDRVINFO names exactly as the link message's IFLA_INFO_KIND,
 * with an empty bus: their driver is taken from the message instead of an ioctl per interface
 * (test/kernel/interface-facts.test.ts compares both). Not here: tun (bus "tap" or "tun" by
 * mode), bridge (bus "N/A"), macvtap (driver "macvlan").
 */
export const DRIVER_NAMED_BY_KIND: ReadonlySet<string> = new Set(['veth', 'macvlan', 'vxlan', 'ifb']);

/** For an interface whose device could not be read (it vanished meanwhile). */
export const UNKNOWN_DEVICE: DeviceFacts = Object.freeze({ driver: null, busInfo: null, pci: null });

/** Since 5.13 link messages carry IFLA_PARENT_DEV_NAME whenever the netdev has a parent device. */
function kernelReportsParentDevice(release = os.release()): boolean {
  const [major = 0, minor = 0] = release.split('.').map((part) => Number.parseInt(part, 10));
  return major > 5 || (major === 5 && minor >= 13);
}

/** What the link message says: no I/O. */
export function linkFactsOf(link: LinkMessage): LinkFacts {
  return {
    ifindex: link.ifindex,
    name: link.name,
    kind: link.kind,
    mac: link.mac,
    up: link.up,
    operstate: link.operstate,
    master: link.master,
  };
}

/** Device facts for link messages: from sysfs and the kernel (InterfaceFactsSource) or a test's fake. */
export interface FactsSource {
  /**
   * The device behind the link, read on first request and kept for the ifindex's life. Throws
   * KernelError (vanished) when the interface went away or was renamed before it could be read.
   */
  device(link: LinkMessage): DeviceFacts;
  /**
   * True when the link message alone shows there is no device behind the link (no PCI id, no
   * bus): the kernel names a parent device in every link message that has one (5.13+). Such a
   * link's driver, if any, is a virtual one (tun, veth), known only by asking (GDRVINFO).
   */
  hasNoDevice?(link: LinkMessage): boolean;
  /** The link is gone: drop what is cached for its ifindex. */
  forget(ifindex: number): void;
  /**
   * Whether the kernel still has a link with this ifindex and name: asked when a call about it
   * failed as if it had vanished (ENODEV), which should then not be believed.
   */
  stillPresent?(link: LinkMessage): boolean;
}

export class InterfaceFactsSource implements FactsSource {
  private readonly devices = new Map<number, DeviceFacts>();
  /**
   * With the real /sys on a kernel that names parent devices in link messages, a link without
   * one has no `device` in sysfs: no need to look. A substitute root (tests, containers) is
   * always looked at, since it may present any interface as any device.
   */
  readonly trustParentAttribute: boolean;

  constructor(
    readonly sysfsRoot: string,
    /** A device fact could not be read for a reason other than the link vanishing: for logs. */
    private readonly onReadProblem: (message: string, link: LinkMessage, error: Error) => void = () => undefined,
  ) {
    this.trustParentAttribute = sysfsRoot === DEFAULT_SYSFS_ROOT && kernelReportsParentDevice();
  }

  device(link: LinkMessage): DeviceFacts {
    let device = this.devices.get(link.ifindex);
    if (!device) {
      device = this.readDevice(link);
      this.devices.set(link.ifindex, device);
    }
    return device;
  }

  hasNoDevice(link: LinkMessage): boolean {
    return this.trustParentAttribute && link.parentDevice === null;
  }

  forget(ifindex: number): void {
    this.devices.delete(ifindex);
  }

  stillPresent(link: LinkMessage): boolean {
    return readLink(link.ifindex)?.name === link.name;
  }

  private readDevice(link: LinkMessage): DeviceFacts {
    const mayHaveDevice = !this.trustParentAttribute || link.parentDevice !== null;
    const sysfs = mayHaveDevice ? readSysfsDevice(this.sysfsRoot, link.name, link.ifindex) : null;
    if (sysfs === null && this.trustParentAttribute && link.parentDevice !== null) {
      // The kernel says there is a device, but sysfs has none under this name: renamed or gone
      // meanwhile. Caching "no device" would leave a driver-matched NIC unmanaged for good.
      throw new KernelError(
        'ENODEV',
        os.constants.errno.ENODEV,
        'sysfs',
        `${link.name} has no device in sysfs although the kernel reports one: renamed or removed meanwhile`,
        link.name,
      );
    }
    if (sysfs?.driver) return { driver: sysfs.driver, busInfo: sysfs.busInfo, pci: sysfs.pci };
    if (link.kind !== null && DRIVER_NAMED_BY_KIND.has(link.kind))
      return { driver: link.kind, busInfo: sysfs?.busInfo ?? null, pci: sysfs?.pci ?? null };
    // Virtual interfaces have no device in sysfs; ethtool still names their driver (veth, tun, bridge).
    let driverInfo: { driver: string; busInfo: string } | null = null;
    try {
      driverInfo = addon.driverInfo(link.name, link.ifindex);
    } catch (error) {
      if (error instanceof KernelError && error.vanished) throw error;
      // EOPNOTSUPP (lo, some virtual devices): no driver to match, nothing to say. Anything
      // else (EPERM under a seccomp filter, EIO from a wedged driver) would silently turn a
      // driver-matched NIC into an unmanaged one: say so.
      const quiet = error instanceof KernelError && ['EOPNOTSUPP', 'ENOTSUP', 'ENOTSUPP'].includes(error.code);
      if (!quiet)
        this.onReadProblem(
          'cannot read the driver (ETHTOOL_GDRVINFO); rules that match on driver will not match it',
          link,
          error as Error,
        );
      driverInfo = null;
    }
    return {
      driver: driverInfo?.driver || null,
      busInfo: sysfs?.busInfo ?? (driverInfo?.busInfo || null),
      pci: sysfs?.pci ?? null,
    };
  }
}
