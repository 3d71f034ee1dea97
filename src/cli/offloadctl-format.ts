/**
 * offloadctl's text output: how each command's API result reads on a terminal (--json prints the
 * result itself). Pure: results in, text out.
 */
import { describeActor, shortActor, type RecordActor } from '../attribution/actor';
import type { AttributionStatus } from '../attribution/attribution';
import type { ExplainResult, InterfaceStatusView, StatusResult } from '../api/protocol';
import type { LedgerRecord } from '../ledger/record';
import { escapeStrings } from '../observe/escape';
import type { PolicyWarning } from '../policy/types';
import { table } from './format';

export interface Output {
  json: boolean;
  color: boolean;
}

/**
 * Prints the API's result as JSON, or as the text `format` makes of it. The text is made from a
 * copy whose strings have their control characters escaped (names come from outside; JSON
 * escapes them itself).
 */
export function print<T>(out: Output, json: T, format: (safe: T) => string): void {
  process.stdout.write(out.json ? `${JSON.stringify(json, null, 2)}\n` : format(escapeStrings(json)));
}

export function paint(out: Output, code: string, text: string): string {
  return out.color ? `\x1b[${code}m${text}\x1b[0m` : text;
}

export const yesNo = (out: Output, ok: boolean): string => (ok ? paint(out, '32', 'yes') : paint(out, '31;1', 'NO'));

export const pciText = (facts: { pci: string | null; pciSubsystem: string | null }): string =>
  facts.pci === null ? '-' : facts.pciSubsystem ? `${facts.pci} (${facts.pciSubsystem})` : facts.pci;

export function formatStatus(status: StatusResult): string {
  return (
    [
      `offloadd ${status.version} (pid ${status.pid}), up ${status.uptimeSec} s, mode ${status.mode}, features via ${status.featureInterface}`,
      `policy     ${status.policy.path} (${status.policy.rules} rules, sha256 ${status.policy.sha256.slice(0, 12)})`,
      `interfaces ${status.interfaces.managed} managed, ${status.interfaces.compliant} compliant, ${status.interfaces.notCompliant} not compliant`,
      `events     ${status.counters.drifts} drifts, ${status.counters.corrections} corrections, ${status.counters.unenforceable} unenforceable, ${status.counters.failures} failures, ${status.counters.resyncs} resyncs`,
      `ledger     ${status.ledger.path} (last record #${status.ledger.lastSeq})${status.ledger.writable ? '' : ` — NOT WRITABLE since ${status.ledger.unwritableSince ?? '?'}: ${status.ledger.problem ?? 'unknown error'} (${status.ledger.heldRecords} records held in memory)`}`,
      `attribution ${attributionText(status.attribution)}`,
      ...status.policy.warnings.map((warning) => `warning    ${warning.message}`),
    ].join('\n') + '\n'
  );
}

/** `on (raw_tracepoint), 3 attributed, 0 dropped[; <why the slower way>]` or `off (<reason>)`. */
export function attributionText(attribution: AttributionStatus | undefined): string {
  if (!attribution) return 'unknown (daemon older than this offloadctl)';
  return attribution.enabled
    ? `on (${attribution.hook ?? '?'}), ${attribution.attributed} attributed, ${attribution.dropped} dropped${attribution.reason ? `; ${attribution.reason}` : ''}`
    : `off (${attribution.reason ?? 'unknown'})`;
}

/** The last actor line of show and explain: who, or the precise "none". */
function lastActorText(actor: RecordActor): string {
  return 'none' in actor ? actor.none : describeActor(actor);
}

export function formatShow(out: Output, status: InterfaceStatusView): string {
  const lines = [
    `${status.interface} (ifindex ${status.ifindex})`,
    `  driver     ${status.driver ?? '-'}   pci ${pciText(status)}   bus ${status.busInfo ?? '-'}   kind ${status.kind ?? '-'}   mac ${status.mac ?? '-'}`,
    `  rule       ${status.rule} (mode ${status.mode})`,
    `  compliant  ${yesNo(out, status.compliant)} since ${status.since}`,
    `  drifts     ${status.drifts}${status.lastDrift ? `, last at ${status.lastDrift}` : ''}`,
    `  checked    ${status.lastCheck}`,
    ...(status.lastActor ? [`  last by    ${lastActorText(status.lastActor)}`] : []),
    '',
    '',
  ].join('\n');
  return (
    lines +
    featureTable(
      'ACTION',
      status.features.map((feature) => ({ ...feature, step: feature.action })),
    )
  );
}

/** One line per record: the ledger's own names as column titles. */
export function formatRecords(records: LedgerRecord[]): string {
  if (records.length === 0) return 'No records.\n';
  return table(
    ['TIME', 'SEQ', 'EVENT', 'INTERFACE', 'FEATURE', 'WANTED', 'ACTIVE', 'ACTION', 'TRIGGER', 'BY', 'REASON'],
    records.map((record) => [
      record.time,
      String(record.seq),
      record.event,
      record.interface ?? '-',
      record.feature ?? '-',
      record.wanted ?? '-',
      record.active ?? '-',
      record.action,
      record.trigger,
      byText(record),
      recordNote(record),
    ]),
  );
}

/** The BY column: the actor's unit or comm and pid, `kernel` for no user-space request, `+N` more. */
export function byText(record: LedgerRecord): string {
  if (!record.actor) return '-';
  const more = record.actors && record.actors.length > 1 ? ` +${record.actors.length - 1}` : '';
  return shortActor(record.actor) + more;
}

export function recordNote(record: LedgerRecord): string {
  const counts = [
    record.correctionUs !== undefined ? `${record.correctionUs} µs` : null,
    record.interfaces !== undefined ? `${record.interfaces} interfaces` : null,
    record.notices !== undefined && record.notices > 1 ? `${record.notices} notices` : null,
    record.corrections !== undefined ? `${record.corrections} corrections` : null,
  ]
    .filter(Boolean)
    .join(', ');
  return [counts, record.reason].filter(Boolean).join('; ');
}

export function formatExplain(out: Output, result: ExplainResult): string {
  const lines = [
    `${result.interface} (ifindex ${result.ifindex}): driver ${result.driver ?? '-'}, pci ${pciText(result)}, kind ${result.kind ?? '-'}, mac ${result.mac ?? '-'}`,
    ...(result.lastActor ? [`last drift by ${lastActorText(result.lastActor)}`] : []),
    '',
  ];
  if (result.rules.length === 0) lines.push('The policy has no rules.');
  result.rules.forEach((evaluation, index) => {
    const chosen = evaluation.rule === result.rule;
    const verdict = evaluation.matched
      ? chosen
        ? paint(out, '32', 'MATCHES (applied)')
        : 'matches, but an earlier rule won'
      : paint(out, '2', 'does not match');
    lines.push(`rule ${index + 1} "${evaluation.rule}": ${verdict}`);
    for (const check of evaluation.checks) lines.push(`  ${check.passed ? '✓' : '✗'} ${check.key}: ${check.reason}`);
  });
  lines.push('');
  if (!result.rule) {
    lines.push('No rule matches: offloadd leaves this interface alone.');
    return lines.join('\n') + '\n';
  }
  lines.push(`Plan (mode ${result.mode}):`);
  const verbs: Record<string, string> = {
    compliant: 'already as wanted',
    differs: result.mode === 'enforce' ? 'would be set' : 'differs (report only)',
    unenforceable: 'cannot be set on this device',
    ignored: 'skipped (the device cannot change it)',
    absent: 'unknown to this kernel',
  };
  return (
    lines.join('\n') +
    '\n' +
    featureTable(
      'PLAN',
      result.plan.map((entry) => ({ ...entry, step: verbs[entry.plan] ?? entry.plan })),
    )
  );
}

/** One feature's row in show's and explain's tables: `step` is what was done (ACTION) or would be (PLAN). */
interface FeatureRow {
  feature: string;
  as: string;
  wanted: string;
  active: string | null;
  step: string;
  reason: string | null;
}

/** The per-feature table of show (what the last check did) and explain (what enforcing would do). */
function featureTable(stepTitle: 'ACTION' | 'PLAN', rows: readonly FeatureRow[]): string {
  return table(
    ['FEATURE', 'AS', 'WANTED', 'ACTIVE', stepTitle, 'REASON'],
    rows.map((row) => [row.feature, row.as, row.wanted, row.active ?? '-', row.step, row.reason ?? '']),
  );
}

export function formatWarnings(file: string, warnings: PolicyWarning[]): string {
  return warnings
    .map(
      (warning) =>
        `${file}${warning.position ? `:${warning.position.line}:${warning.position.column}` : ''}: warning: ${warning.message}\n`,
    )
    .join('');
}
