/**
 * `npm run bench`: offloadd against the physical floor (raw ETHTOOL ioctls from C) and today's
 * practice (an `ethtool -K` process per interface), side by side in one run, in the benchmark's
 * own network namespaces (the root namespace is never touched). Prints one table and writes
 * bench/results/<timestamp>.json. See docs/BENCHMARKS.md.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseSettings, USAGE, type BenchContext, type BenchSettings, type ScenarioName } from './context';
import { describeMachine } from './machine';
import { PINNED, setDefaultPinning } from './netns';
import { renderProfile, summariseProfile } from './profile';
import { goalMet, renderGoals, renderMachine, renderMeasurements, writeJson, type ScenarioResult } from './report';
import { attributionScenario } from './scenarios/attribution';
import { burstScenario } from './scenarios/burst';
import { churnScenario } from './scenarios/churn';
import { driftScenario, exposureScenario } from './scenarios/exposure';
import { flappingScenario } from './scenarios/flapping';
import { idleScenario } from './scenarios/idle';
import { listScenario } from './scenarios/list';
import { memoryScenario } from './scenarios/memory';
import { metricsScenario } from './scenarios/metrics';
import { startupScenario } from './scenarios/startup';
import { tailsScenario } from './scenarios/tails';
import { checkoutRuntime, packagedRuntime } from './runtime';
import { run, setSettleLimit, settle } from './system';
import { CTools } from './tools';

const RUNNERS: Record<ScenarioName, (ctx: BenchContext) => Promise<ScenarioResult>> = {
  startup: startupScenario,
  burst: burstScenario,
  churn: churnScenario,
  exposure: exposureScenario,
  drift: driftScenario,
  idle: idleScenario,
  flapping: flappingScenario,
  list: listScenario,
  metrics: metricsScenario,
  attribution: attributionScenario,
  memory: memoryScenario,
  tails: tailsScenario,
};

function requirements(): void {
  if (process.getuid?.() !== 0) throw new Error('the benchmark needs root (it creates network namespaces)');
  for (const [command, args] of [
    ['ip', ['-V']],
    ['ethtool', ['--version']],
    ['cc', ['--version']],
  ] as const) {
    try {
      run(command, [...args]);
    } catch {
      throw new Error(
        `${command} is needed (install ${command === 'ip' ? 'iproute2' : command === 'cc' ? 'gcc' : command})`,
      );
    }
  }
}

function progress(startedAt: number): (message: string) => void {
  return (message) =>
    process.stderr.write(`[bench ${((Date.now() - startedAt) / 1000).toFixed(0).padStart(4)} s] ${message}\n`);
}

/** Another session's tests on this 2-core machine skew everything: say so next to the figures. */
const BUSY_WARNING = 0.1;

async function runScenarios(
  ctx: BenchContext,
): Promise<{ results: ScenarioResult[]; failures: Record<string, string> }> {
  const results: ScenarioResult[] = [];
  const failures: Record<string, string> = {};
  for (const name of ctx.only) {
    try {
      const busyBefore = await settle();
      if (busyBefore > BUSY_WARNING)
        ctx.progress(
          `warning: the machine is ${(busyBefore * 100).toFixed(0)} % busy before ${name}: figures may be noisy`,
        );
      const result = await RUNNERS[name](ctx);
      result.raw['machineBusyBefore'] = busyBefore;
      results.push(result);
    } catch (error) {
      // One broken scenario must not cost the others' figures; it is reported and fails the run.
      failures[name] = (error as Error).stack ?? String(error);
      ctx.progress(`scenario ${name} FAILED: ${(error as Error).message}`);
    }
  }
  return { results, failures };
}

function printProfiles(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const file of fs
    .readdirSync(dir)
    .filter((name) => name.endsWith('.cpuprofile'))
    .sort()) {
    process.stdout.write(`\n${renderProfile(summariseProfile(path.join(dir, file)))}\n`);
  }
}

async function main(): Promise<number> {
  let settings: BenchSettings | null;
  try {
    settings = parseSettings(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (!settings) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  requirements();
  setSettleLimit(settings.quick ? 3000 : 8000);
  const startedAt = new Date();
  const tools = CTools.build();
  try {
    if (settings.profileDir) fs.mkdirSync(settings.profileDir, { recursive: true });
    const runtime = settings.packaged ? packagedRuntime(settings.nodeFlags) : checkoutRuntime(settings.nodeFlags);
    if (settings.pin) setDefaultPinning(PINNED);
    const ctx: BenchContext = { ...settings, tools, runtime, progress: progress(startedAt.getTime()) };
    const machine = describeMachine();
    ctx.progress(renderMachine(machine));
    const { results, failures } = await runScenarios(ctx);

    const out = [
      '',
      renderMachine(machine),
      `mode: ${settings.quick ? 'quick' : 'full'}; scenarios: ${settings.only.join(', ')}; daemon: ${runtime.kind}` +
        `${runtime.nodeFlags.length > 0 ? ` ${runtime.nodeFlags.join(' ')}` : ''}${settings.pin ? '; pinned (reactor CPU 1, observers CPU 0)' : ''}`,
      '',
      renderMeasurements(results),
      '',
      renderGoals(results),
      '',
      `machine busy before each scenario (another session's load skews figures): ${results.map((result) => `${result.name} ${(100 * Number(result.raw['machineBusyBefore'] ?? 0)).toFixed(0)} %`).join(', ')}`,
      '',
    ];
    process.stdout.write(out.join('\n'));
    const failedNames = Object.keys(failures);
    if (failedNames.length > 0)
      process.stdout.write(`FAILED scenarios: ${failedNames.join(', ')} (see stderr and the JSON)\n`);
    const goals = results.flatMap((result) => result.goals);
    const file = writeJson(
      {
        startedAt: startedAt.toISOString(),
        durationS: (Date.now() - startedAt.getTime()) / 1000,
        machine,
        settings,
        goalsMet: goals.filter(goalMet).length,
        goalsMissed: goals.filter((goal) => !goalMet(goal)).map((goal) => goal.goal),
        scenarios: results,
        failures,
      },
      startedAt,
    );
    process.stdout.write(`JSON: ${path.relative(process.cwd(), file)}\n`);
    if (settings.profileDir) printProfiles(settings.profileDir);
    return failedNames.length > 0 ? 1 : 0;
  } finally {
    tools.remove();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
