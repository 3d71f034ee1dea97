/**
 * ifupdown: `offload-gro off` (the ethtool package's if-up hook) and `post-up ethtool -K ...`
 * lines (Proxmox's recipe) inside an `iface NAME ...` stanza of /etc/network/interfaces or a file
 * of /etc/network/interfaces.d.
 */
import { anyTarget, type ManagerSetting } from './types';
import { ethtoolFeatureCommands, shellWords, type ConfigReader } from './reader';

export const INTERFACES_FILE = '/etc/network/interfaces';
export const INTERFACES_DIR = '/etc/network/interfaces.d';
const STANZA_STARTS = new Set(['iface', 'auto', 'allow-hotplug', 'mapping', 'source', 'source-directory']);
const COMMAND_OPTIONS = new Set(['pre-up', 'up', 'post-up']);

export function parseInterfaces(file: string, text: string): ManagerSetting[] {
  const settings: ManagerSetting[] = [];
  let current: ManagerSetting | null = null;
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  lines.forEach((raw, index) => {
    const words = shellWords(raw.replace(/#.*$/, ''));
    const keyword = words[0];
    if (keyword === undefined) return;
    if (STANZA_STARTS.has(keyword)) {
      current = null;
      if (keyword === 'iface' && words[1]) {
        current = {
          tool: 'ifupdown',
          file,
          line: index + 1,
          target: { ...anyTarget(), names: [words[1]] },
          features: [],
          active: true,
        };
        settings.push(current);
      }
      return;
    }
    if (current === null) return;
    const stanza: ManagerSetting = current;
    const offload = /^offload-(.+)$/.exec(keyword);
    if (offload?.[1] && (words[1] === 'on' || words[1] === 'off')) {
      stanza.features.push({ name: offload[1], on: words[1] === 'on', line: index + 1 });
    } else if (COMMAND_OPTIONS.has(keyword)) {
      for (const command of ethtoolFeatureCommands(words.slice(1))) {
        // $IFACE is the stanza's interface; another name is a change on that other interface.
        const name = command.ifname === '$IFACE' || command.ifname === '${IFACE}' ? null : command.ifname;
        if (name && name !== stanza.target.names?.[0]) {
          settings.push({
            ...stanza,
            line: index + 1,
            target: { ...anyTarget(), names: [name] },
            features: command.features.map((feature) => ({ ...feature, line: index + 1 })),
          });
        } else {
          for (const feature of command.features) stanza.features.push({ ...feature, line: index + 1 });
        }
      }
    }
  });
  return settings.filter((setting) => setting.features.length > 0);
}

export function readIfupdown(reader: ConfigReader): ManagerSetting[] {
  const files = [
    INTERFACES_FILE,
    ...reader
      .list(INTERFACES_DIR)
      .filter((name) => /^[\w.-]+$/.test(name))
      .map((name) => `${INTERFACES_DIR}/${name}`),
  ];
  return files.flatMap((file) => {
    const text = reader.read(file);
    return text === null ? [] : parseInterfaces(file, text);
  });
}
