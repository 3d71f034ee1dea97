/**
 * NetworkManager keyfiles: `[ethtool] feature-gro=false` in a connection profile, applied to the
 * interface the profile binds to (`[connection] interface-name=`, `[ethernet] mac-address=`,
 * `[match] interface-name=` / `driver=`). A profile bound to nothing may apply to any interface.
 */
import { anyTarget, type ManagerSetting } from './types';
import { parseBoolean, parseIni, type ConfigReader } from './reader';

export const NETWORKMANAGER_DIRS = ['/etc/NetworkManager/system-connections', '/run/NetworkManager/system-connections'];

/** NetworkManager writes lists with ; or , separators. */
function list(value: string): string[] {
  return value
    .split(/[;,]/)
    .map((item) => item.trim())
    .filter(Boolean);
}

export function parseKeyfile(file: string, text: string): ManagerSetting | null {
  const setting: ManagerSetting = {
    tool: 'NetworkManager',
    file,
    line: 1,
    target: anyTarget(),
    features: [],
    active: true,
  };
  for (const entry of parseIni(text)) {
    if (entry.section === 'ethtool' && entry.key.startsWith('feature-')) {
      const on = parseBoolean(entry.value);
      // "ignore" (or an empty value) leaves the feature alone.
      if (on !== null) setting.features.push({ name: entry.key.slice('feature-'.length), on, line: entry.line });
    } else if ((entry.section === 'connection' || entry.section === 'match') && entry.key === 'interface-name') {
      setting.target.names = [...(setting.target.names ?? []), ...list(entry.value)];
      setting.line = entry.line;
    } else if (entry.section === 'ethernet' && entry.key === 'mac-address') {
      setting.target.macs = [entry.value.toLowerCase()];
    } else if (entry.section === 'match' && entry.key === 'driver') {
      setting.target.drivers = list(entry.value);
    } else if (entry.section === 'match' && entry.key === 'path') {
      setting.target.unevaluated.push('match.path');
    }
  }
  return setting.features.length > 0 ? setting : null;
}

export function readNetworkManager(reader: ConfigReader): ManagerSetting[] {
  return NETWORKMANAGER_DIRS.flatMap((dir) =>
    reader
      .list(dir)
      .filter((name) => name.endsWith('.nmconnection'))
      .map((name) => {
        const file = `${dir}/${name}`;
        const text = reader.read(file);
        return text === null ? null : parseKeyfile(file, text);
      })
      .filter((setting): setting is ManagerSetting => setting !== null),
  );
}
