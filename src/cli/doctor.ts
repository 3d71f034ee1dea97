/**
 * `offloadctl doctor`: from the symptom ("VM traffic between nodes crawls") to the cause, on
 * any host, with or without offloadd running. The diagnosis lives in src/doctor/; this file
 * parses the options, prints the report and chooses the exit status.
 */
import { KernelError } from '../errors';
import { CannotReadError, runDoctor } from '../doctor/collect';
import { formatOverlaps, otherManagersOfReport } from '../doctor/managers/host';
import type { DoctorReport, Finding, InterfaceEvidence, OffloadEvidence } from '../doctor/types';
import { DEFAULT_SYSFS_ROOT } from '../facts/sysfs';
import { escapeControl, escapeStrings } from '../observe/escape';
import { onOff } from '../policy/types';
import { table } from './format';

export const DOCTOR_EXIT = { clean: 0, finding: 1, usage: 2, cannotRead: 3 } as const;

/** Long enough for a rate over a few bursts of traffic; short enough to run by hand. */
export const DEFAULT_WINDOW_SEC = 5;
/** A longer window only averages away what the doctor is looking for, and blocks a terminal. */
const MAX_WINDOW_SEC = 300;
/** One sample of a busy 100G NIC differs from the next by milliseconds of work: no shorter. */
const MIN_WINDOW_SEC = 0.1;

interface DoctorArgs {
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
  socket: string;
  out: { json: boolean };
}

function fail(out: { json: boolean }, code: number, message: string, hint?: string): number {
  if (out.json)
    process.stdout.write(
      `${JSON.stringify({ error: { message, code: code === DOCTOR_EXIT.usage ? 'ERR_USAGE' : 'ERR_CANNOT_READ', hint } }, null, 2)}\n`,
    );
  process.stderr.write(
    `offloadctl doctor: ${escapeControl(message)}${hint ? `\n  hint: ${escapeControl(hint)}` : ''}\n`,
  );
  return code;
}

const onOffOrDash = (value: boolean | null): string => (value === null ? '-' : onOff(value));

function si(value: number, unit: string): string {
  if (value >= 1e9) return `${(value / 1e9).toFixed(1)} G${unit}`;
  if (value >= 1e6) return `${(value / 1e6).toFixed(1)} M${unit}`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)} k${unit}`;
  return `${Math.round(value)} ${unit}`;
}

/** "gro on (wanted off)" per ethtool name; tso summarised over its kernel features. */
function offloadLine(offloads: readonly OffloadEvidence[]): string {
  const groups = new Map<string, OffloadEvidence[]>();
  for (const offload of offloads) groups.set(offload.as, [...(groups.get(offload.as) ?? []), offload]);
  return [...groups]
    .map(([as, members]) => {
      const states = new Set(members.map((member) => onOffOrDash(member.active)));
      const active = states.size === 1 ? [...states][0] : 'mixed';
      const wanted = new Set(members.map((member) => member.wanted).filter((value) => value !== null));
      const fixed = members.every((member) => member.fixed) && members[0]?.active !== null ? ' [fixed]' : '';
      return `${as} ${active}${fixed}${wanted.size === 1 ? ` (wanted ${onOffOrDash([...wanted][0] as boolean)})` : ''}`;
    })
    .join(', ');
}

function identityLine(entry: InterfaceEvidence): string {
  const id = entry.identity;
  const parts = [
    id.driver
      ? `${id.driver}${id.driverVersion ? ` ${id.driverVersion}` : ''}${id.firmwareVersion ? `, firmware ${id.firmwareVersion}` : ''}`
      : 'no driver',
    id.pci
      ? `pci ${id.pci}${id.family.member ? ` (${id.family.label ?? 'NetXtreme-E'}: affected family, per the ${id.family.source})` : ''}`
      : `kind ${id.kind ?? '-'}`,
    `mtu ${id.mtu ?? '-'}`,
  ];
  if (id.uppers.length > 0)
    parts.push(
      `in ${id.uppers.map((upper) => `${upper.kind ?? 'master'} ${upper.name} (mtu ${upper.mtu ?? '-'})`).join(' in ')}`,
    );
  return parts.join(', ');
}

function trafficLine(entry: InterfaceEvidence): string {
  const { rx, tx } = entry.traffic;
  const average = rx.avgPacketBytes === null ? '' : `, avg ${Math.round(rx.avgPacketBytes)} B`;
  return (
    `rx ${si(rx.pps, 'pps')} ${si(rx.bps, 'bit/s')}${average} · tx ${si(tx.pps, 'pps')} ${si(tx.bps, 'bit/s')} · ` +
    `dropped ${entry.traffic.rxDropped + entry.traffic.rxMissed}/${entry.traffic.txDropped} · errors ${entry.traffic.rxErrors}/${entry.traffic.txErrors} (rx/tx)`
  );
}

function findingLines(finding: Finding): string[] {
  return [
    `  ${finding.severity.toUpperCase().padEnd(8)}  ${finding.summary}`,
    `            why: ${finding.reason}`,
    `            fix: ${finding.fix}`,
  ];
}

export function formatDoctor(report: DoctorReport): string {
  const source = report.source.daemon
    ? `offloadd is running (${report.source.socket}): wanted states from the daemon, policy ${report.source.policy}`
    : `offloadd is not running (${report.source.daemonUnavailable}): read the kernel directly, wanted states from the policy ${report.source.policy}`;
  const lines = [source, `traffic window ${report.windowSec} s`, ''];
  const quiet = report.interfaces.filter((entry) => entry.traffic.verdict === 'quiet' && entry.findings.length === 0);
  for (const entry of report.interfaces) {
    if (quiet.includes(entry) && report.interfaces.length > 1) continue;
    lines.push(
      `${entry.name} (ifindex ${entry.ifindex}): ${identityLine(entry)}`,
      `  rule      ${entry.policy.rule === null ? 'none matches' : `${entry.policy.rule} (${entry.policy.mode})`}`,
      `  offloads  ${offloadLine(entry.offloads)}`,
      `  traffic   ${trafficLine(entry)}`,
      `            ${entry.traffic.note}`,
      ...entry.findings.flatMap(findingLines),
      '',
    );
  }
  if (quiet.length > 0 && report.interfaces.length > 1) {
    lines.push(
      `Not enough traffic to judge, nothing else found:`,
      table(
        ['INTERFACE', 'DRIVER', 'RX PACKETS'],
        quiet.map((entry) => [entry.name, entry.identity.driver ?? '-', String(entry.traffic.rx.packets)]),
      ).trimEnd(),
      '',
    );
  }
  for (const note of report.notes) lines.push(`note: ${note}`);
  const critical = report.findings.filter((finding) => finding.severity === 'critical').length;
  lines.push(
    report.findings.length === 0 ? 'Nothing found.' : `${report.findings.length} finding(s), ${critical} critical.`,
  );
  return `${lines.join('\n')}\n`;
}

export const doctorCommand = {
  summary: 'diagnose slow VM traffic: offloads, identity and traffic per NIC (no daemon needed)',
  usage: 'offloadctl doctor [INTERFACE...] [--window SECONDS] [--json] [--policy FILE] [--sysfs-root DIR] [--root DIR]',
  help: `Looks for the BCM57508 GRO/GSO symptom ("VM traffic between nodes crawls, fine on the same
node") and what surrounds it, read-only, on every interface or the ones named:
  identity   driver, driver and firmware version, PCI id and whether the policy names it as
             affected, bond/bridge membership and MTUs
  offloads   gro, gro-hw, lro, gso, tso: active, and wanted when a rule matches
  traffic    packets and bits per second each way, average received packet, drops, errors,
             over a window (IFLA_STATS64, and the driver's own counters where it has them)
Each finding has a severity, its evidence, the reason and the fix. Interfaces with too little
traffic get "not enough traffic to judge", never a guess. With offloadd running the wanted
states are the daemon's; without, the policy is read here (--policy, else offloadd's default).

  --window SECONDS  traffic window (default ${DEFAULT_WINDOW_SEC}, ${MIN_WINDOW_SEC} to ${MAX_WINDOW_SEC})
  --policy FILE     the policy to use when the daemon is not running
  --sysfs-root DIR  read device facts from DIR instead of ${DEFAULT_SYSFS_ROOT} (tests, containers)
  --root DIR        read the other managers' files (NetworkManager, systemd .link, ifcfg,
                    ifupdown, udev rules, tuned) under DIR instead of / (default /): each one
                    that sets a feature the policy also sets on a managed interface is listed
                    with file and line, agreeing or conflicting

EXIT STATUS
  0  nothing found   1  a finding   2  usage error   3  cannot read the interfaces`,
  options: {
    window: { type: 'string' },
    policy: { type: 'string' },
    'sysfs-root': { type: 'string' },
    root: { type: 'string' },
  } as Record<string, { type: 'string' | 'boolean' }>,
  positionals: { min: 0, max: Number.MAX_SAFE_INTEGER },
  async run({ positionals, values, socket, out }: DoctorArgs): Promise<number> {
    const windowText = values['window'];
    const windowSec = windowText === undefined ? DEFAULT_WINDOW_SEC : Number(windowText);
    if (
      typeof windowText === 'string' &&
      (windowText.trim() === '' ||
        !Number.isFinite(windowSec) ||
        windowSec < MIN_WINDOW_SEC ||
        windowSec > MAX_WINDOW_SEC)
    ) {
      return fail(
        out,
        DOCTOR_EXIT.usage,
        `--window must be a number of seconds from ${MIN_WINDOW_SEC} to ${MAX_WINDOW_SEC}, not "${windowText}"`,
      );
    }
    let report: DoctorReport;
    try {
      report = await runDoctor({
        interfaces: positionals,
        windowSec,
        socket,
        sysfsRoot: (values['sysfs-root'] as string | undefined) ?? DEFAULT_SYSFS_ROOT,
        policyPath: (values['policy'] as string | undefined) ?? null,
      });
    } catch (error) {
      if (error instanceof CannotReadError || error instanceof KernelError)
        return fail(out, DOCTOR_EXIT.cannotRead, error.message, error.hint);
      throw error;
    }
    const managers = otherManagersOfReport(report, (values['root'] as string | undefined) ?? '/');
    // Interface names are the kernel's bytes: escape sequences in them must not reach the terminal.
    process.stdout.write(
      out.json
        ? `${JSON.stringify({ ...report, managers }, null, 2)}\n`
        : formatDoctor(escapeStrings(report)) + formatOverlaps(escapeStrings(managers)),
    );
    return report.findings.length === 0 ? DOCTOR_EXIT.clean : DOCTOR_EXIT.finding;
  },
};
