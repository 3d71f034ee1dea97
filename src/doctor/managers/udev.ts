/**
 * udev rules that run ethtool: `RUN+="/usr/sbin/ethtool -K %k gro off"` with the interface taken
 * from the rule's own match (KERNEL==, NAME==, ATTR{address}==, DRIVERS==) when the command
 * names it as %k / $kernel / $name, else the name the command gives.
 */
import { anyTarget, type ManagerSetting, type ManagerTarget } from './types';
import { ethtoolFeatureCommands, shellWords, type ConfigReader } from './reader';

export const UDEV_RULES_DIRS = ['/etc/udev/rules.d', '/run/udev/rules.d', '/usr/lib/udev/rules.d', '/lib/udev/rules.d'];
const SELF = new Set(['%k', '$kernel', '$name', '%n', '$env{INTERFACE}']);

interface Pair {
  key: string;
  op: string;
  value: string;
}

function pairs(line: string): Pair[] {
  const found: Pair[] = [];
  const pattern = /([A-Za-z_]+(?:\{[^}]*\})?)\s*(==|!=|\+=|-=|:=|=)\s*"((?:[^"\\]|\\.)*)"/g;
  for (let match = pattern.exec(line); match; match = pattern.exec(line)) {
    found.push({ key: match[1] as string, op: match[2] as string, value: match[3] as string });
  }
  return found;
}

/** udev's "a|b" alternatives in a match value. */
function alternatives(value: string): string[] {
  return value.split('|').filter(Boolean);
}

function targetOf(rule: Pair[]): ManagerTarget {
  const target = anyTarget();
  for (const { key, op, value } of rule) {
    if (op !== '==' && op !== '!=') continue;
    const values = op === '!=' ? [`!${value}`] : alternatives(value);
    if (key === 'KERNEL' || key === 'NAME') target.names = values;
    else if (key === 'ATTR{address}' || key === 'ATTRS{address}') target.macs = values.map((mac) => mac.toLowerCase());
    else if (key === 'DRIVERS' || key === 'DRIVER' || key === 'ENV{ID_NET_DRIVER}') target.drivers = values;
    else if (key !== 'SUBSYSTEM' && key !== 'ACTION') target.unevaluated.push(`${key}${op}"${value}"`);
  }
  return target;
}

export function parseRules(file: string, text: string): ManagerSetting[] {
  const settings: ManagerSetting[] = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const first = index;
    let line = lines[index] as string;
    while (line.endsWith('\\') && index + 1 < lines.length) line = line.slice(0, -1) + (lines[++index] as string);
    if (line.trim().startsWith('#')) continue;
    const rule = pairs(line);
    for (const run of rule.filter((pair) => pair.key.startsWith('RUN'))) {
      for (const command of ethtoolFeatureCommands(shellWords(run.value))) {
        const target = SELF.has(command.ifname) ? targetOf(rule) : { ...anyTarget(), names: [command.ifname] };
        settings.push({
          tool: 'udev',
          file,
          line: first + 1,
          target,
          features: command.features.map((feature) => ({ ...feature, line: first + 1 })),
          active: true,
        });
      }
    }
  }
  return settings.filter((setting) => setting.features.length > 0);
}

export function readUdevRules(reader: ConfigReader): ManagerSetting[] {
  return reader.layered(UDEV_RULES_DIRS, '.rules').flatMap((file) => {
    const text = reader.read(file);
    return text === null ? [] : parseRules(file, text);
  });
}
