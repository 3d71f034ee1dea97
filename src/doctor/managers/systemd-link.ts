/**
 * systemd .link files, as udev's net_setup_link reads them: all files from /etc, /run and
 * /usr/lib (a name in an earlier directory masks it in a later one), in file-name order; for each
 * interface the first file whose [Match] section matches is the one applied.
 */
import { anyTarget, type ManagerSetting } from './types';
import { parseBoolean, parseIni, type ConfigReader } from './reader';

export const LINK_DIRS = [
  '/etc/systemd/network',
  '/run/systemd/network',
  '/usr/lib/systemd/network',
  '/lib/systemd/network',
];

/** [Link] keys → ethtool/kernel feature names (systemd.link(5)). */
export const LINK_FEATURE_KEYS: Readonly<Record<string, string>> = {
  ReceiveChecksumOffload: 'rx',
  TransmitChecksumOffload: 'tx',
  TCPSegmentationOffload: 'tx-tcp-segmentation',
  TCP6SegmentationOffload: 'tx-tcp6-segmentation',
  GenericSegmentationOffload: 'gso',
  GenericReceiveOffload: 'gro',
  GenericReceiveOffloadHardware: 'rx-gro-hw',
  LargeReceiveOffload: 'lro',
  ReceiveVLANCTAGHardwareAcceleration: 'rxvlan',
  TransmitVLANCTAGHardwareAcceleration: 'txvlan',
  ReceiveVLANCTAGFilter: 'rx-vlan-filter',
  TransmitVLANSTAGHardwareAcceleration: 'tx-vlan-stag-hw-insert',
  NTupleFilter: 'ntuple',
  TCPSegmentationOffloadIPv4: 'tx-tcp-segmentation',
};

/** [Match] keys the facts cannot answer: such a file "may match". */
const UNEVALUATED_MATCH_KEYS = [
  'Path',
  'Property',
  'Host',
  'Virtualization',
  'KernelCommandLine',
  'KernelVersion',
  'Credential',
  'Architecture',
  'Firmware',
];

function words(value: string): string[] {
  return value.split(/\s+/).filter(Boolean);
}

export function parseLinkFile(file: string, text: string, order: number): ManagerSetting {
  const setting: ManagerSetting = {
    tool: 'systemd .link',
    file,
    line: 1,
    target: anyTarget(),
    features: [],
    active: true,
    order,
  };
  for (const entry of parseIni(text)) {
    if (entry.section === 'Match') {
      if (setting.line === 1) setting.line = entry.line;
      // An empty assignment resets the list, as in systemd.
      const values = words(entry.value);
      if (entry.key === 'OriginalName' || entry.key === 'Name')
        setting.target.names = values.length ? [...(setting.target.names ?? []), ...values] : null;
      else if (entry.key === 'MACAddress' || entry.key === 'PermanentMACAddress')
        setting.target.macs = values.map((mac) => mac.toLowerCase());
      else if (entry.key === 'Driver') setting.target.drivers = values;
      else if (entry.key === 'Kind') setting.target.kinds = values;
      else if (entry.key === 'Type') {
        // Type=ether is every Ethernet device, virtual or not: only "kind" distinguishes them here.
        if (!values.every((type) => type === 'ether')) setting.target.unevaluated.push(`Type=${entry.value}`);
      } else if (UNEVALUATED_MATCH_KEYS.includes(entry.key))
        setting.target.unevaluated.push(`${entry.key}=${entry.value}`);
    } else if (entry.section === 'Link') {
      const feature = LINK_FEATURE_KEYS[entry.key];
      const on = parseBoolean(entry.value);
      if (feature && on !== null) setting.features.push({ name: feature, on, line: entry.line });
    }
  }
  return setting;
}

/** Every .link file in udev's order, including those that set no feature (they still win a match). */
export function readLinkFiles(reader: ConfigReader): ManagerSetting[] {
  return reader
    .layered(LINK_DIRS, '.link')
    .map((file, order) => {
      const text = reader.read(file);
      return text === null ? null : parseLinkFile(file, text, order);
    })
    .filter((setting): setting is ManagerSetting => setting !== null);
}
