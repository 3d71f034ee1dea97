/**
 * Device facts from sysfs, under a configurable root with the real layout, so a test can present
 * any interface as, say, a 14e4:1750 bnxt_en port:
 *   ROOT/class/net/IF/device          -> the device directory (e.g. .../0000:3b:00.0)
 *   ROOT/class/net/IF/device/vendor   "0x14e4"   (also device, subsystem_vendor, subsystem_device)
 *   ROOT/class/net/IF/device/driver   -> .../drivers/bnxt_en
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KernelError } from '../errors';
import { kernelName } from '../events/link-name';
import type { PciId } from './types';

/**
 * A path below an interface's directory: text, or bytes when the interface's name is shown
 * escaped (its bytes are not UTF-8, see link-name.ts); node's fs takes either.
 */
type FsPath = string | Buffer;

function join(dir: FsPath, leaf: string): FsPath {
  return typeof dir === 'string' ? path.join(dir, leaf) : Buffer.concat([dir, Buffer.from(`/${leaf}`)]);
}

export const DEFAULT_SYSFS_ROOT = '/sys';

export interface SysfsDeviceFacts {
  /** Basename of the device directory: the bus address ("0000:3b:00.0"). */
  busInfo: string;
  /** Basename of the `driver` link, when bound. */
  driver: string | null;
  /** When the device directory has PCI ids. */
  pci: PciId | null;
}

function readHexId(file: FsPath): string | null {
  try {
    const text = fs.readFileSync(file, 'latin1').trim().toLowerCase();
    const id = text.startsWith('0x') ? text.slice(2) : text;
    return /^[0-9a-f]{1,4}$/.test(id) ? id.padStart(4, '0') : null;
  } catch {
    return null;
  }
}

function readLinkBasename(file: FsPath): string | null {
  try {
    return path.basename(fs.readlinkSync(file));
  } catch {
    return null;
  }
}

/**
 * The device behind a network interface, or null for a purely virtual interface (no `device`
 * link) or one that vanished meanwhile.
 *
 * sysfs is addressed by name, and names are reused: the interface's directory is resolved once
 * and its `ifindex` compared with the one the caller means, and everything else is read below
 * that resolved directory, so a rename between the event and this read yields ENODEV (the
 * caller's "vanished") instead of another NIC's facts. A substitute root without `ifindex`
 * files (tests) cannot be checked this way.
 */
export function readSysfsDevice(sysfsRoot: string, ifname: string, ifindex?: number): SysfsDeviceFacts | null {
  let interfaceDir: FsPath;
  try {
    const classDir = path.join(sysfsRoot, 'class', 'net');
    if (ifname.includes('\\')) {
      const bytes = kernelName(ifname);
      if (bytes === null) return null; // no shown name: no interface has it
      // fs.realpathSync turns a Buffer into text on the way; the native one keeps the bytes.
      interfaceDir = fs.realpathSync.native(Buffer.concat([Buffer.from(`${classDir}/`), bytes]), {
        encoding: 'buffer',
      });
    } else interfaceDir = fs.realpathSync(path.join(classDir, ifname));
  } catch {
    return null;
  }
  const indexFile = join(interfaceDir, 'ifindex');
  const checked = ifindex !== undefined && readDecimal(indexFile) !== null;
  const stillOurs = (): void => {
    if (!checked) return;
    const current = readDecimal(indexFile);
    if (current !== ifindex) {
      const now = current === null ? 'is gone' : `now names ifindex ${current}`;
      throw new KernelError(
        'ENODEV',
        os.constants.errno.ENODEV,
        'sysfs',
        `${ifname} ${now}, not ${ifindex}: renamed meanwhile`,
        ifname,
      );
    }
  };
  stillOurs();
  const facts = readDeviceBelow(interfaceDir);
  // A rename during the reads makes them fail quietly (null): that must not be cached as "no device".
  stillOurs();
  return facts;
}

function readDeviceBelow(interfaceDir: FsPath): SysfsDeviceFacts | null {
  const deviceLink = join(interfaceDir, 'device');
  // Most interfaces on a hypervisor are virtual (no `device` link); existsSync answers that
  // without the cost of a thrown ENOENT, which dominated hot-plug bursts.
  if (!fs.existsSync(deviceLink)) return null;
  const busInfo = readLinkBasename(deviceLink);
  if (busInfo === null) return null;
  const vendor = readHexId(join(deviceLink, 'vendor'));
  const device = readHexId(join(deviceLink, 'device'));
  return {
    busInfo,
    driver: readLinkBasename(join(deviceLink, 'driver')),
    pci:
      vendor !== null && device !== null
        ? {
            vendor,
            device,
            subsystemVendor: readHexId(join(deviceLink, 'subsystem_vendor')),
            subsystemDevice: readHexId(join(deviceLink, 'subsystem_device')),
          }
        : null,
  };
}

function readDecimal(file: FsPath): number | null {
  try {
    const text = fs.readFileSync(file, 'latin1').trim();
    return /^\d+$/.test(text) ? Number(text) : null;
  } catch {
    return null;
  }
}
