/**
 * Words for the commands the doctor suggests: an interface name is whatever the kernel accepted
 * (`m;id>x` included), so each one is quoted for a POSIX shell before it goes into a command the
 * operator may paste.
 */

/** Characters that mean nothing to a POSIX shell: such a word is left as it is. */
const PLAIN_WORD = /^[A-Za-z0-9_.,:@%+=/-]+$/;

/** `word` as one POSIX shell word: unchanged when plain, else single-quoted (' as '\''). */
export function shellQuote(word: string): string {
  if (PLAIN_WORD.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}
