/** PCI identity of the device behind an interface, as the four hex ids in sysfs (lower case, no 0x). */
export interface PciId {
  vendor: string;
  device: string;
  subsystemVendor: string | null;
  subsystemDevice: string | null;
}

/**
 * What a link message says about an interface (rtnetlink): free, since the message is at hand.
 * Policy matching asks for nothing more unless a rule that could match needs the device.
 */
export interface LinkFacts {
  ifindex: number;
  name: string;
  /** rtnetlink IFLA_INFO_KIND: "veth", "bridge", "macvlan", "tun", ...; null for a physical device. */
  kind: string | null;
  /** Lower case, colon separated; null for devices without a link-layer address. */
  mac: string | null;
  /** IFF_UP: administratively up. */
  up: boolean;
  /** RFC 2863 operstate as the kernel names it: "up", "down", "unknown", ... */
  operstate: string;
  /** ifindex of the master (bridge, bond) or null. */
  master: number | null;
}

/** What the device behind an interface is: sysfs (under a configurable root) and ETHTOOL_GDRVINFO. */
export interface DeviceFacts {
  /** Kernel driver: the sysfs driver link of the device, else ethtool's GDRVINFO driver. */
  driver: string | null;
  /** Bus address, e.g. "0000:3b:00.0" (PCI), from sysfs or GDRVINFO. */
  busInfo: string | null;
  pci: PciId | null;
}

/** Everything known about one interface at one moment. */
export interface InterfaceFacts extends LinkFacts, DeviceFacts {}
