/**
 * `offloadctl`: query and control offloadd over its Unix socket, and check policy files offline.
 * Every command takes --json (the API's result object, unchanged). Exit status:
 * 0 ok · 1 out of policy (check) · 2 usage or policy error · 3 daemon unreachable ·
 * 4 the daemon refused or failed the request (not authorised, no such interface).
 */
import { parseArgs } from 'node:util';
import { call, RemoteError, UnreachableError, watch } from '../api/client';
import { DEFAULT_SOCKET_PATH, DRIFT_DEFAULT_LIMIT, errorName, RpcCode } from '../api/protocol';
import { KernelError, OffloaddError, PolicyError } from '../errors';
import { DEFAULT_SYSFS_ROOT } from '../facts/sysfs';
import type { RecordEvent } from '../ledger/record';
import { escapeControl, escapeStrings } from '../observe/escape';
import { lintPolicy } from '../policy/lint';
import { loadPolicyFile } from '../policy/load';
import { VERSION, versionLine } from '../version';
import { doctorCommand } from './doctor';
import { featureSummary, table } from './format';
import {
  formatExplain,
  formatRecords,
  formatShow,
  formatStatus,
  formatWarnings,
  pciText,
  print,
  yesNo,
  type Output,
} from './offloadctl-format';

export const EXIT = { ok: 0, outOfPolicy: 1, usage: 2, unreachable: 3, refused: 4 } as const;

interface Command {
  summary: string;
  usage: string;
  help: string;
  options?: Record<string, { type: 'string' | 'boolean' }>;
  positionals?: { min: number; max: number };
  run(args: {
    positionals: string[];
    values: Record<string, string | boolean | undefined>;
    socket: string;
    out: Output;
  }): Promise<number>;
}

const COMMON_HELP = `  --socket PATH   offloadd's API socket (default ${DEFAULT_SOCKET_PATH})
  --json          print the API's JSON result instead of text
  -h, --help      show this help`;

const COMMANDS: Record<string, Command> = {
  status: {
    summary: "the daemon's version, policy, counts and counters",
    usage: 'offloadctl status [--json]',
    help: 'Shows the running daemon: version, uptime, mode, policy file and checksum, how many interfaces\nare managed and compliant, and its event counters.',
    async run({ socket, out }) {
      const result = await call(socket, 'status', {});
      print(out, result, formatStatus);
      return EXIT.ok;
    },
  },
  list: {
    summary: 'managed interfaces with their compliance and features (wanted/active)',
    usage: 'offloadctl list [--json]',
    help: 'One line per managed interface: driver, PCI id, rule, mode, compliance and, for each feature\nthe policy names, the wanted and active state (wanted/active).',
    async run({ socket, out }) {
      const result = await call(socket, 'interfaces.list', {});
      print(out, result, (safe) =>
        safe.interfaces.length === 0
          ? 'No managed interfaces.\n'
          : table(
              ['INTERFACE', 'DRIVER', 'PCI', 'RULE', 'MODE', 'COMPLIANT', 'DRIFTS', 'FEATURES (wanted/active)'],
              safe.interfaces.map((status) => [
                status.interface,
                status.driver ?? '-',
                pciText(status),
                status.rule,
                status.mode,
                yesNo(out, status.compliant),
                String(status.drifts),
                featureSummary(status),
              ]),
            ),
      );
      return EXIT.ok;
    },
  },
  show: {
    summary: 'one managed interface in detail',
    usage: 'offloadctl show IFACE [--json]',
    help: 'Facts, rule, compliance history and per-feature state of one managed interface.',
    positionals: { min: 1, max: 1 },
    async run({ positionals, socket, out }) {
      const result = await call(socket, 'interfaces.get', { interface: positionals[0] as string });
      print(out, result, (safe) => formatShow(out, safe.interface));
      return EXIT.ok;
    },
  },
  drift: {
    summary: 'the drift ledger, newest first',
    usage: 'offloadctl drift [--since TIME] [--interface IFACE] [--feature NAME] [--event EVENT] [--limit N] [--json]',
    help: `Records from the durable ledger, newest first. EVENT is initial, drift, unenforceable, flapping\nor resync. TIME is ISO 8601: with Z or an offset (2026-11-22T10:00:00Z, 2026-11-22T11:00:00+01:00)\nit is taken as written; without one (2026-11-22T10:00, 2026-11-22) it is this machine's local time\n(TZ). Default limit: ${DRIFT_DEFAULT_LIMIT}.`,
    options: {
      since: { type: 'string' },
      interface: { type: 'string' },
      feature: { type: 'string' },
      event: { type: 'string' },
      limit: { type: 'string' },
    },
    async run({ values, socket, out }) {
      const limit = values['limit'] === undefined ? undefined : Number(values['limit']);
      if (limit !== undefined && !Number.isInteger(limit)) throw new UsageError('--limit must be a whole number');
      const since = values['since'] === undefined ? undefined : sinceForApi(values['since'] as string);
      const result = await call(socket, 'drift.list', {
        since,
        interface: values['interface'] as string | undefined,
        feature: values['feature'] as string | undefined,
        event: values['event'] as RecordEvent | undefined,
        limit,
      });
      print(out, result, (safe) => formatRecords(safe.records));
      return EXIT.ok;
    },
  },
  explain: {
    summary: 'why an interface does or does not match, and what would be done',
    usage: 'offloadctl explain IFACE [--json]',
    help: "Every rule in order with each match key's verdict and reason, then the plan per feature\n(already as wanted, would be set, cannot be set). Works for unmanaged interfaces too.",
    positionals: { min: 1, max: 1 },
    async run({ positionals, socket, out }) {
      const result = await call(socket, 'explain', { interface: positionals[0] as string });
      print(out, result, (safe) => formatExplain(out, safe));
      return EXIT.ok;
    },
  },
  reload: {
    summary: 'reload the policy file (root or --admin-group)',
    usage: 'offloadctl reload [--json]',
    help: 'Asks the daemon to re-read its policy. A policy with errors is rejected with its file, line and\ncolumn, and the running policy stays in force (exit 2). Same as systemctl reload offloadd.',
    async run({ socket, out }) {
      const result = await call(socket, 'policy.reload', {});
      print(
        out,
        result,
        (safe) =>
          `Policy reloaded from ${safe.path} (${safe.rules} rules, sha256 ${safe.sha256.slice(0, 12)}).\n${formatWarnings(safe.path, safe.warnings)}`,
      );
      return EXIT.ok;
    },
  },
  enforce: {
    summary: 'check and enforce now, all or one interface (root or --admin-group)',
    usage: 'offloadctl enforce [IFACE] [--json]',
    help: 'Re-reads and enforces the policy now, including features earlier found unenforceable.',
    positionals: { min: 0, max: 1 },
    async run({ positionals, socket, out }) {
      const result = await call(socket, 'enforce', positionals[0] === undefined ? {} : { interface: positionals[0] });
      print(out, result, (safe) => {
        const notCompliant = safe.interfaces.filter((status) => !status.compliant);
        return `Enforced ${safe.interfaces.length} interface(s); ${notCompliant.length} not compliant${notCompliant.length ? `: ${notCompliant.map((status) => status.interface).join(', ')}` : ''}.\n`;
      });
      return EXIT.ok;
    },
  },
  watch: {
    summary: 'stream events as they happen (like ip monitor)',
    usage: 'offloadctl watch [--json]',
    help: 'Prints drift, enforcement and interface events until interrupted. --json prints one JSON\nobject per line.',
    async run({ socket, out }) {
      await watch(socket, (raw) => {
        if (out.json) {
          process.stdout.write(`${JSON.stringify(raw)}\n`);
          return;
        }
        const event = escapeStrings(raw);
        switch (event.type) {
          case 'record':
            process.stdout.write(formatRecords([event.record]).split('\n')[1] + '\n');
            break;
          case 'released':
            process.stdout.write(`${event.interface}: no longer managed (${event.why})\n`);
            break;
          case 'checked':
            process.stdout.write(
              `${event.status.interface}: checked (${event.trigger}), compliant ${event.status.compliant ? 'yes' : 'NO'}\n`,
            );
            break;
        }
      });
      return EXIT.ok;
    },
  },
  check: {
    summary: 'monitoring check: exit 1 if any managed interface is out of policy',
    usage: 'offloadctl check [--json]',
    help: 'For Nagios-style monitoring: prints one line and exits 0 (OK) when every managed interface\nis compliant, 1 (CRITICAL) when not, 3 when the daemon cannot be reached.',
    async run({ socket, out }) {
      const result = await call(socket, 'interfaces.list', {});
      const bad = result.interfaces.filter((status) => !status.compliant);
      const ok = bad.length === 0;
      print(
        out,
        { ok, managed: result.interfaces.length, outOfPolicy: bad.map((status) => status.interface) },
        (safe) =>
          ok
            ? `OFFLOADD OK - ${safe.managed} managed interfaces compliant\n`
            : `OFFLOADD CRITICAL - ${safe.outOfPolicy.length} of ${safe.managed} out of policy: ${safe.outOfPolicy.join(', ')}\n`,
      );
      return ok ? EXIT.ok : EXIT.outOfPolicy;
    },
  },
  'check-policy': {
    summary: 'validate and lint a policy file offline',
    usage: 'offloadctl check-policy FILE [--root DIR] [--sysfs-root DIR] [--json]',
    help: "Parses FILE as offloadd would (against this kernel's feature names) without a daemon.\nErrors (exit 2) name file, line and column; warnings (exit 0) point at risky rules: TSO or\nchecksum offload turned off on virtual NICs, GRO off on bridges only, shadowed rules, feature\nnames this kernel does not know. Then, for this host's interfaces the policy matches, every\nother manager's setting of the same feature (NetworkManager keyfiles, systemd .link files,\nifcfg ETHTOOL_OPTIONS, ifupdown offload-*, udev rules running ethtool -K, tuned profiles),\nread under --root DIR (default /), with file and line, agreeing or conflicting.\n  --root DIR        read the other managers' files under DIR instead of /\n  --sysfs-root DIR  read device facts (driver, PCI id) from DIR instead of /sys",
    options: { root: { type: 'string' }, 'sysfs-root': { type: 'string' } },
    positionals: { min: 1, max: 1 },
    async run({ positionals, values, out }) {
      const file = positionals[0] as string;
      const { FeatureTable } = await import('../reconcile/feature-state');
      try {
        const names = FeatureTable.fromKernel().names;
        const policy = loadPolicyFile(file, names);
        const warnings = lintPolicy(policy);
        const { findManagerSettings, findOverlaps } = await import('../doctor/managers');
        const { formatOverlaps, policyInterfacesOnHost } = await import('../doctor/managers/host');
        const managers = findOverlaps(
          findManagerSettings((values['root'] as string | undefined) ?? '/'),
          policyInterfacesOnHost(policy, (values['sysfs-root'] as string | undefined) ?? DEFAULT_SYSFS_ROOT),
          names,
        );
        print(
          out,
          { valid: true, file, rules: policy.rules.length, warnings, managers },
          (safe) =>
            `${formatWarnings(safe.file, safe.warnings)}${formatOverlaps(safe.managers)}${safe.file}: valid, ${safe.rules} rules, ${safe.warnings.length} warnings\n`,
        );
        return EXIT.ok;
      } catch (error) {
        if (!(error instanceof PolicyError)) throw error;
        print(
          out,
          {
            valid: false,
            file,
            error: {
              message: error.message,
              line: error.position?.line,
              column: error.position?.column,
              key: error.key,
              hint: error.hint,
            },
          },
          () => `${escapeControl(error.toString())}\n`,
        );
        return EXIT.usage;
      }
    },
  },
  doctor: doctorCommand,
};

class UsageError extends Error {}

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

function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  return `offloadctl ${VERSION} - query and control offloadd, the NIC offload policy daemon

USAGE
  offloadctl [--json] [--socket PATH] COMMAND [ARGS] [--json] [--socket PATH]

COMMANDS
${Object.entries(COMMANDS)
  .map(([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`)
  .join('\n')}

OPTIONS
${COMMON_HELP}
  -V, --version   show the version

EXIT STATUS
  0  success
  1  check: some managed interface is out of policy
  2  usage error, or an invalid policy (check-policy, reload)
  3  the daemon cannot be reached (not running, wrong --socket, no permission)
  4  the daemon refused or failed the request (not authorised, no such interface)

ENVIRONMENT
  NO_COLOR        disables colour (colour is only used on a terminal anyway)

Reading needs access to the socket (root or --socket-group); reload and enforce need root or
--admin-group (other users prefix sudo). 'offloadctl COMMAND --help' shows a command's help.
`;
}

/** Options every command takes, which may also come before the command (as with systemctl, ip, kubectl). */
const GLOBAL_FLAGS = new Set(['--json']);
const GLOBAL_VALUE_OPTIONS = new Set(['--socket']);

/**
 * Moves global options given before the command behind it, where the command's parser reads
 * them: `offloadctl --socket S --json list` is `offloadctl list --socket S --json`.
 */
function globalOptionsFirst(argv: string[]): string[] {
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

export async function runCli(argv: string[]): Promise<number> {
  let ordered: string[];
  try {
    ordered = globalOptionsFirst(argv);
  } catch (error) {
    process.stderr.write(`offloadctl: ${(error as Error).message}\nTry 'offloadctl --help'.\n`);
    return EXIT.usage;
  }
  const [name, ...rest] = ordered;
  if (name === '') {
    process.stderr.write(`offloadctl: no command given\nTry 'offloadctl --help'.\n`);
    return EXIT.usage;
  }
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(mainHelp());
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '-V' || name === '--version') {
    process.stdout.write(`${versionLine('offloadctl')}\n`);
    return EXIT.ok;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`offloadctl: unknown command "${name}"\nTry 'offloadctl --help'.\n`);
    return EXIT.usage;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      strict: true,
      allowPositionals: true,
      options: {
        ...command.options,
        json: { type: 'boolean', default: false },
        socket: { type: 'string', default: DEFAULT_SOCKET_PATH },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    process.stderr.write(`offloadctl ${name}: ${(error as Error).message}\nUsage: ${command.usage}\n`);
    return EXIT.usage;
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values['help']) {
    process.stdout.write(`Usage: ${command.usage}\n\n${command.help}\n\nOPTIONS\n${COMMON_HELP}\n`);
    return EXIT.ok;
  }
  const limits = command.positionals ?? { min: 0, max: 0 };
  if (parsed.positionals.length < limits.min || parsed.positionals.length > limits.max) {
    process.stderr.write(`offloadctl ${name}: wrong number of arguments\nUsage: ${command.usage}\n`);
    return EXIT.usage;
  }
  const out: Output = {
    json: values['json'] === true,
    color: process.stdout.isTTY === true && !process.env['NO_COLOR'],
  };
  try {
    return await command.run({ positionals: parsed.positionals, values, socket: values['socket'] as string, out });
  } catch (error) {
    return reportError(name, error, out);
  }
}

/** The ERR_* name of any error offloadctl reports, the daemon's or its own (docs/API.md, Errors). */
function errorCode(error: unknown): string {
  if (error instanceof RemoteError) return error.rpc.data?.code ?? errorName(error.rpc.code);
  if (error instanceof UsageError) return 'ERR_USAGE';
  if (error instanceof KernelError) return 'ERR_KERNEL';
  if (error instanceof OffloaddError) return error.code;
  return 'ERR_INTERNAL';
}

function reportError(name: string, error: unknown, out: Output): number {
  const code =
    error instanceof UsageError
      ? EXIT.usage
      : error instanceof UnreachableError
        ? EXIT.unreachable
        : error instanceof RemoteError
          ? error.rpc.code === RpcCode.policyInvalid
            ? EXIT.usage
            : EXIT.refused
          : EXIT.refused;
  const hint = error instanceof OffloaddError ? error.hint : undefined;
  if (out.json) {
    process.stdout.write(
      `${JSON.stringify({ error: { code: errorCode(error), message: (error as Error).message, hint } }, null, 2)}\n`,
    );
  }
  process.stderr.write(
    escapeControl(`offloadctl ${name}: ${(error as Error).message}${hint ? `\n  hint: ${hint}` : ''}`, {
      keepLineBreaks: true,
    }) + '\n',
  );
  return code;
}

export function main(argv: string[]): void {
  runCli(argv).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`offloadctl: ${(error as Error).stack ?? String(error)}\n`);
      process.exitCode = EXIT.refused;
    },
  );
}
