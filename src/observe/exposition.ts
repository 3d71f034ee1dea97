/**
 * Prometheus's text exposition format (version 0.0.4): escaping, HELP/TYPE headers, sample lines,
 * a fixed-bucket histogram and the standard process_* metrics. Knows no metric of offloadd's own
 * (those are src/observe/metrics.ts and src/observe/interface-lines.ts).
 */
import { processStartedAtMs } from '../clock';

/** What `Content-Type` a scrape answer carries: the classic text format. */
export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** A label value as the text format wants it: backslash, double quote and line feed escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (character) => (character === '\n' ? '\\n' : `\\${character}`));
}

/** HELP text: backslash and line feed escaped (a double quote is fine there). */
function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (character) => (character === '\n' ? '\\n' : '\\\\'));
}

export function labels(pairs: Record<string, string>): string {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(pairs)) parts.push(`${name}="${escapeLabelValue(value)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

export function header(name: string, type: 'gauge' | 'counter' | 'histogram', help: string): string {
  return `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`;
}

/** One sample per line; JavaScript's shortest round-trip form is what Prometheus parses. */
export function sample(name: string, value: number, labelText = ''): string {
  const text = Number.isNaN(value) ? 'NaN' : value === Infinity ? '+Inf' : value === -Infinity ? '-Inf' : String(value);
  return `${name}${labelText} ${text}\n`;
}

/** A cumulative histogram with fixed buckets (upper bounds, ascending). */
export class Histogram {
  private readonly buckets: number[];
  private sum = 0;
  private count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.buckets = bounds.map(() => 0);
  }

  observe(value: number): void {
    this.sum += value;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) if (value <= (this.bounds[i] as number)) this.buckets[i]!++;
  }

  get observations(): number {
    return this.count;
  }

  render(name: string, help: string): string {
    let text = header(name, 'histogram', help);
    for (let i = 0; i < this.bounds.length; i++)
      text += sample(`${name}_bucket`, this.buckets[i] as number, `{le="${String(this.bounds[i])}"}`);
    text += sample(`${name}_bucket`, this.count, '{le="+Inf"}');
    text += sample(`${name}_sum`, this.sum);
    text += sample(`${name}_count`, this.count);
    return text;
  }
}

/** The standard process metrics, as the Prometheus client libraries name them. */
export function processLines(startedAt: Date): string {
  const cpu = process.cpuUsage();
  // The process's start, not the daemon object's: what process_start_time_seconds means elsewhere.
  const started = Math.min(startedAt.getTime(), processStartedAtMs()) / 1000;
  return (
    header('process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.') +
    sample('process_start_time_seconds', Math.round(started * 1000) / 1000) +
    header('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.') +
    sample('process_resident_memory_bytes', process.memoryUsage.rss()) +
    header('process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.') +
    sample('process_cpu_seconds_total', (cpu.user + cpu.system) / 1e6)
  );
}
