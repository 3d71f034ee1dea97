/**
 * Start-up reconcile of N pre-existing matching veths (both ends match `m*`, so N / 2 pairs;
 * gso on everywhere, as veth creates them). The clock runs from spawning the daemon to READY=1,
 * which offloadd sends after the initial reconcile, the ledger fdatasync and the API listening.
 * The same start in an empty namespace is the fixed cost (node start-up, modules, policy,
 * addon); total minus fixed is the reconcile portion, divided by N the per-interface cost that
 * is compared with the C floor and the ethtool loop measured on the same interfaces.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BenchContext } from '../context';
import { benchPolicy, type LogLevel } from '../daemon';
import { vethPairCommands, vethPairNames, withNetns, type BenchNetns } from '../netns';
import type { GoalCheck, Measurement, ScenarioResult } from '../report';
import { median } from '../stats';
import { elapsedUs, nowNs, settle } from '../system';
import { assertCompliant, correctionUsMedian, ethtoolLoopUs, floorPerInterface, startDaemon } from './common';

const PREFIX = 'm';
const LEVELS: readonly LogLevel[] = ['info', 'warning'];
/** The restart case: the ledger history a node carries, and the corrections both starts make (issue 22). */
const HISTORY_RECORDS = 20_000;
const RESTART_N = 2000;
/** Pairs of starts (first, restart), back to back, alternating which goes first. */
const MIN_RESTART_PAIRS = 5;

interface DaemonRuns {
  /** spawn → READY, µs, per repetition. */
  startupUs: number[];
  /** Daemon CPU at READY, µs. */
  cpuUs: number[];
  /** Ledger correctionUs median (read → set → verified read-back of one interface). */
  applyUs: number[];
}

/** Starts and stops the daemon `reps` times from a non-compliant state. */
async function daemonRuns(
  ctx: BenchContext,
  netns: BenchNetns,
  level: LogLevel,
  n: number,
  label: string,
): Promise<DaemonRuns> {
  const runs: DaemonRuns = { startupUs: [], cpuUs: [], applyUs: [] };
  for (let rep = 0; rep < ctx.reps; rep++) {
    if (n > 0) netns.setAll(PREFIX, true);
    const daemon = await startDaemon(ctx, netns, level, `${label}-${level}-${rep}`);
    try {
      runs.cpuUs.push(daemon.cpuNs() / 1000);
      runs.startupUs.push(daemon.startupUs);
      if (n > 0) {
        assertCompliant(netns, PREFIX, n);
        runs.applyUs.push(correctionUsMedian(daemon, 'initial'));
      }
    } finally {
      await daemon.stop();
    }
  }
  return runs;
}

interface FixedCost {
  nodeUs: number;
  byLevel: Map<LogLevel, { startupUs: number; cpuUs: number }>;
}

/** The daemon in a namespace with nothing to manage, and bare `node -e 0`, for the fixed part. */
async function fixedCost(ctx: BenchContext): Promise<FixedCost> {
  return withNetns(ctx.tools, async (netns) => {
    await daemonRuns({ ...ctx, reps: 1 }, netns, 'info', 0, 'warmup'); // disk cache, first-load effects
    const byLevel = new Map<LogLevel, { startupUs: number; cpuUs: number }>();
    for (const level of LEVELS) {
      const runs = await daemonRuns(ctx, netns, level, 0, 'empty');
      byLevel.set(level, { startupUs: median(runs.startupUs), cpuUs: median(runs.cpuUs) });
    }
    const node: number[] = [];
    for (let rep = 0; rep < Math.max(3, ctx.reps); rep++) {
      const started = nowNs();
      netns.exec(process.execPath, '-e', '0');
      node.push(elapsedUs(started));
    }
    return { nodeUs: median(node), byLevel };
  });
}

interface SizeResult {
  n: number;
  createUs: number;
  /** The faster of the two C floors (the goal's yardstick), and each. */
  floor: { changeUs: number; compliantUs: number };
  ioctlFloor: { changeUs: number; compliantUs: number };
  netlinkFloor: { changeUs: number; compliantUs: number };
  ethtoolUs: number;
  byLevel: Map<LogLevel, DaemonRuns>;
}

async function measureSize(ctx: BenchContext, n: number): Promise<SizeResult> {
  return withNetns(ctx.tools, async (netns) => {
    ctx.progress(`start-up N=${n}: creating ${n / 2} veth pairs`);
    const created = nowNs();
    netns.batch(vethPairCommands(PREFIX, n / 2));
    const createUs = elapsedUs(created);
    await settle();
    ctx.progress(`start-up N=${n}: C floors (ioctl, ethtool netlink)`);
    const ioctlFloor = await floorPerInterface(ctx, netns, PREFIX, 'ioctl');
    const netlinkFloor = await floorPerInterface(ctx, netns, PREFIX, 'ethtool-netlink');
    const floor = ioctlFloor.changeUs <= netlinkFloor.changeUs ? ioctlFloor : netlinkFloor;
    ctx.progress(`start-up N=${n}: ethtool loop`);
    await settle();
    const ethtoolUs = ethtoolLoopUs(netns, PREFIX, vethPairNames(PREFIX, n / 2));
    const byLevel = new Map<LogLevel, DaemonRuns>();
    for (const level of LEVELS) {
      ctx.progress(`start-up N=${n}: offloadd --log-level ${level} ×${ctx.reps}`);
      byLevel.set(level, await daemonRuns(ctx, netns, level, n, `startup-${n}`));
    }
    return { n, createUs, floor, ioctlFloor, netlinkFloor, ethtoolUs, byLevel };
  });
}

function sizeReport(size: SizeResult, fixed: FixedCost): { measurements: Measurement[]; goals: GoalCheck[] } {
  const scenario = `start-up N=${size.n}`;
  const ethtoolPerIf = size.ethtoolUs / size.n;
  const measurements: Measurement[] = [];
  const goals: GoalCheck[] = [];
  for (const level of LEVELS) {
    const runs = size.byLevel.get(level);
    const base = fixed.byLevel.get(level);
    if (!runs || !base) continue;
    const totalUs = median(runs.startupUs);
    const perIf = (totalUs - base.startupUs) / size.n;
    measurements.push(
      {
        scenario,
        metric: `spawn → all compliant (READY), log ${level}`,
        unit: 'us',
        offloadd: totalUs,
        baseline: size.ethtoolUs,
      },
      {
        scenario,
        metric: `per interface, reconcile portion, log ${level}`,
        unit: 'us',
        offloadd: perIf,
        floor: size.floor.changeUs,
        baseline: ethtoolPerIf,
      },
      {
        scenario,
        metric: `daemon CPU per interface, log ${level}`,
        unit: 'us',
        offloadd: (median(runs.cpuUs) - base.cpuUs) / size.n,
        floor: size.floor.changeUs,
      },
    );
    if (level === 'info') {
      measurements.push({
        scenario,
        metric: 'apply only (ledger correctionUs, median; in a batch, its time per interface)',
        unit: 'us',
        offloadd: median(runs.applyUs),
        floor: size.floor.changeUs,
      });
      goals.push(
        {
          goal: `${scenario}: per interface ≤ 2× the faster C floor (log info)`,
          measured: perIf / size.floor.changeUs,
          limit: 2,
          direction: 'atMost',
          unit: 'x',
        },
        {
          goal: `${scenario}: ≥ 50× faster than the ethtool loop (log info)`,
          measured: ethtoolPerIf / perIf,
          limit: 50,
          direction: 'atLeast',
          unit: 'x',
        },
      );
    }
  }
  measurements.push(
    {
      scenario,
      metric: 'C floor over the ioctls (GDRVINFO+GFEATURES+SFEATURES+GFEATURES), per interface',
      unit: 'us',
      offloadd: NaN,
      floor: size.ioctlFloor.changeUs,
    },
    {
      scenario,
      metric: 'C floor over ethtool netlink (pipelined FEATURES_GET, then _SET), per interface',
      unit: 'us',
      offloadd: NaN,
      floor: size.netlinkFloor.changeUs,
    },
    {
      scenario,
      metric: 'already compliant, per interface (floor pass 2: ioctl / netlink in the today column)',
      unit: 'us',
      offloadd: NaN,
      floor: size.ioctlFloor.compliantUs,
      baseline: size.netlinkFloor.compliantUs,
    },
    {
      scenario,
      metric: `creating ${size.n / 2} veth pairs (ip -batch)`,
      unit: 'us',
      offloadd: NaN,
      baseline: size.createUs,
    },
  );
  return { measurements, goals };
}

/** HISTORY_RECORDS ledger lines as the daemon writes them (start-up corrections of veths). */
function historyLedger(): string {
  const started = Date.UTC(2026, 10, 1);
  const lines: string[] = [];
  for (let seq = 1; seq <= HISTORY_RECORDS; seq++) {
    const pair = Math.floor((seq - 1) / 2) % (RESTART_N / 2);
    lines.push(
      `${JSON.stringify({
        seq,
        time: new Date(started + seq * 100).toISOString(),
        event: 'initial',
        trigger: 'start',
        action: 'enforced',
        interface: `${PREFIX}${pair}${seq % 2 === 0 ? 'b' : 'a'}`,
        ifindex: 1000 + seq,
        driver: 'veth',
        pci: null,
        rule: 'bench-gso-off',
        feature: 'tx-generic-segmentation',
        wanted: 'off',
        active: 'on',
        correctionUs: 41,
      })}\n`,
    );
  }
  return lines.join('');
}

interface RestartResult {
  /** spawn → READY, µs. */
  firstUs: number[];
  restartUs: number[];
  /** The daemon's CPU at READY, µs (less exposed to the machine's other load than the wall clock). */
  firstCpuUs: number[];
  restartCpuUs: number[];
}

/**
 * The same RESTART_N corrections, started with an empty state directory and with one holding
 * HISTORY_RECORDS records of history, back to back and alternating, so the machine's drift
 * falls on both alike.
 */
export async function restartWithHistory(ctx: BenchContext): Promise<RestartResult> {
  return withNetns(ctx.tools, async (netns) => {
    ctx.progress(`start-up: restart with ${HISTORY_RECORDS} records of history vs first start, N=${RESTART_N}`);
    netns.batch(vethPairCommands(PREFIX, RESTART_N / 2));
    await settle();
    const history = historyLedger();
    // Written and synced before the clock starts: a restart finds its history on disk, and the
    // daemon's first fdatasync of the ledger must not be the one that writes the bench's 6 MB back.
    const seedHistory = (stateDir: string): void => {
      for (const [name, text] of [
        ['ledger.jsonl', history],
        ['ledger.seq', `${HISTORY_RECORDS}\n`],
      ] as const) {
        const fd = fs.openSync(path.join(stateDir, name), 'w', 0o640);
        try {
          fs.writeSync(fd, text);
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
      }
      const dir = fs.openSync(stateDir, 'r');
      try {
        fs.fsyncSync(dir);
      } finally {
        fs.closeSync(dir);
      }
    };
    const result: RestartResult = { firstUs: [], restartUs: [], firstCpuUs: [], restartCpuUs: [] };
    const pairs = Math.max(MIN_RESTART_PAIRS, ctx.reps);
    for (let pair = 0; pair < pairs; pair++) {
      for (const withHistory of pair % 2 === 0 ? [false, true] : [true, false]) {
        netns.setAll(PREFIX, true);
        const label = `restart-${withHistory ? 'history' : 'first'}-${pair}`;
        const daemon = await startDaemon(ctx, netns, 'info', label, benchPolicy(), {
          prepareState: withHistory ? seedHistory : undefined,
        });
        try {
          (withHistory ? result.restartCpuUs : result.firstCpuUs).push(daemon.cpuNs() / 1000);
          (withHistory ? result.restartUs : result.firstUs).push(daemon.startupUs);
          assertCompliant(netns, PREFIX, RESTART_N);
        } finally {
          await daemon.stop();
        }
      }
    }
    return result;
  });
}

export async function startupScenario(ctx: BenchContext): Promise<ScenarioResult> {
  ctx.progress('start-up: fixed cost (empty namespace) and bare node');
  const fixed = await fixedCost(ctx);
  const sizes: SizeResult[] = [];
  for (const n of ctx.startupSizes) sizes.push(await measureSize(ctx, n));

  const measurements: Measurement[] = [
    {
      scenario: 'start-up N=0',
      metric: 'spawn → READY, empty namespace, log info',
      unit: 'us',
      offloadd: fixed.byLevel.get('info')?.startupUs ?? NaN,
    },
    { scenario: 'start-up N=0', metric: 'bare `node -e 0` in the namespace', unit: 'us', offloadd: fixed.nodeUs },
  ];
  const goals: GoalCheck[] = [];
  for (const size of sizes) {
    const report = sizeReport(size, fixed);
    measurements.push(...report.measurements);
    goals.push(...report.goals);
  }
  const restart = await restartWithHistory(ctx);
  const restartScenario = `start-up N=${RESTART_N}, restart`;
  measurements.push(
    {
      scenario: restartScenario,
      metric: `spawn → READY with ${HISTORY_RECORDS} records of history (today: the same start, empty state directory)`,
      unit: 'us',
      offloadd: median(restart.restartUs),
      baseline: median(restart.firstUs),
    },
    {
      scenario: restartScenario,
      metric: `daemon CPU at READY with ${HISTORY_RECORDS} records of history (today: empty state directory)`,
      unit: 'us',
      offloadd: median(restart.restartCpuUs),
      baseline: median(restart.firstCpuUs),
    },
  );
  goals.push({
    goal: `${restartScenario}: with ${HISTORY_RECORDS} records of history ≤ 1.05× a first start, same work`,
    measured: median(restart.restartUs) / median(restart.firstUs),
    limit: 1.05,
    direction: 'atMost',
    unit: 'x',
  });
  return {
    name: 'startup',
    description:
      'Start-up reconcile: N managed veth ends (N/2 pairs, both ends match name "m*"), links down, gso on; ' +
      'policy gso off. Clock: spawn of `ip netns exec NS node bin/offloadd` → READY=1 on a stand-in notify socket. ' +
      'Per interface = (total − the same start in an empty namespace) / N. C floors: the ioctls (GDRVINFO+GFEATURES+SFEATURES+GFEATURES ' +
      'per interface, floor.c) and ethtool netlink (pipelined FEATURES_GET by ifindex, then pipelined FEATURES_SET whose reply verifies, ' +
      'floor_nl.c); the goal compares with the faster. ethtool: `ethtool -K IF gro off gso off` per interface in a shell loop. ' +
      `Restart: N=${RESTART_N}, a first start (empty state directory) and a start whose ledger holds ${HISTORY_RECORDS} records, ` +
      `back to back, alternating, ≥ ${MIN_RESTART_PAIRS} pairs; medians compared.`,
    measurements,
    goals,
    raw: {
      fixed: { nodeUs: fixed.nodeUs, byLevel: Object.fromEntries(fixed.byLevel) },
      restart,
      sizes: sizes.map((size) => ({ ...size, byLevel: Object.fromEntries(size.byLevel) })),
    },
  };
}
