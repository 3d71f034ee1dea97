/**
 * Hot-plug burst: with a reactor running and idle, one `ip -batch` creates N/2 veth pairs (both
 * ends match, N managed interfaces). The clock runs from starting the batch until the reactor
 * has brought the N-th interface into policy (offloadd: the N-th `initial` ledger record, written
 * after the read-back verified the change; at most an fdatasync + 1 ms poll late). Reactors, each
 * in a fresh namespace: offloadd (log info, and log warning), the C reactor (the event-driven
 * floor, in the very same conditions: it contends with `ip` for rtnl_lock just as offloadd does)
 * and the C listener running an `ethtool -K` process per event (today's practice, udev-like).
 */
import type { BenchContext } from '../context';
import type { LogLevel } from '../daemon';
import { vethPairCommands, vethPairNames, withNetns } from '../netns';
import type { GoalCheck, Measurement, ScenarioResult } from '../report';
import { elapsedUs, nowNs, runAsync, settle } from '../system';
import { assertCompliant, ethtoolLoopUs, floorPerInterface } from './common';
import { withReactor, type ReactorKind } from './reactors';

const PREFIX = 'm';
/** Generous: today's practice needs ~1.2 ms per interface, offloadd ~0.25 ms. */
const timeoutMs = (n: number): number => 60_000 + n * 10;

export interface BurstRun {
  kind: ReactorKind;
  level: LogLevel;
  /** batch start → last compliant, µs. */
  totalUs: number;
  /** batch start → `ip -batch` exited, µs. */
  batchUs: number;
  /** The reactor's CPU time over the burst, µs (NaN for today's: its ethtool children are apart). */
  cpuUs: number;
}

export async function burstRun(ctx: BenchContext, n: number, kind: ReactorKind, level: LogLevel): Promise<BurstRun> {
  const commands = vethPairCommands(PREFIX, n / 2).join('\n') + '\n';
  return withNetns(ctx.tools, (netns) =>
    withReactor(
      ctx,
      netns,
      kind,
      `burst-${n}-${level}`,
      async (reactor) => {
        await settle();
        ctx.progress(`burst N=${n}: ${kind}${kind === 'offloadd' ? ` --log-level ${level}` : ''}`);
        const cpuBefore = reactor.cpuNs();
        const started = nowNs();
        let batchUs = NaN;
        const batch = runAsync('ip', ['-n', netns.name, '-batch', '-'], commands).then(() => {
          batchUs = elapsedUs(started);
        });
        const compliantAt = await reactor.allCompliant(n, timeoutMs(n));
        const cpuUs = (reactor.cpuNs() - cpuBefore) / 1000;
        await batch;
        assertCompliant(netns, PREFIX, n);
        return { kind, level, totalUs: elapsedUs(started, compliantAt), batchUs, cpuUs };
      },
      { logLevel: level, reportAfter: n },
    ),
  );
}

interface Baselines {
  createAloneUs: number;
  floorUs: number;
  ethtoolUs: number;
}

/** The same batch with nothing reacting, then floor.c and the ethtool loop on those interfaces. */
async function baselines(ctx: BenchContext, n: number): Promise<Baselines> {
  return withNetns(ctx.tools, async (netns) => {
    ctx.progress(`burst N=${n}: creation alone, C floor loop, ethtool loop`);
    await settle();
    const started = nowNs();
    await runAsync('ip', ['-n', netns.name, '-batch', '-'], vethPairCommands(PREFIX, n / 2).join('\n') + '\n');
    const createAloneUs = elapsedUs(started);
    const floor = await floorPerInterface(ctx, netns, PREFIX);
    await settle();
    const ethtoolUs = ethtoolLoopUs(netns, PREFIX, vethPairNames(PREFIX, n / 2)) / n;
    return { createAloneUs, floorUs: floor.changeUs, ethtoolUs };
  });
}

function sizeReport(
  n: number,
  runs: readonly BurstRun[],
  base: Baselines,
): { measurements: Measurement[]; goals: GoalCheck[] } {
  const scenario = `burst N=${n}`;
  const find = (kind: ReactorKind, level: LogLevel = 'info'): BurstRun | undefined =>
    runs.find((run) => run.kind === kind && (kind !== 'offloadd' || run.level === level));
  const [offloadd, warning, floor, today] = [
    find('offloadd'),
    find('offloadd', 'warning'),
    find('floor'),
    find('today'),
  ];
  const row = (metric: string, pick: (run: BurstRun) => number, withToday = true): Measurement => ({
    scenario,
    metric,
    unit: 'us',
    offloadd: offloadd ? pick(offloadd) : NaN,
    floor: floor ? pick(floor) : undefined,
    baseline: today && withToday ? pick(today) : undefined,
  });
  const beyondCreation = (run: BurstRun): number => (run.totalUs - base.createAloneUs) / n;
  const measurements: Measurement[] = [
    {
      scenario,
      metric: `creating ${n / 2} veth pairs alone (ip -batch, nothing reacting)`,
      unit: 'us',
      offloadd: NaN,
      baseline: base.createAloneUs,
    },
    row('batch start → last compliant', (run) => run.totalUs),
    row('  of which after ip -batch exited', (run) => run.totalUs - run.batchUs),
    row('  (total − creation alone) / N', beyondCreation),
    row('reactor CPU per interface during the burst', (run) => run.cpuUs / n, false),
    {
      scenario,
      metric: 'sequential loop per interface (floor.c / ethtool -K), no burst',
      unit: 'us',
      offloadd: NaN,
      floor: base.floorUs,
      baseline: base.ethtoolUs,
    },
  ];
  if (warning) {
    measurements.push(
      { scenario, metric: 'batch start → last compliant, log warning', unit: 'us', offloadd: warning.totalUs },
      {
        scenario,
        metric: 'offloadd CPU per interface, log warning',
        unit: 'us',
        offloadd: warning.cpuUs / n,
        floor: floor ? floor.cpuUs / n : undefined,
      },
    );
  }
  // Issue 13's goal: the daemon's CPU per interface against the C reactor's in the same burst.
  // Both include spinning on rtnl_lock while `ip` holds it, so the ratio is what the daemon adds.
  const goals: GoalCheck[] = [];
  if (offloadd && floor && floor.cpuUs > 0) {
    goals.push({
      goal: `${scenario}: daemon CPU per interface ≤ 1.3× the C reactor's in the same burst (log info)`,
      measured: offloadd.cpuUs / floor.cpuUs,
      limit: 1.3,
      direction: 'atMost',
      unit: 'x',
    });
  }
  return { measurements, goals };
}

export async function burstScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const measurements: Measurement[] = [];
  const goals: GoalCheck[] = [];
  const raw: Record<string, unknown> = {};
  for (const n of ctx.burstSizes) {
    const base = await baselines(ctx, n);
    const runs: BurstRun[] = [];
    const failed: string[] = [];
    const plan: Array<[ReactorKind, LogLevel]> = [
      ['offloadd', 'info'],
      ['offloadd', 'warning'],
      ['floor', 'info'],
      ['today', 'info'],
    ];
    for (const [kind, level] of plan) {
      try {
        runs.push(await burstRun(ctx, n, kind, level));
      } catch (error) {
        // One reactor failing (e.g. a baseline losing events) must not lose the others' figures.
        failed.push(`${kind}/${level}: ${(error as Error).message}`);
        ctx.progress(`burst N=${n}: ${kind} failed: ${(error as Error).message}`);
      }
    }
    const report = sizeReport(n, runs, base);
    measurements.push(...report.measurements);
    goals.push(...report.goals);
    raw[`n${n}`] = { base, runs, failed };
  }
  return {
    name: 'burst',
    description:
      'Hot-plug burst: a reactor runs (idle) in an empty namespace; one `ip -batch` creates N/2 veth pairs (both ends ' +
      'match "m*", N managed). Clock: batch start → the reactor reports the N-th interface compliant (offloadd: N-th `initial` ' +
      'ledger record). C FLOOR column: observer.c reactor in the same burst; TODAY: the same listener running `ethtool -K` per event. ' +
      "Goal: the reactor process's CPU time over the burst, offloadd against the C reactor in the same conditions; it includes " +
      'spinning on rtnl_lock while `ip` holds it, for offloadd and the C reactor alike. (total − the same batch with nothing reacting) / N ' +
      "is shown beside floor.c's sequential cost and today's (ethtool per event) figure.",
    measurements,
    goals,
    raw,
  };
}
