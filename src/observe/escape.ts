/**
 * Text that comes from outside (interface names, which the kernel lets hold any byte but '/',
 * ':' and whitespace; drivers, kinds, messages quoting them) made safe to print on a terminal or
 * in a log line: C0 and C1 control characters, DEL and the Unicode bidirectional overrides are
 * shown as \xNN or \uNNNN, as systemd does. `ip link` prints them raw, so an interface named
 * with an escape sequence can repaint or hide parts of an operator's screen.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
/** The same but tab and newline, for multi-line messages (names cannot hold whitespace). */
// eslint-disable-next-line no-control-regex -- as above
const UNSAFE_BUT_LINE_BREAKS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

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
