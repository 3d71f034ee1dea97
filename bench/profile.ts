/**
 * Where a daemon's time went: summarises a V8 `.cpuprofile` (from `node --cpu-prof`) by self
 * time per function and per source file. Used by `npm run bench -- --profile DIR`, and on its own:
 *
 *   node dist/bench/profile.js FILE.cpuprofile [TOP]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from './system';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface SelfTime {
  name: string;
  ms: number;
  percent: number;
}

export interface ProfileSummary {
  file: string;
  /** Sampled time excluding (idle). */
  busyMs: number;
  functions: SelfTime[];
  files: SelfTime[];
}

/** A short location: repo-relative for our code, package name for node_modules, node: for core. */
function location(frame: CallFrame): string {
  const url = frame.url.replace(/^file:\/\//, '');
  if (!url) return '';
  const modules = url.lastIndexOf('node_modules/');
  if (modules >= 0)
    return url
      .slice(modules + 'node_modules/'.length)
      .split('/')
      .slice(0, 2)
      .join('/');
  if (url.startsWith(REPO_ROOT))
    return path
      .relative(REPO_ROOT, url)
      .replace(/^dist\//, '')
      .replace(/\.js$/, '.ts');
  return url;
}

function top(map: Map<string, number>, busyMs: number, count: number): SelfTime[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, ms]) => ({ name, ms, percent: (100 * ms) / busyMs }));
}

/**
 * The addon's wrapper (src/addon/binding.ts) is where V8 books the time spent inside native
 * calls (the ioctls, the netlink dump): name that time after the caller, so the summary says
 * which system call it was (FeatureTable.read = GFEATURES, write = SFEATURES, dumpLinks, ...).
 */
function describe(node: ProfileNode, parentOf: Map<number, ProfileNode>): { name: string; where: string } {
  const frame = node.callFrame;
  const where = location(frame);
  const label = (f: CallFrame, w: string): string =>
    `${f.functionName || '(anonymous)'}${w ? ` ${w}:${f.lineNumber + 1}` : ''}`;
  if (!where.startsWith('src/addon/binding.ts')) return { name: label(frame, where), where };
  const caller = parentOf.get(node.id);
  const callerWhere = caller ? location(caller.callFrame) : '';
  return { name: `native call from ${caller ? label(caller.callFrame, callerWhere) : '?'}`, where };
}

export function summariseProfile(file: string, count = 20): ProfileSummary {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, ProfileNode>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node);
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, index) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0)));

  const functions = new Map<string, number>();
  const files = new Map<string, number>();
  let busyMs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node || node.callFrame.functionName === '(idle)') continue;
    const ms = us / 1000;
    busyMs += ms;
    const { name, where } = describe(node, parentOf);
    functions.set(name, (functions.get(name) ?? 0) + ms);
    const fileKey = where || node.callFrame.functionName;
    files.set(fileKey, (files.get(fileKey) ?? 0) + ms);
  }
  return { file, busyMs, functions: top(functions, busyMs, count), files: top(files, busyMs, Math.min(count, 12)) };
}

export function renderProfile(summary: ProfileSummary): string {
  const lines = [
    `${path.basename(summary.file)}: ${summary.busyMs.toFixed(0)} ms sampled (idle excluded)`,
    '  top functions by self time:',
  ];
  for (const entry of summary.functions)
    lines.push(`    ${entry.ms.toFixed(1).padStart(8)} ms ${entry.percent.toFixed(1).padStart(5)} %  ${entry.name}`);
  lines.push('  by file / package:');
  for (const entry of summary.files)
    lines.push(`    ${entry.ms.toFixed(1).padStart(8)} ms ${entry.percent.toFixed(1).padStart(5)} %  ${entry.name}`);
  return lines.join('\n');
}

if (require.main === module) {
  const [file, count] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node dist/bench/profile.js FILE.cpuprofile [TOP]\n');
    process.exit(2);
  }
  process.stdout.write(`${renderProfile(summariseProfile(file, count ? Number(count) : 25))}\n`);
}
