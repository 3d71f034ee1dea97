/**
 * Idle cost with 1,000 managed interfaces: after start-up and a settle, the daemon's RSS and its
 * CPU time over a window with nothing happening (no polling means ~0 CPU and ~0 wake-ups;
 * the safety sweep runs every 300 s, outside a 60 s window).
 */
import { spawn } from 'node:child_process';
import type { BenchContext } from '../context';
import { vethPairCommands, withNetns } from '../netns';
import type { ScenarioResult } from '../report';
import { memoryStatus, sleep } from '../system';
import { withDaemon } from './common';

const MANAGED = 1000;
/** The start-up tail (V8's memory reducer) is measured from 3 s to 12 s after READY. */
const SETTLE_FROM_MS = 3000;
const SETTLE_UNTIL_MS = 12000;
/** Issue 13: at most this much above a bare `node` of the same runtime, measured in the same run. */
const RSS_ABOVE_NODE_GOAL_MIB = 12;
/** "0 %": nothing measurable (a few µs of timers over the window at most). */
const CPU_GOAL_PERCENT = 0.01;

/** RSS of a bare node process of the same binary that only waits, for comparison. */
export async function bareNodeRssMiB(
  node: string,
  nodeFlags: readonly string[] = [],
  env: Readonly<Record<string, string>> = {},
): Promise<number> {
  const child = spawn(node, [...nodeFlags, '-e', 'setTimeout(() => {}, 5000)'], {
    stdio: 'ignore',
    env: { ...process.env, ...env },
  });
  try {
    await sleep(1500);
    return memoryStatus(child.pid as number).rssKiB / 1024;
  } finally {
    child.kill('SIGKILL');
  }
}

/** The daemon's RSS with nothing to manage: what loading it costs before any interface. */
async function emptyDaemonRssMiB(ctx: BenchContext): Promise<number> {
  return withNetns(ctx.tools, (netns) =>
    withDaemon(ctx, netns, 'info', 'idle-empty', async (daemon) => {
      await sleep(3000);
      return daemon.memory().rssKiB / 1024;
    }),
  );
}

export async function idleScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const bareRss = await bareNodeRssMiB(ctx.runtime.node);
  const emptyRss = await emptyDaemonRssMiB(ctx);
  const sample = await withNetns(ctx.tools, async (netns) => {
    netns.batch(vethPairCommands('m', MANAGED / 2));
    return withDaemon(ctx, netns, 'info', 'idle', async (daemon) => {
      ctx.progress(`idle: ${MANAGED} managed interfaces, ${ctx.idleSeconds} s window`);
      // V8's memory reducer runs GCs for several seconds after a start-up's allocation burst:
      // a start-up cost, not an idle one, so it is measured apart and let finish first.
      await sleep(SETTLE_FROM_MS);
      const tailStart = { cpuNs: daemon.cpuNs(), at: process.hrtime.bigint() };
      await sleep(SETTLE_UNTIL_MS - SETTLE_FROM_MS);
      const before = { cpuNs: daemon.cpuNs(), memory: daemon.memory(), at: process.hrtime.bigint() };
      await sleep(ctx.idleSeconds * 1000);
      const after = { cpuNs: daemon.cpuNs(), memory: daemon.memory(), at: process.hrtime.bigint() };
      const tailMs = (before.cpuNs - tailStart.cpuNs) / 1e6;
      const windowNs = Number(after.at - before.at);
      return {
        cpuPercent: (100 * (after.cpuNs - before.cpuNs)) / windowNs,
        cpuMs: (after.cpuNs - before.cpuNs) / 1e6,
        startupTailCpuMs: tailMs,
        windowS: windowNs / 1e9,
        rssMiB: after.memory.rssKiB / 1024,
        peakRssMiB: after.memory.peakRssKiB / 1024,
        wakeups: after.memory.voluntarySwitches - before.memory.voluntarySwitches,
      };
    });
  });
  const scenario = `idle, ${MANAGED} managed`;
  return {
    name: 'idle',
    description:
      `Idle: ${MANAGED} managed veth ends (${MANAGED / 2} pairs), daemon started, 12 s settle (V8's memory reducer ` +
      `finishes its post-start-up GCs; its CPU from 3 s to 12 s after READY is shown apart), then a ${ctx.idleSeconds} s window. ` +
      'CPU from /proc/PID/task/*/schedstat (ns); RSS = VmRSS at the end, peak = VmHWM (start-up included); wake-ups = voluntary ' +
      'context switches of the main thread group over the window.',
    measurements: [
      {
        scenario,
        metric: 'RSS (VmRSS) after the window; floor column: bare node',
        unit: 'MiB',
        offloadd: sample.rssMiB,
        floor: bareRss,
      },
      { scenario, metric: 'peak RSS (VmHWM, start-up included)', unit: 'MiB', offloadd: sample.peakRssMiB },
      { scenario, metric: 'RSS with 0 managed (empty namespace)', unit: 'MiB', offloadd: emptyRss, floor: bareRss },
      { scenario, metric: `CPU over ${sample.windowS.toFixed(0)} s`, unit: '%', offloadd: sample.cpuPercent },
      { scenario, metric: 'voluntary context switches in the window', unit: 'count', offloadd: sample.wakeups },
      {
        scenario,
        metric: 'CPU time 3–12 s after READY (start-up tail, ms)',
        unit: 'count',
        offloadd: sample.startupTailCpuMs,
      },
    ],
    goals: [
      {
        goal: `idle RSS with ${MANAGED} interfaces ≤ +12 MiB above a bare node`,
        measured: sample.rssMiB - bareRss,
        limit: RSS_ABOVE_NODE_GOAL_MIB,
        direction: 'atMost',
        unit: 'MiB',
      },
      {
        goal: `idle CPU with ${MANAGED} interfaces 0 % (≤ 0.01 %)`,
        measured: sample.cpuPercent,
        limit: CPU_GOAL_PERCENT,
        direction: 'atMost',
        unit: '%',
      },
    ],
    raw: { ...sample, bareNodeRssMiB: bareRss, emptyDaemonRssMiB: emptyRss },
  };
}
