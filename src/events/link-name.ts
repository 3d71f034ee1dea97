/**
 * Interface names: bytes to the kernel (at most 15, anything but NUL, '/', ':' and whitespace),
 * text to everything else (policy globs, status, ledger, journal, metrics, the API). A name is
 * shown as it is when it is UTF-8 with nothing unsafe to print in it; otherwise it is C-escaped
 * as systemd's cescape() does: every byte that is not UTF-8, or belongs to a control or
 * bidirectional-override character, as \xNN, and a backslash as \\ (so `m` + 0xe9 is shown as
 * `m\xe9`). A backslash in a shown name therefore always starts an escape: two different names
 * are never shown alike, and a shown name turns back into the kernel's bytes (kernelName), which
 * is how sysfs and the ioctls are addressed. Features are addressed by ifindex anyway.
 */

/** Why a name is shown escaped: its bytes are not UTF-8, it holds an unsafe character, or a backslash. */
export type NameEscape = 'not-utf8' | 'unsafe' | 'backslash';

/**
 * Characters never printed raw (ranges of code points): C0 and C1 controls, DEL, and the Unicode
 * bidirectional overrides, which can repaint or hide parts of an operator's screen.
 */
export const UNSAFE_CODE_POINTS: ReadonlyArray<readonly [number, number]> = [
  [0x00, 0x1f],
  [0x7f, 0x9f],
  [0x202a, 0x202e],
  [0x2066, 0x2069],
];

const BACKSLASH = 0x5c;
const SEVERITY: Record<NameEscape, number> = { backslash: 1, unsafe: 2, 'not-utf8': 3 };

function isUnsafe(code: number): boolean {
  for (const [low, high] of UNSAFE_CODE_POINTS) if (code >= low && code <= high) return true;
  return false;
}

/** "\x00" ... "\xff": one look-up per escaped byte. */
const HEX_ESCAPES = Array.from({ length: 256 }, (_, byte) => `\\x${byte.toString(16).padStart(2, '0')}`);

/**
 * Length of the well-formed UTF-8 sequence at `at` (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF), or 0 when the bytes there are not one.
 */
function sequenceLength(bytes: Buffer, at: number, end: number): number {
  const lead = bytes[at] as number;
  let length: number;
  let low = 0x80;
  let high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) length = 2;
  else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead === 0xe0) low = 0xa0;
    if (lead === 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead === 0xf0) low = 0x90;
    if (lead === 0xf4) high = 0x8f;
  } else return 0;
  if (at + length > end) return 0;
  const second = bytes[at + 1] as number;
  if (second < low || second > high) return 0;
  for (let i = 2; i < length; i++) {
    const next = bytes[at + i] as number;
    if (next < 0x80 || next > 0xbf) return 0;
  }
  return length;
}

/** The name in bytes [start, end) as shown, and why it is escaped (null: shown as it is). */
export function showName(bytes: Buffer, start: number, end: number): { name: string; escaped: NameEscape | null } {
  let plain = true;
  for (let i = start; i < end; i++) {
    const byte = bytes[i] as number;
    if (byte < 0x20 || byte >= 0x7f || byte === BACKSLASH) {
      plain = false;
      break;
    }
  }
  // Nearly every name: printable ASCII, one character per byte.
  if (plain) return { name: bytes.toString('latin1', start, end), escaped: null };
  let name = '';
  let escaped: NameEscape | null = null;
  const note = (why: NameEscape): void => {
    if (escaped === null || SEVERITY[why] > SEVERITY[escaped]) escaped = why;
  };
  for (let i = start; i < end;) {
    const byte = bytes[i] as number;
    if (byte === BACKSLASH) {
      name += '\\\\';
      note('backslash');
      i++;
      continue;
    }
    const length = byte < 0x80 ? 1 : sequenceLength(bytes, i, end);
    if (length === 0) {
      name += HEX_ESCAPES[byte] as string;
      note('not-utf8');
      i++;
      continue;
    }
    const text = bytes.toString('utf8', i, i + length);
    if (isUnsafe(text.codePointAt(0) as number)) {
      for (let k = i; k < i + length; k++) name += HEX_ESCAPES[bytes[k] as number] as string;
      note('unsafe');
    } else name += text;
    i += length;
  }
  return { name, escaped };
}

/**
 * The kernel's bytes for a shown name (the inverse of showName), or null when `name` holds a
 * backslash that starts no escape (a name typed by hand, never one showName made).
 */
export function kernelName(name: string): Buffer | null {
  if (!name.includes('\\')) return Buffer.from(name, 'utf8');
  const parts: Buffer[] = [];
  let run = '';
  for (let i = 0; i < name.length; i++) {
    if (name[i] !== '\\') {
      run += name[i] as string;
      continue;
    }
    let byte: number;
    if (name[i + 1] === '\\') {
      byte = BACKSLASH;
      i += 1;
    } else if (name[i + 1] === 'x' && /^[0-9a-f]{2}$/.test(name.slice(i + 2, i + 4))) {
      byte = Number.parseInt(name.slice(i + 2, i + 4), 16);
      i += 3;
    } else return null;
    parts.push(Buffer.from(run, 'utf8'), Buffer.from([byte]));
    run = '';
  }
  parts.push(Buffer.from(run, 'utf8'));
  return Buffer.concat(parts);
}

/**
 * A name as a person or a script gave it (`offloadctl show`, `drift --interface`), in the form
 * every output shows: an already shown name stays as it is, a raw one (an escape character, a
 * lone backslash) is shown as showName would show it.
 */
export function asShownName(text: string): string {
  const bytes = kernelName(text);
  if (bytes !== null && showName(bytes, 0, bytes.length).name === text) return text;
  const raw = Buffer.from(text, 'utf8');
  return showName(raw, 0, raw.length).name;
}

/** How the warning about a name shown escaped explains it. */
export function describeNameEscape(name: string, escaped: NameEscape): string {
  const why =
    escaped === 'not-utf8'
      ? 'is not UTF-8'
      : escaped === 'unsafe'
        ? 'holds control or bidirectional-override characters'
        : 'holds a backslash';
  return `interface name ${why}; it is shown C-escaped as ${name} (\\xNN for such a byte, \\\\ for a backslash), which is the name policy globs, offloadctl and the ledger use; it is managed by ifindex`;
}
