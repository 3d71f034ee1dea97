/**
 * Reads configuration files under a root directory (`--root DIR`, like systemd-analyze --root):
 * every path is the host's path, prefixed with the root. A missing or unreadable file or
 * directory is simply absent.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** A configuration file bigger than this is not configuration: it is read only this far. */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;
/** More files than this in one configuration directory are not read. */
export const MAX_FILES_PER_DIRECTORY = 4096;

export class ConfigReader {
  constructor(readonly root = '/') {}

  /** The file's text, or null when it does not exist or cannot be read. */
  read(file: string): string | null {
    try {
      const full = path.join(this.root, file);
      if (!fs.statSync(full).isFile()) return null;
      const fd = fs.openSync(full, 'r');
      try {
        const buffer = Buffer.alloc(Math.min(fs.fstatSync(fd).size, MAX_CONFIG_FILE_BYTES));
        const length = fs.readSync(fd, buffer, 0, buffer.length, 0);
        return buffer.subarray(0, length).toString('utf8');
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      return null;
    }
  }

  /** The names of the entries of `dir`, sorted, or none. */
  list(dir: string): string[] {
    try {
      return fs.readdirSync(path.join(this.root, dir)).sort().slice(0, MAX_FILES_PER_DIRECTORY);
    } catch {
      return [];
    }
  }

  /**
   * Files named `*suffix` in `dirs`, in the order udev and systemd use: sorted by file name over
   * all directories, a name in an earlier directory masking the same name in a later one.
   */
  layered(dirs: readonly string[], suffix: string): string[] {
    const byName = new Map<string, string>();
    for (const dir of dirs) {
      for (const name of this.list(dir)) {
        if (name.endsWith(suffix) && !byName.has(name)) byName.set(name, path.posix.join(dir, name));
      }
    }
    return [...byName.keys()].sort().map((name) => byName.get(name) as string);
  }
}

/** An INI-style file (NetworkManager keyfiles, .link files, tuned.conf) as sections of keys with lines. */
export interface IniEntry {
  section: string;
  key: string;
  value: string;
  line: number;
}

export function parseIni(text: string): IniEntry[] {
  const entries: IniEntry[] = [];
  let section = '';
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const header = /^\[(.+)\]$/.exec(line);
    if (header?.[1]) {
      section = header[1].trim();
      return;
    }
    const equals = line.indexOf('=');
    if (equals <= 0) return;
    entries.push({ section, key: line.slice(0, equals).trim(), value: line.slice(equals + 1).trim(), line: index + 1 });
  });
  return entries;
}

/** yes/no/true/false/on/off/1/0 as systemd, NetworkManager and tuned read them; null otherwise. */
export function parseBoolean(value: string): boolean | null {
  const word = value.trim().toLowerCase();
  if (['1', 'yes', 'y', 'true', 't', 'on'].includes(word)) return true;
  if (['0', 'no', 'n', 'false', 'f', 'off'].includes(word)) return false;
  return null;
}

/** Splits a shell-like command line into words (single and double quotes, backslash escapes). */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let current = '';
  let quote: string | null = null;
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const char = line[i] as string;
    if (quote) {
      if (char === quote) quote = null;
      else if (char === '\\' && quote === '"' && i + 1 < line.length) current += line[++i];
      else current += char;
    } else if (char === "'" || char === '"') {
      quote = char;
      inWord = true;
    } else if (char === '\\' && i + 1 < line.length) {
      current += line[++i];
      inWord = true;
    } else if (/\s/.test(char) || char === ';') {
      if (inWord) words.push(current);
      if (char === ';') words.push(';');
      current = '';
      inWord = false;
    } else {
      current += char;
      inWord = true;
    }
  }
  if (inWord) words.push(current);
  return words;
}

export interface EthtoolFeaturesCommand {
  ifname: string;
  features: Array<{ name: string; on: boolean }>;
}

const ETHTOOL_FEATURE_OPTIONS = new Set(['-K', '--features', '--offload']);

/** Every `ethtool -K IFACE name on|off ...` in a list of words (several may be joined by `;`). */
export function ethtoolFeatureCommands(words: readonly string[]): EthtoolFeaturesCommand[] {
  const commands: EthtoolFeaturesCommand[] = [];
  for (let i = 0; i < words.length; i++) {
    if (!ETHTOOL_FEATURE_OPTIONS.has(words[i] as string)) continue;
    const ifname = words[i + 1];
    if (ifname === undefined) break;
    const features: Array<{ name: string; on: boolean }> = [];
    let at = i + 2;
    for (; at + 1 < words.length; at += 2) {
      const value = words[at + 1];
      if (value !== 'on' && value !== 'off') break;
      features.push({ name: words[at] as string, on: value === 'on' });
    }
    commands.push({ ifname, features });
    i = at - 1;
  }
  return commands;
}
