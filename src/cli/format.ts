/** Text output shared by offloadd --once and offloadctl. */
import type { InterfaceStatusView } from '../api/views';
import { escapeControl } from '../observe/escape';

/** Aligned columns, like `ip -br`: no wrapping, widths from the content. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: string[]): string =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** "rx-gro off/off" pairs: wanted/active for each policy feature. */
export function featureSummary(status: InterfaceStatusView): string {
  return status.features
    .filter((feature) => feature.action !== 'ignored')
    .map((feature) => `${feature.feature}=${feature.wanted}/${feature.active ?? '-'}`)
    .join(' ');
}

export function formatOnceReport(statuses: InterfaceStatusView[]): string {
  if (statuses.length === 0) return 'No interface matches the policy.\n';
  return table(
    ['INTERFACE', 'RULE', 'COMPLIANT', 'FEATURES (wanted/active)'],
    statuses.map((status) => [
      escapeControl(status.interface),
      status.rule,
      status.compliant ? 'yes' : 'NO',
      featureSummary(status),
    ]),
  );
}
