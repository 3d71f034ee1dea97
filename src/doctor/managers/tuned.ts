/**
 * tuned profiles: a section of type net (`[net]`, or `type=net`) with `features=gro off gso off`
 * and `devices=` globs (a leading `!` negates). Profiles come from /etc/tuned and /usr/lib/tuned
 * (/etc wins); only the active ones (/etc/tuned/active_profile, with their `include=` chain) are
 * in use, the others are reported as installed but inactive.
 */
import { anyTarget, type ManagerSetting } from './types';
import { parseIni, shellWords, type ConfigReader } from './reader';

export const TUNED_DIRS = ['/etc/tuned', '/usr/lib/tuned'];
export const TUNED_ACTIVE_PROFILE = '/etc/tuned/active_profile';
const MAX_INCLUDE_DEPTH = 10;

export function parseTunedProfile(
  file: string,
  text: string,
  active: boolean,
): { settings: ManagerSetting[]; includes: string[] } {
  const sections = new Map<string, ManagerSetting & { isNet: boolean }>();
  const includes: string[] = [];
  for (const entry of parseIni(text)) {
    if (entry.section === 'main' && entry.key === 'include')
      includes.push(...entry.value.split(/[\s,]+/).filter(Boolean));
    if (entry.section === 'main') continue;
    let section = sections.get(entry.section);
    if (!section) {
      section = {
        tool: 'tuned',
        file,
        line: entry.line,
        target: anyTarget(),
        features: [],
        active,
        isNet: entry.section === 'net',
      };
      sections.set(entry.section, section);
    }
    if (entry.key === 'type') section.isNet = entry.value === 'net';
    else if (entry.key === 'devices')
      section.target.names = entry.value
        .split(',')
        .map((device) => device.trim())
        .filter(Boolean);
    else if (entry.key === 'devices_udev_regex') section.target.unevaluated.push(`devices_udev_regex=${entry.value}`);
    else if (entry.key === 'features') {
      const words = shellWords(entry.value);
      for (let i = 0; i + 1 < words.length; i += 2) {
        const value = words[i + 1];
        if (value === 'on' || value === 'off')
          section.features.push({ name: words[i] as string, on: value === 'on', line: entry.line });
      }
    }
  }
  const settings = [...sections.values()]
    .filter((section) => section.isNet && section.features.length > 0)
    .map(({ isNet: _isNet, ...setting }) => setting);
  return { settings, includes };
}

function profileFile(reader: ConfigReader, profile: string): string | null {
  if (!/^[\w.-]+$/.test(profile)) return null;
  for (const dir of TUNED_DIRS) {
    const file = `${dir}/${profile}/tuned.conf`;
    if (reader.read(file) !== null) return file;
  }
  return null;
}

export function readTuned(reader: ConfigReader): ManagerSetting[] {
  const active = new Set<string>();
  const pending = (reader.read(TUNED_ACTIVE_PROFILE) ?? '')
    .split(/\s+/)
    .filter(Boolean)
    .map((profile) => ({ profile, depth: 0 }));
  while (pending.length > 0) {
    const { profile, depth } = pending.shift() as { profile: string; depth: number };
    const file = profileFile(reader, profile);
    if (file === null || active.has(file) || depth > MAX_INCLUDE_DEPTH) continue;
    active.add(file);
    const text = reader.read(file) ?? '';
    for (const include of parseTunedProfile(file, text, true).includes)
      pending.push({ profile: include, depth: depth + 1 });
  }
  const installed = new Map<string, string>();
  for (const dir of TUNED_DIRS) {
    for (const profile of reader.list(dir)) {
      if (!installed.has(profile) && reader.read(`${dir}/${profile}/tuned.conf`) !== null)
        installed.set(profile, `${dir}/${profile}/tuned.conf`);
    }
  }
  return [...installed.values()].flatMap(
    (file) => parseTunedProfile(file, reader.read(file) ?? '', active.has(file)).settings,
  );
}
