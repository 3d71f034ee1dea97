/**
 * Tap churn: what a hypervisor does all day. With a driver/PCI rule (the shipped BCM57508 rule),
 * `ip -batch` creates N taps and deletes them again; none can match (a tap has no parent device,
 * so no PCI id). Measured: the reactor's CPU time from the batch's start until it has gone quiet,
 * per kernel link message (counted by an `ip monitor link` in the same namespace) and per tap.
 * C FLOOR column: observer.c's reactor in the same churn (it parses each message and compares the
 * name with its prefix: the least any listener can do).
 */
import type { BenchContext } from '../context';
import { withNetns, type BenchNetns } from '../netns';
import type { GoalCheck, Measurement, ScenarioResult } from '../report';
import { nowNs, runAsync, settle, sleep, elapsedUs } from '../system';
import { startDaemon } from './common';
import { startReactor, type Reactor } from './reactors';

/** Issue 13: a non-matching link created and deleted costs at most this much daemon CPU per event. */
const GOAL_US_PER_EVENT = 15;
/** Quiet = the reactor used less than this much CPU over one poll interval (1 %: a CPU profiler keeps sampling). */
const QUIET_NS = 1_000_000;
const POLL_MS = 100;
/**
 * The daemon gives back its start-up memory after a second without link events (a full
 * collection, 30–100 ms of CPU; src/memory.ts), and V8's memory reducer follows it with one or
 * two incremental collections 8 s later (~10–20 ms). The taps never wake the daemon (the kernel
 * filters them), so those one-off start-up costs would land in the churn's window: wait them out
 * first, as the idle scenario does (its 12 s settle; it shows them apart as the start-up tail).
 */
const START_UP_TAIL_MS = 12_000;

const CHURN_POLICY = [
  '# offloadd benchmark policy for tap churn (written by bench/scenarios/churn.ts)',
  'mode: enforce',
  'sweep_interval: 300',
  'rules:',
  '  - name: bcm57508-gro-gso-off',
  '    match: { driver: bnxt_en, pci: "14e4:1750" }',
  '    features: { gro: off, gso: off }',
  '',
].join('\n');

interface ChurnRun {
  cpuUs: number;
  /** Kernel link messages during the churn (RTM_NEWLINK + RTM_DELLINK). */
  messages: number;
  wallUs: number;
}

/** Counts link messages as `ip monitor link` prints them (one unindented line each). */
function messageCounter(netns: BenchNetns): { count: () => number; stop: () => void } {
  const monitor = netns.spawn('ip', ['-o', 'monitor', 'link']);
  let count = 0;
  let partial = '';
  monitor.stdout?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    count += lines.filter((line) => line.trim() !== '').length;
  });
  return { count: () => count, stop: () => netns.kill(monitor) };
}

async function untilQuiet(reactor: Reactor): Promise<void> {
  let last = reactor.cpuNs();
  for (;;) {
    await sleep(POLL_MS);
    const now = reactor.cpuNs();
    if (now - last < QUIET_NS) return;
    last = now;
  }
}

async function churnRun(ctx: BenchContext, kind: 'offloadd' | 'floor', taps: number): Promise<ChurnRun> {
  const names = Array.from({ length: taps }, (_, i) => `tap${i}`);
  const commands = [
    ...names.map((name) => `tuntap add mode tap name ${name}`),
    ...names.map((name) => `link del ${name}`),
  ];
  return withNetns(ctx.tools, async (netns) => {
    const reactor =
      kind === 'offloadd'
        ? await (async (): Promise<Reactor> => {
            const daemon = await startDaemon(ctx, netns, 'info', `churn-${taps}`, CHURN_POLICY);
            await sleep(START_UP_TAIL_MS);
            return {
              kind,
              cpuNs: () => daemon.cpuNs(),
              allCompliant: () => Promise.reject(new Error('unused')),
              stop: async () => {
                await daemon.stop();
              },
            };
          })()
        : await startReactor(ctx, netns, 'floor', `churn-${taps}`, { prefix: 'm' });
    const counter = messageCounter(netns);
    try {
      await settle();
      await sleep(200); // the monitor is subscribed
      ctx.progress(`churn: ${taps} taps created and deleted, ${kind}`);
      const before = reactor.cpuNs();
      const started = nowNs();
      await runAsync('ip', ['-n', netns.name, '-batch', '-'], commands.join('\n') + '\n');
      await untilQuiet(reactor);
      const wallUs = elapsedUs(started);
      const cpuUs = (reactor.cpuNs() - before) / 1000;
      return { cpuUs, messages: counter.count(), wallUs };
    } finally {
      counter.stop();
      await reactor.stop();
    }
  });
}

export async function churnScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const taps = ctx.churnTaps;
  const offloadd = await churnRun(ctx, 'offloadd', taps);
  const floor = await churnRun(ctx, 'floor', taps);
  const scenario = `tap churn (${taps} taps)`;
  const perEvent = (run: ChurnRun): number => run.cpuUs / run.messages;
  const measurements: Measurement[] = [
    {
      scenario,
      metric: 'link messages (create + delete, `ip monitor link`)',
      unit: 'count',
      offloadd: offloadd.messages,
      floor: floor.messages,
    },
    {
      scenario,
      metric: 'reactor CPU per link message (driver/PCI rule, nothing matches)',
      unit: 'us',
      offloadd: perEvent(offloadd),
      floor: perEvent(floor),
    },
    {
      scenario,
      metric: 'reactor CPU per tap (created and deleted)',
      unit: 'us',
      offloadd: offloadd.cpuUs / taps,
      floor: floor.cpuUs / taps,
    },
  ];
  const goals: GoalCheck[] = [
    {
      goal: `${scenario}: daemon CPU per event ≤ ${GOAL_US_PER_EVENT} µs (driver/PCI rule)`,
      measured: perEvent(offloadd),
      limit: GOAL_US_PER_EVENT,
      direction: 'atMost',
      unit: 'us',
    },
  ];
  return {
    name: 'churn',
    description:
      `Tap churn: with the shipped driver/PCI rule (bnxt_en, 14e4:1750), one \`ip -batch\` creates ${taps} taps and deletes them. ` +
      'CPU = the reactor process from the batch start until it is quiet (< 1 ms CPU per 100 ms); per event = divided by the link ' +
      'messages an `ip -o monitor link` in the same namespace counted. C FLOOR: observer.c reactor (parses each message, compares the name).',
    measurements,
    goals,
    raw: { offloadd, floor },
  };
}
