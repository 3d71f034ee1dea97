/**
 * wicked (SUSE) and the RHEL network scripts: `ETHTOOL_OPTIONS='-K iface gro off'` (or
 * `ETHTOOL_OPTS`) in /etc/sysconfig/network/ifcfg-NAME or /etc/sysconfig/network-scripts/ifcfg-NAME.
 * The interface is the file's name (or `DEVICE=`); wicked accepts the word `iface` as a stand-in.
 */
import { anyTarget, type ManagerSetting } from './types';
import { ethtoolFeatureCommands, shellWords, type ConfigReader } from './reader';

export const IFCFG_DIRS = ['/etc/sysconfig/network', '/etc/sysconfig/network-scripts'];
const PLACEHOLDERS = new Set(['iface', '*']);

export function parseIfcfg(file: string, text: string): ManagerSetting | null {
  const fileName = file.slice(file.lastIndexOf('/') + 1);
  let device = fileName.slice('ifcfg-'.length);
  const setting: ManagerSetting = {
    tool: 'wicked/ifcfg',
    file,
    line: 1,
    target: anyTarget(),
    features: [],
    active: true,
  };
  text.split('\n').forEach((raw, index) => {
    const match = /^\s*(ETHTOOL_OPTIONS|ETHTOOL_OPTS|DEVICE)\s*=\s*(.*)$/.exec(raw);
    if (!match?.[1]) return;
    const value = shellWords(match[2] ?? '').join(' ');
    if (match[1] === 'DEVICE') {
      device = value;
      return;
    }
    setting.line = index + 1;
    for (const command of ethtoolFeatureCommands(shellWords(value))) {
      if (!PLACEHOLDERS.has(command.ifname)) device = command.ifname;
      for (const feature of command.features) setting.features.push({ ...feature, line: index + 1 });
    }
  });
  setting.target.names = [device];
  return setting.features.length > 0 ? setting : null;
}

export function readIfcfg(reader: ConfigReader): ManagerSetting[] {
  return IFCFG_DIRS.flatMap((dir) =>
    reader
      .list(dir)
      .filter((name) => name.startsWith('ifcfg-') && !name.endsWith('~') && !name.endsWith('.bak'))
      .map((name) => {
        const file = `${dir}/${name}`;
        const text = reader.read(file);
        return text === null ? null : parseIfcfg(file, text);
      })
      .filter((setting): setting is ManagerSetting => setting !== null),
  );
}
