/**
 * Device facts from sysfs, under a configurable root with the real layout, so a test can present
 * any interface as, say, a 14e4:1750 bnxt_en port:
 *   ROOT/class/net/IF/device          -> the device directory (e.g. .../0000:3b:00.0)
 *   ROOT/class/net/IF/device/vendor   "0x14e4"   (also device, subsystem_vendor, subsystem_device)
 *   ROOT/class/net/IF/device/driver   -> .../drivers/bnxt_en
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PciId } from './types';

export const DEFAULT_SYSFS_ROOT = '/sys';

export interface SysfsDeviceFacts {
  /** Basename of the device directory: the bus address ("0000:3b:00.0"). */
  busInfo: string;
  /** Basename of the `driver` link, when bound. */
  driver: string | null;
  /** When the device directory has PCI ids. */
  pci: PciId | null;
}

function readHexId(file: string): string | null {
  try {
    const text = fs.readFileSync(file, 'latin1').trim().toLowerCase();
    const id = text.startsWith('0x') ? text.slice(2) : text;
    return /^[0-9a-f]{1,4}$/.test(id) ? id.padStart(4, '0') : null;
  } catch {
    return null;
  }
}

function readLinkBasename(file: string): string | null {
  try {
    return path.basename(fs.readlinkSync(file));
  } catch {
    return null;
  }
}

/**
 * The device behind a network interface, or null for a purely virtual interface (no `device`
 * link) or one that vanished meanwhile.
 */
export function readSysfsDevice(sysfsRoot: string, ifname: string): SysfsDeviceFacts | null {
  const deviceLink = path.join(sysfsRoot, 'class', 'net', ifname, 'device');
  // Most interfaces on a hypervisor are virtual (no `device` link); existsSync answers that
  // without the cost of a thrown ENOENT, which dominated hot-plug bursts.
  if (!fs.existsSync(deviceLink)) return null;
  const busInfo = readLinkBasename(deviceLink);
  if (busInfo === null) return null;
  const vendor = readHexId(path.join(deviceLink, 'vendor'));
  const device = readHexId(path.join(deviceLink, 'device'));
  return {
    busInfo,
    driver: readLinkBasename(path.join(deviceLink, 'driver')),
    pci: vendor !== null && device !== null
      ? {
          vendor,
          device,
          subsystemVendor: readHexId(path.join(deviceLink, 'subsystem_vendor')),
          subsystemDevice: readHexId(path.join(deviceLink, 'subsystem_device')),
        }
      : null,
  };
}
