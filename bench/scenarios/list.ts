/**
 * The cost of `offloadctl list` (and `--json`) with many managed interfaces: wall time of the
 * whole command as an operator runs it (node start-up included; bare `node -e 0` shown next to
 * it), against a daemon holding N managed veth ends.
 */
import * as path from 'node:path';
import type { BenchContext } from '../context';
import { vethPairCommands, withNetns } from '../netns';
import type { Measurement, ScenarioResult } from '../report';
import { median } from '../stats';
import { elapsedUs, nowNs, REPO_ROOT, run, settle } from '../system';
import { withDaemon } from './common';

const OFFLOADCTL = path.join(REPO_ROOT, 'bin', 'offloadctl');

/** Median wall time (µs) of a command over `reps` runs, and its output size. */
async function timeCommand(
  args: readonly string[],
  reps: number,
): Promise<{ us: number; bytes: number; lines: number }> {
  const times: number[] = [];
  let output = '';
  await settle();
  for (let rep = 0; rep < reps; rep++) {
    const started = nowNs();
    output = run(process.execPath, args);
    times.push(elapsedUs(started));
  }
  return { us: median(times), bytes: Buffer.byteLength(output), lines: output.split('\n').length - 1 };
}

export async function listScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const n = ctx.listSize;
  const reps = Math.max(3, ctx.reps);
  const result = await withNetns(ctx.tools, async (netns) => {
    ctx.progress(`list: ${n} managed interfaces`);
    netns.batch(vethPairCommands('m', n / 2));
    // Log level warning: this scenario is about the API, not the start-up's logging.
    return withDaemon(ctx, netns, 'warning', `list-${n}`, async (daemon) => ({
      node: await timeCommand(['-e', '0'], reps),
      text: await timeCommand([OFFLOADCTL, 'list', '--socket', daemon.socketPath], reps),
      json: await timeCommand([OFFLOADCTL, 'list', '--json', '--socket', daemon.socketPath], reps),
      status: await timeCommand([OFFLOADCTL, 'status', '--socket', daemon.socketPath], reps),
    }));
  });
  const scenario = `offloadctl, ${n} managed`;
  const measurements: Measurement[] = [
    { scenario, metric: `\`offloadctl list\` wall (${result.text.lines} lines)`, unit: 'us', offloadd: result.text.us },
    { scenario, metric: '`offloadctl list --json` wall', unit: 'us', offloadd: result.json.us },
    { scenario, metric: '`offloadctl status` wall', unit: 'us', offloadd: result.status.us },
    { scenario, metric: 'bare `node -e 0` wall (part of each)', unit: 'us', offloadd: result.node.us },
    { scenario, metric: '`list` output', unit: 'bytes', offloadd: result.text.bytes },
    { scenario, metric: '`list --json` output', unit: 'bytes', offloadd: result.json.bytes },
  ];
  return {
    name: 'list',
    description:
      `offloadctl against a daemon managing ${n} veth ends (${n / 2} pairs), median of ${reps} runs, wall time of ` +
      '`node bin/offloadctl list --socket S` (text, then --json) including node start-up. No goal was set; shown for the record.',
    measurements,
    goals: [],
    raw: result,
  };
}
