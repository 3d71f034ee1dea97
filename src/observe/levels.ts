/** syslog's levels, as journald's PRIORITY= and winston's syslog levels name them. */
export const LEVELS = ['emerg', 'alert', 'crit', 'error', 'warning', 'notice', 'info', 'debug'] as const;
export type Level = (typeof LEVELS)[number];
export const PRIORITY: Record<Level, number> = {
  emerg: 0,
  alert: 1,
  crit: 2,
  error: 3,
  warning: 4,
  notice: 5,
  info: 6,
  debug: 7,
};

/** journald fields: KEY → value (undefined and null are left out). */
export type LogFields = Record<string, string | number | boolean | null | undefined>;
