/**
 * offloadctl's commands: for each, its help, its options and what it asks the daemon (or, for
 * check-policy and doctor, reads itself) and prints. Exit statuses are EXIT's.
 */
import { call, watch } from '../api/client';
import { DEFAULT_SOCKET_PATH, DRIFT_DEFAULT_LIMIT, type MethodName, type Methods } from '../api/protocol';
import { PolicyError } from '../errors';
import { DEFAULT_SYSFS_ROOT } from '../facts/sysfs';
import type { RecordEvent } from '../ledger/record';
import { escapeControl, escapeStrings } from '../observe/escape';
import { lintPolicy } from '../policy/lint';
import { loadPolicyFile } from '../policy/load';
import { doctorCommand } from './doctor';
import { featureSummary, table } from './format';
import { sinceForApi, UsageError } from './offloadctl-args';
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

/** offloadctl's exit statuses (offloadctl.ts's header says what each means). */
export const EXIT = { ok: 0, outOfPolicy: 1, usage: 2, unreachable: 3, refused: 4 } as const;

/** What a command is run with: the command line parsed, the socket, how to print. */
export interface CommandArgs {
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
  socket: string;
  out: Output;
}

export interface Command {
  summary: string;
  usage: string;
  help: string;
  options?: Record<string, { type: 'string' | 'boolean' }>;
  positionals?: { min: number; max: number };
  run(args: CommandArgs): Promise<number>;
}

/**
 * The run of a command that asks the daemon one method and prints the answer: `params` from the
 * command line, `text` for the answer without --json.
 */
function asking<M extends MethodName>(
  method: M,
  params: (args: CommandArgs) => Methods[M]['params'],
  text: (safe: Methods[M]['result'], out: Output) => string,
): Command['run'] {
  return async (args) => {
    const result = await call(args.socket, method, params(args));
    print(args.out, result, (safe) => text(safe, args.out));
    return EXIT.ok;
  };
}

export const COMMON_HELP = `  --socket PATH   offloadd's API socket (default ${DEFAULT_SOCKET_PATH})
  --json          print the API's JSON result instead of text
  -h, --help      show this help`;

export const COMMANDS: Record<string, Command> = {
  status: {
    summary: "the daemon's version, policy, counts and counters",
    usage: 'offloadctl status [--json]',
    help: 'Shows the running daemon: version, uptime, mode, policy file and checksum, how many interfaces\nare managed and compliant, and its event counters.',
    run: asking('status', () => ({}), formatStatus),
  },
  list: {
    summary: 'managed interfaces with their compliance and features (wanted/active)',
    usage: 'offloadctl list [--json]',
    help: 'One line per managed interface: driver, PCI id, rule, mode, compliance and, for each feature\nthe policy names, the wanted and active state (wanted/active).',
    run: asking(
      'interfaces.list',
      () => ({}),
      (safe, out) =>
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
    ),
  },
  show: {
    summary: 'one managed interface in detail',
    usage: 'offloadctl show IFACE [--json]',
    help: 'Facts, rule, compliance history and per-feature state of one managed interface.',
    positionals: { min: 1, max: 1 },
    run: asking(
      'interfaces.get',
      ({ positionals }) => ({ interface: positionals[0] as string }),
      (safe, out) => formatShow(out, safe.interface),
    ),
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
    run: asking(
      'drift.list',
      ({ values }) => {
        const limit = values['limit'] === undefined ? undefined : Number(values['limit']);
        if (limit !== undefined && !Number.isInteger(limit)) throw new UsageError('--limit must be a whole number');
        return {
          since: values['since'] === undefined ? undefined : sinceForApi(values['since'] as string),
          interface: values['interface'] as string | undefined,
          feature: values['feature'] as string | undefined,
          event: values['event'] as RecordEvent | undefined,
          limit,
        };
      },
      (safe) => formatRecords(safe.records),
    ),
  },
  explain: {
    summary: 'why an interface does or does not match, and what would be done',
    usage: 'offloadctl explain IFACE [--json]',
    help: "Every rule in order with each match key's verdict and reason, then the plan per feature\n(already as wanted, would be set, cannot be set). Works for unmanaged interfaces too.",
    positionals: { min: 1, max: 1 },
    run: asking(
      'explain',
      ({ positionals }) => ({ interface: positionals[0] as string }),
      (safe, out) => formatExplain(out, safe),
    ),
  },
  reload: {
    summary: 'reload the policy file (root or --admin-group)',
    usage: 'offloadctl reload [--json]',
    help: 'Asks the daemon to re-read its policy. A policy with errors is rejected with its file, line and\ncolumn, and the running policy stays in force (exit 2). Same as systemctl reload offloadd.',
    run: asking(
      'policy.reload',
      () => ({}),
      (safe) =>
        `Policy reloaded from ${safe.path} (${safe.rules} rules, sha256 ${safe.sha256.slice(0, 12)}).\n${formatWarnings(safe.path, safe.warnings)}`,
    ),
  },
  enforce: {
    summary: 'check and enforce now, all or one interface (root or --admin-group)',
    usage: 'offloadctl enforce [IFACE] [--json]',
    help: 'Re-reads and enforces the policy now, including features earlier found unenforceable.',
    positionals: { min: 0, max: 1 },
    run: asking(
      'enforce',
      ({ positionals }) => (positionals[0] === undefined ? {} : { interface: positionals[0] }),
      (safe) => {
        const notCompliant = safe.interfaces.filter((status) => !status.compliant);
        return `Enforced ${safe.interfaces.length} interface(s); ${notCompliant.length} not compliant${notCompliant.length ? `: ${notCompliant.map((status) => status.interface).join(', ')}` : ''}.\n`;
      },
    ),
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
