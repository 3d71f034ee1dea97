/**
 * Command-line options and what every scenario is handed: sizes, repetitions, the C tools,
 * where profiles go, and a progress line printer (stderr, so stdout stays the table).
 */
import { parseArgs } from 'node:util';
import type { DaemonRuntime } from './runtime';
import type { CTools } from './tools';

export const SCENARIOS = [
  'startup',
  'burst',
  'churn',
  'exposure',
  'drift',
  'idle',
  'flapping',
  'list',
  'metrics',
  'attribution',
  'memory',
  'tails',
] as const;
export type ScenarioName = (typeof SCENARIOS)[number];
/** Long comparisons (many daemons each) that a plain run leaves out: asked for with --only. */
const ON_REQUEST: readonly ScenarioName[] = ['memory', 'tails'];

export interface BenchSettings {
  quick: boolean;
  only: ScenarioName[];
  /** Managed interfaces at start-up (each a veth end; pairs = N / 2). */
  startupSizes: number[];
  burstSizes: number[];
  listSize: number;
  /** Non-matching taps created and deleted in the churn scenario. */
  churnTaps: number;
  /** Repetitions of each timed start-up / floor run (the median is reported). */
  reps: number;
  exposureTrials: number;
  driftTrials: number;
  idleSeconds: number;
  flappingSeconds: number;
  flappingTrials: number;
  /** Directory for `node --cpu-prof` profiles of every daemon run, or null. */
  profileDir: string | null;
  /** The daemon as the packages ship it (bundle, stripped node) instead of the checkout. */
  packaged: boolean;
  /** Node options for every daemon run. */
  nodeFlags: string[];
  /** Every reactor (offloadd, the C reactors) on CPU 1, the observers on CPU 0 (taskset). */
  pin: boolean;
}

export interface BenchContext extends BenchSettings {
  tools: CTools;
  /** What runs as the daemon: node binary, entry, node options, environment. */
  runtime: DaemonRuntime;
  progress(message: string): void;
}

export const USAGE = `npm run bench -- [OPTIONS]

  --quick            a short run (~2 minutes): N = 1,000 only, fewer trials, 10 s idle window
  --only LIST        comma-separated scenarios: ${SCENARIOS.join(', ')}
                     (${ON_REQUEST.join(' and ')} only when named: they start dozens of daemons)
  --sizes LIST       managed-interface counts for start-up and burst (e.g. 1000,5000)
  --reps N           repetitions of each start-up / floor measurement (median reported)
  --profile DIR      run every daemon under node --cpu-prof, profiles in DIR, summaries printed
  --packaged         run the daemon as the packages ship it: the esbuild bundle on a stripped
                     copy of the same node (built into a temporary directory)
  --node-flags TEXT  node options for every daemon run (e.g. "--max-semi-space-size=1")
  --pin              every reactor (offloadd or a C reactor) on CPU 1 and the observers on CPU 0
                     (taskset; the tails scenario compares pinned and unpinned by itself)
  -h, --help         this help

Needs root (own network namespaces), ip (iproute2), ethtool and cc. Prints one table and writes
bench/results/<timestamp>.json.`;

function positiveIntegers(text: string, option: string): number[] {
  const values = text.split(',').map((part) => Number(part.trim()));
  if (values.length === 0 || values.some((value) => !Number.isInteger(value) || value <= 0 || value % 2 !== 0)) {
    throw new Error(`${option} takes even positive integers (veth pairs: both ends are managed)`);
  }
  return values;
}

/** Parses argv; returns null when --help was asked for. Throws on a usage error. */
export function parseSettings(argv: string[]): BenchSettings | null {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      sizes: { type: 'string' },
      reps: { type: 'string' },
      profile: { type: 'string' },
      packaged: { type: 'boolean', default: false },
      'node-flags': { type: 'string' },
      pin: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return null;
  const only =
    values.only === undefined
      ? SCENARIOS.filter((name) => !ON_REQUEST.includes(name))
      : values.only.split(',').map((name) => name.trim());
  const unknown = only.filter((name) => !(SCENARIOS as readonly string[]).includes(name));
  if (unknown.length > 0) throw new Error(`unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.join(', ')}`);
  const quick = values.quick;
  const sizes = values.sizes === undefined ? null : positiveIntegers(values.sizes, '--sizes');
  const reps = values.reps === undefined ? (quick ? 1 : 3) : Number(values.reps);
  if (!Number.isInteger(reps) || reps < 1) throw new Error('--reps takes a positive integer');
  return {
    quick,
    only: only as ScenarioName[],
    startupSizes: sizes ?? (quick ? [1000] : [1000, 5000, 10000]),
    burstSizes: sizes ?? (quick ? [1000] : [1000, 5000]),
    listSize: 10000,
    churnTaps: 2000,
    reps,
    exposureTrials: quick ? 200 : 400,
    driftTrials: quick ? 200 : 300,
    idleSeconds: quick ? 10 : 60,
    flappingSeconds: quick ? 10 : 30,
    flappingTrials: quick ? 100 : 200,
    profileDir: values.profile ?? null,
    packaged: values.packaged,
    nodeFlags: (values['node-flags'] ?? '').split(/\s+/).filter((flag) => flag.length > 0),
    pin: values.pin,
  };
}
