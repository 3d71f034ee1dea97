/**
 * offloadctl's argument handling apart from any one command: global options before or after the
 * command, and --since's times. (Each command's own options are in offloadctl-commands.ts.)
 */

/** A command line offloadctl cannot take: exit status 2 (EXIT.usage). */
export class UsageError extends Error {}

const ZONED_TIME = /(?:[Zz]|[+-]\d{2}:?\d{2})$/;
const LOCAL_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3})\d*)?)?)?$/;

/**
 * --since as the daemon wants it (with a zone): a time with Z or an offset goes as written; a
 * local one (date, or date and time, without zone) is read in this process's zone and sent as
 * UTC, so the answer does not depend on the daemon's zone.
 */
export function sinceForApi(text: string): string {
  if (ZONED_TIME.test(text)) return text;
  const local = LOCAL_TIME.exec(text);
  const usage = `--since must be an ISO 8601 date and time, e.g. 2026-11-22T10:00:00Z, or a local 2026-11-22T10:00; found "${text}"`;
  if (local === null) throw new UsageError(usage);
  const [year, month, day, hour, minute, second] = local.slice(1, 7).map((part) => Number(part ?? 0)) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const milliseconds = Number((local[7] ?? '').padEnd(3, '0'));
  const date = new Date(year, month - 1, day, hour, minute, second, milliseconds);
  // Date rolls 2026-02-30 over into March: a date that does not exist is a typo.
  if (
    Number.isNaN(date.getTime()) ||
    date.getDate() !== day ||
    date.getMonth() !== month - 1 ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  ) {
    throw new UsageError(usage);
  }
  return date.toISOString();
}

/** Options every command takes, which may also come before the command (as with systemctl, ip, kubectl). */
const GLOBAL_FLAGS = new Set(['--json']);
const GLOBAL_VALUE_OPTIONS = new Set(['--socket']);

/**
 * Moves global options given before the command behind it, where the command's parser reads
 * them: `offloadctl --socket S --json list` is `offloadctl list --socket S --json`.
 */
export function globalOptionsFirst(argv: string[]): string[] {
  const leading: string[] = [];
  let index = 0;
  while (index < argv.length) {
    const argument = argv[index] as string;
    const [option] = argument.split('=', 1) as [string];
    if (GLOBAL_FLAGS.has(argument)) {
      leading.push(argument);
      index += 1;
    } else if (GLOBAL_VALUE_OPTIONS.has(option) && argument.includes('=')) {
      leading.push(argument);
      index += 1;
    } else if (GLOBAL_VALUE_OPTIONS.has(argument)) {
      if (index + 1 >= argv.length) throw new UsageError(`option ${argument} needs a value`);
      leading.push(argument, argv[index + 1] as string);
      index += 2;
    } else if (argument.startsWith('-') && !['-h', '--help', '-V', '--version'].includes(argument)) {
      throw new UsageError(
        `unknown option "${argument}" before the command (global options: ${[...GLOBAL_FLAGS, ...GLOBAL_VALUE_OPTIONS].join(', ')})`,
      );
    } else {
      break;
    }
  }
  if (index >= argv.length) return leading.length > 0 ? ['', ...leading] : [];
  return [argv[index] as string, ...argv.slice(index + 1), ...leading];
}
