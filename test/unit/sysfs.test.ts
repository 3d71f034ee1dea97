/**
 * Device facts from a sysfs tree: names are reused, so facts are only taken from the interface
 * the caller means (its ifindex), never from whoever holds the name now. No root, no kernel.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KernelError } from '../../src/errors';
import { readSysfsDevice } from '../../src/facts/sysfs';

describe('sysfs device facts', () => {
  let root: string;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-sysfs-'));
    const device = path.join(root, 'devices', 'pci0000:00', '0000:3b:00.0');
    const driver = path.join(root, 'bus', 'pci', 'drivers', 'bnxt_en');
    const netdev = path.join(device, 'net', 'ens1f0np0');
    fs.mkdirSync(netdev, { recursive: true });
    fs.mkdirSync(driver, { recursive: true });
    fs.writeFileSync(path.join(device, 'vendor'), '0x14e4\n');
    fs.writeFileSync(path.join(device, 'device'), '0x1750\n');
    fs.symlinkSync(driver, path.join(device, 'driver'));
    fs.symlinkSync(device, path.join(netdev, 'device'));
    fs.writeFileSync(path.join(netdev, 'ifindex'), '7\n');
    // As in the real /sys: class/net/NAME is a link to the netdev's directory.
    fs.mkdirSync(path.join(root, 'class', 'net'), { recursive: true });
    fs.symlinkSync(netdev, path.join(root, 'class', 'net', 'ens1f0np0'));
  });
  afterEach(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('reads the device of the interface that holds the name', () => {
    const facts = readSysfsDevice(root, 'ens1f0np0', 7);
    assert.equal(facts?.driver, 'bnxt_en');
    assert.equal(facts?.busInfo, '0000:3b:00.0');
    assert.deepEqual([facts?.pci?.vendor, facts?.pci?.device], ['14e4', '1750']);
  });

  it('refuses facts when the name now belongs to another ifindex (renamed meanwhile)', () => {
    assert.throws(
      () => readSysfsDevice(root, 'ens1f0np0', 8),
      (error: unknown) =>
        error instanceof KernelError && error.vanished && /now names ifindex 7, not 8/.test(error.message),
    );
  });

  it('answers null for a name with no entry (a virtual link not presented in the tree)', () => {
    assert.equal(readSysfsDevice(root, 'veth0', 3), null);
  });

  it('reads the device of an interface whose name is not UTF-8, by the bytes behind its C-escaped name (issue 20 #11)', () => {
    const device = path.join(root, 'devices', 'pci0000:00', '0000:3b:00.0');
    const bytes = Buffer.from([0x70, 0xe9, 0x5c, 0x31]); // p, a latin1 é, a backslash, 1
    const netdev = Buffer.concat([Buffer.from(path.join(device, 'net') + '/'), bytes]);
    fs.mkdirSync(netdev);
    fs.symlinkSync(device, Buffer.concat([netdev, Buffer.from('/device')]));
    fs.writeFileSync(Buffer.concat([netdev, Buffer.from('/ifindex')]), '9\n');
    fs.symlinkSync(netdev, Buffer.concat([Buffer.from(path.join(root, 'class', 'net') + '/'), bytes]));
    const facts = readSysfsDevice(root, 'p\\xe9\\\\1', 9);
    assert.equal(facts?.driver, 'bnxt_en');
    assert.equal(facts?.busInfo, '0000:3b:00.0');
    assert.throws(
      () => readSysfsDevice(root, 'p\\xe9\\\\1', 10),
      (error: unknown) => error instanceof KernelError && error.vanished,
    );
    assert.equal(readSysfsDevice(root, 'p\\xe8\\\\1', 9), null, 'another name');
    assert.equal(readSysfsDevice(root, 'p\\q', 9), null, 'no shown name');
  });

  it('without ifindex files (a test tree) takes the facts unchecked', () => {
    fs.rmSync(path.join(root, 'devices', 'pci0000:00', '0000:3b:00.0', 'net', 'ens1f0np0', 'ifindex'));
    assert.equal(readSysfsDevice(root, 'ens1f0np0', 8)?.driver, 'bnxt_en');
  });
});
