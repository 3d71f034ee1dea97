/**
 * Memory against speed, per node option set (issue 22 #4): for each variant of the daemon's node
 * options and environment, in the same run and in rotating order, round after round:
 *  - idle RSS with 1,000 managed interfaces, 12 s after READY, against a bare node of the same
 *    binary (no options: the reference the goal names), measured in the same round;
 *  - start-up: spawn → READY over those 1,000 non-compliant interfaces;
 *  - drift p50/p99 on those interfaces (the observer's drift trials, as the drift scenario);
 *  - burst CPU per interface: N = 1,000 hot-plugged (the burst scenario's offloadd run).
 * Run it with --packaged for the build the packages ship. Medians over the rounds (--reps).
 */
import type { BenchContext } from '../context';
import { vethPairCommands, withNetns } from '../netns';
import type { Measurement, ScenarioResult } from '../report';
import { shippedNodeFlags, withOptions } from '../runtime';
import { median } from '../stats';
import { sleep } from '../system';
import { burstRun } from './burst';
import { assertCompliant, startDaemon } from './common';
import { bareNodeRssMiB } from './idle';
import { driftTrials } from './reactors';

const PREFIX = 'm';
const MANAGED = 1000;
const BURST_N = 1000;
/** As the idle scenario: V8's memory reducer and the daemon's burst release are done by then. */
const SETTLE_MS = 12_000;
/** Issue 13/22: idle RSS at most this much above a bare node of the same binary. */
const RSS_ABOVE_NODE_GOAL_MIB = 12;

export interface MemoryVariant {
  name: string;
  nodeFlags: readonly string[];
  env: Readonly<Record<string, string>>;
}

export const MEMORY_VARIANTS: readonly MemoryVariant[] = [
  { name: 'no options', nodeFlags: [], env: {} },
  { name: '--jitless', nodeFlags: ['--jitless'], env: {} },
  { name: '--lite-mode', nodeFlags: ['--lite-mode'], env: {} },
  { name: '--no-opt --no-maglev', nodeFlags: ['--no-opt', '--no-maglev'], env: {} },
  { name: '--max-semi-space-size=1', nodeFlags: ['--max-semi-space-size=1'], env: {} },
  { name: '--v8-pool-size=1', nodeFlags: ['--v8-pool-size=1'], env: {} },
  { name: '--single-threaded', nodeFlags: ['--single-threaded'], env: {} },
  { name: 'MALLOC_ARENA_MAX=1', nodeFlags: [], env: { MALLOC_ARENA_MAX: '1' } },
  { name: '--jitless --v8-pool-size=1', nodeFlags: ['--jitless', '--v8-pool-size=1'], env: {} },
  {
    name: '--jitless --v8-pool-size=1, MALLOC_ARENA_MAX=1',
    nodeFlags: ['--jitless', '--v8-pool-size=1'],
    env: { MALLOC_ARENA_MAX: '1' },
  },
];

interface VariantRound {
  rssMiB: number;
  bareNodeMiB: number;
  /** A bare node with the variant's own options (what the options do to node itself). */
  bareNodeSameOptionsMiB: number;
  startupUs: number;
  driftP50Us: number;
  driftP99Us: number;
  burstCpuUsPerInterface: number;
  burstTotalUs: number;
}

async function variantRound(ctx: BenchContext, variant: MemoryVariant): Promise<VariantRound> {
  const runtime = withOptions(ctx.runtime, variant.nodeFlags, variant.env);
  const variantCtx: BenchContext = { ...ctx, runtime };
  const idle = await withNetns(ctx.tools, async (netns) => {
    netns.batch(vethPairCommands(PREFIX, MANAGED / 2));
    const daemon = await startDaemon(variantCtx, netns, 'info', 'memory');
    try {
      assertCompliant(netns, PREFIX, MANAGED);
      await sleep(SETTLE_MS);
      const rssMiB = daemon.memory().rssKiB / 1024;
      const drift = await driftTrials(netns, PREFIX, ctx.driftTrials);
      return { startupUs: daemon.startupUs, rssMiB, drift: drift.drift };
    } finally {
      await daemon.stop();
    }
  });
  const burst = await burstRun(variantCtx, BURST_N, 'offloadd', 'info');
  return {
    rssMiB: idle.rssMiB,
    bareNodeMiB: await bareNodeRssMiB(ctx.runtime.node),
    bareNodeSameOptionsMiB: await bareNodeRssMiB(runtime.node, runtime.nodeFlags, runtime.env),
    startupUs: idle.startupUs,
    driftP50Us: idle.drift.p50,
    driftP99Us: idle.drift.p99,
    burstCpuUsPerInterface: burst.cpuUs / BURST_N,
    burstTotalUs: burst.totalUs,
  };
}

type Summary = { [K in keyof VariantRound]: number };

function summarise(rounds: readonly VariantRound[]): Summary {
  const pick = (key: keyof VariantRound): number => median(rounds.map((round) => round[key]));
  return {
    rssMiB: pick('rssMiB'),
    bareNodeMiB: pick('bareNodeMiB'),
    bareNodeSameOptionsMiB: pick('bareNodeSameOptionsMiB'),
    startupUs: pick('startupUs'),
    driftP50Us: pick('driftP50Us'),
    driftP99Us: pick('driftP99Us'),
    burstCpuUsPerInterface: pick('burstCpuUsPerInterface'),
    burstTotalUs: pick('burstTotalUs'),
  };
}

/** One line per variant, for the progress stream and the docs. */
function renderLine(name: string, summary: Summary, reference: Summary): string {
  const ratio = (value: number, base: number): string => `${(value / base).toFixed(2)}×`;
  return (
    `${name.padEnd(42)} RSS ${summary.rssMiB.toFixed(1)} MiB (+${(summary.rssMiB - summary.bareNodeMiB).toFixed(1)}), ` +
    `start-up ${(summary.startupUs / 1000).toFixed(0)} ms (${ratio(summary.startupUs, reference.startupUs)}), ` +
    `drift p50/p99 ${summary.driftP50Us.toFixed(0)}/${summary.driftP99Us.toFixed(0)} µs ` +
    `(${ratio(summary.driftP99Us, reference.driftP99Us)}), burst CPU ${summary.burstCpuUsPerInterface.toFixed(1)} µs/if ` +
    `(${ratio(summary.burstCpuUsPerInterface, reference.burstCpuUsPerInterface)})`
  );
}

export async function memoryScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const rounds = new Map<string, VariantRound[]>(MEMORY_VARIANTS.map((variant) => [variant.name, []]));
  for (let round = 0; round < ctx.reps; round++) {
    // Rotated each round, so that no variant always meets the same moment of the machine's load.
    for (let index = 0; index < MEMORY_VARIANTS.length; index++) {
      const variant = MEMORY_VARIANTS[(index + round) % MEMORY_VARIANTS.length] as MemoryVariant;
      ctx.progress(`memory: round ${round + 1}/${ctx.reps}, ${variant.name}`);
      const sample = await variantRound(ctx, variant);
      ctx.progress(`  ${JSON.stringify(sample)}`);
      rounds.get(variant.name)?.push(sample);
    }
  }
  const summaries = new Map([...rounds].map(([name, samples]) => [name, summarise(samples)]));
  const reference = summaries.get(MEMORY_VARIANTS[0]?.name ?? '') as Summary;
  const measurements: Measurement[] = [];
  for (const [name, summary] of summaries) {
    ctx.progress(renderLine(name, summary, reference));
    const scenario = `memory: ${name}`;
    measurements.push(
      {
        scenario,
        metric: `idle RSS above bare node, ${MANAGED} managed`,
        unit: 'MiB',
        offloadd: summary.rssMiB - summary.bareNodeMiB,
        baseline: reference.rssMiB - reference.bareNodeMiB,
      },
      {
        scenario,
        metric: `start-up, ${MANAGED} non-compliant (spawn → READY)`,
        unit: 'us',
        offloadd: summary.startupUs,
        baseline: reference.startupUs,
      },
      {
        scenario,
        metric: 'drift p99',
        unit: 'us',
        offloadd: summary.driftP99Us,
        baseline: reference.driftP99Us,
      },
      {
        scenario,
        metric: `burst CPU per interface, N=${BURST_N}`,
        unit: 'us',
        offloadd: summary.burstCpuUsPerInterface,
        baseline: reference.burstCpuUsPerInterface,
      },
    );
  }
  const shippedFlags = shippedNodeFlags().join(' ');
  const shipped = summaries.get(shippedFlags);
  return {
    name: 'memory',
    description:
      `Memory against speed per node option set, the daemon run as ${ctx.runtime.kind}` +
      `${ctx.runtime.nodeFlags.length > 0 ? ` (${ctx.runtime.nodeFlags.join(' ')})` : ''}: idle RSS with ${MANAGED} ` +
      `managed veth ends ${SETTLE_MS / 1000} s after READY minus a bare node of the same binary in the same round; ` +
      `spawn → READY over those ${MANAGED}; ${ctx.driftTrials} drift trials on them; the CPU of a ${BURST_N}-interface ` +
      `hot-plug burst per interface. Medians of ${ctx.reps} rounds, the variants in rotating order. The TODAY column ` +
      'holds the same figure with no options, for comparison.',
    measurements,
    goals: shipped
      ? [
          {
            goal: `idle RSS with ${MANAGED} interfaces ≤ +12 MiB above a bare node (${ctx.runtime.kind}, ${shippedFlags})`,
            measured: shipped.rssMiB - shipped.bareNodeMiB,
            limit: RSS_ABOVE_NODE_GOAL_MIB,
            direction: 'atMost',
            unit: 'MiB',
          },
        ]
      : [],
    raw: { runtime: ctx.runtime, rounds: Object.fromEntries(rounds), summaries: Object.fromEntries(summaries) },
  };
}
