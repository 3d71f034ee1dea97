/**
 * Text that comes from outside (interface names, which the kernel lets hold any byte but '/',
 * ':' and whitespace; drivers, kinds, messages quoting them) made safe to print on a terminal or
 * in a log line: C0 and C1 control characters, DEL and the Unicode bidirectional overrides are
 * shown as \xNN or \uNNNN, as systemd does. `ip link` prints them raw, so an interface named
 * with an escape sequence can repaint or hide parts of an operator's screen.
 */
import { UNSAFE_CODE_POINTS } from '../events/link-name';

/** A character class of the unsafe code points (one list, shared with how names are shown), minus `keep`. */
function unsafeClass(keep: readonly number[] = []): RegExp {
  const u = (code: number): string => `\\u${code.toString(16).padStart(4, '0')}`;
  const ranges: string[] = [];
  for (const [low, high] of UNSAFE_CODE_POINTS) {
    let from = low;
    for (let code = low; code <= high + 1; code++) {
      if (code <= high && !keep.includes(code)) continue;
      if (from < code) ranges.push(from === code - 1 ? u(from) : `${u(from)}-${u(code - 1)}`);
      from = code + 1;
    }
  }
  return new RegExp(`[${ranges.join('')}]`, 'g');
}

const UNSAFE = unsafeClass();
/** The same but tab and newline, for multi-line messages (names cannot hold whitespace). */
const UNSAFE_BUT_LINE_BREAKS = unsafeClass([0x09, 0x0a]);

function escapeCharacter(character: string): string {
  const code = character.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

export function escapeControl(text: string, options: { keepLineBreaks?: boolean } = {}): string {
  return text.replace(options.keepLineBreaks === true ? UNSAFE_BUT_LINE_BREAKS : UNSAFE, escapeCharacter);
}

/** A copy of `value` with every string in it (keys included) passed through escapeControl. */
export function escapeStrings<T>(value: T): T {
  if (typeof value === 'string') return escapeControl(value) as T;
  if (Array.isArray(value)) return value.map((item: unknown) => escapeStrings(item)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [escapeControl(key), escapeStrings(item)]),
    ) as T;
  }
  return value;
}
