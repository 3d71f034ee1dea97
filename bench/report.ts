/**
 * What a scenario reports, and the one table (plus JSON) the benchmark prints: measurements
 * side by side with the C floor and today's practice, then every goal with its ratio and verdict.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Machine } from './machine';
import { REPO_ROOT } from './system';

export type Unit = 'us' | 'MiB' | '%' | 'count' | 'bytes';

export interface Measurement {
  scenario: string;
  metric: string;
  unit: Unit;
  offloadd: number;
  /** The C floor (floor.c, or observer.c's reactor), same unit. */
  floor?: number;
  /** Today's practice (an `ethtool -K` process per interface), same unit. */
  baseline?: number;
}

export interface GoalCheck {
  goal: string;
  measured: number;
  limit: number;
  /** atMost: measured ≤ limit passes; atLeast: measured ≥ limit passes. */
  direction: 'atMost' | 'atLeast';
  unit: 'x' | 'us' | 'MiB' | '%' | 'count';
}

export interface ScenarioResult {
  name: string;
  /** What exactly was measured (which interfaces match, what the clock spans). */
  description: string;
  measurements: Measurement[];
  goals: GoalCheck[];
  /** Everything else worth keeping in the JSON (samples, counts, log levels). */
  raw: Record<string, unknown>;
}

export function goalMet(goal: GoalCheck): boolean {
  return goal.direction === 'atMost' ? goal.measured <= goal.limit : goal.measured >= goal.limit;
}

/** ≤ 1 means met: measured/limit for a ceiling, limit/measured for a floor. */
export function goalRatio(goal: GoalCheck): number {
  if (goal.limit === 0) return goal.measured === 0 ? 0 : Infinity; // a must-be-zero check
  return goal.direction === 'atMost' ? goal.measured / goal.limit : goal.limit / goal.measured;
}

export function formatValue(value: number | undefined, unit: Unit | GoalCheck['unit']): string {
  if (value === undefined || Number.isNaN(value)) return '-';
  if (!Number.isFinite(value)) return 'timeout';
  switch (unit) {
    case 'us':
      if (value < 1000) return `${value.toFixed(value < 10 ? 2 : 1)} µs`;
      if (value < 1e6) return `${(value / 1000).toFixed(2)} ms`;
      return `${(value / 1e6).toFixed(2)} s`;
    case 'MiB':
      return `${value.toFixed(1)} MiB`;
    case '%':
      return `${value < 0.1 ? value.toFixed(3) : value.toFixed(2)} %`;
    case 'x':
      return `${value.toFixed(value < 10 ? 2 : 1)}×`;
    case 'bytes':
      return value < 1024 * 1024 ? `${(value / 1024).toFixed(1)} KiB` : `${(value / 1024 / 1024).toFixed(2)} MiB`;
    case 'count':
      return String(Math.round(value));
  }
}

function ratio(numerator: number | undefined, denominator: number | undefined): string {
  if (numerator === undefined || denominator === undefined || !(denominator > 0) || !Number.isFinite(numerator))
    return '-';
  return formatValue(numerator / denominator, 'x');
}

function renderTable(header: readonly string[], rows: readonly string[][]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

export function renderMeasurements(results: readonly ScenarioResult[]): string {
  const rows = results.flatMap((result) =>
    result.measurements.map((m) => [
      m.scenario,
      m.metric,
      formatValue(m.offloadd, m.unit),
      formatValue(m.floor, m.unit),
      formatValue(m.baseline, m.unit),
      ratio(m.offloadd, m.floor),
      ratio(m.baseline, m.offloadd),
    ]),
  );
  return renderTable(
    ['SCENARIO', 'MEASUREMENT', 'OFFLOADD', 'C FLOOR', 'ETHTOOL/TODAY', 'OFFLOADD÷FLOOR', 'TODAY÷OFFLOADD'],
    rows,
  );
}

export function renderGoals(results: readonly ScenarioResult[]): string {
  const rows = results.flatMap((result) =>
    result.goals.map((goal) => [
      goal.goal,
      formatValue(goal.measured, goal.unit),
      `${goal.direction === 'atMost' ? '≤' : '≥'} ${formatValue(goal.limit, goal.unit)}`,
      Number.isFinite(goalRatio(goal)) ? goalRatio(goal).toFixed(2) : 'inf',
      goalMet(goal) ? 'OK' : 'MISSED',
    ]),
  );
  return renderTable(['GOAL', 'MEASURED', 'GOAL', 'RATIO TO GOAL (≤1 met)', 'STATUS'], rows);
}

export function renderMachine(machine: Machine): string {
  return (
    `machine: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB.toFixed(1)} GiB; ` +
    `kernel ${machine.kernel}; node ${machine.node}; ${machine.ethtool}; offloadd ${machine.commit}` +
    (machine.uncommitted.files.length > 0
      ? ` (uncommitted: ${machine.uncommitted.files.join(' ')}, diff ${machine.uncommitted.diffSha256})`
      : '')
  );
}

/** bench/results/<timestamp>.json (bench/results is git-ignored). Returns the path. */
export function writeJson(report: Record<string, unknown>, startedAt: Date): string {
  const dir = path.join(REPO_ROOT, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(
    file,
    `${JSON.stringify(report, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? String(value) : value), 2)}\n`,
  );
  return file;
}
