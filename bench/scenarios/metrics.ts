/**
 * What Prometheus metrics cost (issue 12): idle RSS with 1,000 managed interfaces with metrics
 * off and on (--metrics-listen and --metrics-textfile, after one scrape so the exposition has
 * been built), and drift correction latency (observer.c, from outside the daemon) with metrics
 * on, without and while a keep-alive client scrapes /metrics at 10 Hz, as Prometheus would at
 * scrape_interval 100 ms (ten times more often than anyone configures it).
 */
import * as path from 'node:path';
import type { BenchContext } from '../context';
import { BenchDaemon, benchPolicy } from '../daemon';
import { vethPairCommands, withNetns, type BenchNetns } from '../netns';
import type { ScenarioResult } from '../report';
import { median } from '../stats';
import { settle, sleep } from '../system';
import { driftTrials, type DriftSamples } from './reactors';

const MANAGED = 1000;
const DRIFT_INTERFACES = 100;
const METRICS_ADDRESS = '127.0.0.1:9747';
/** As the idle scenario: V8's memory reducer finishes its post-start-up GCs first. */
const SETTLE_MS = 12_000;
const RSS_BUDGET_MIB = 2;
/**
 * Alternating off/on pairs, at least: two daemons alike differ by up to ±3 MiB (where start-up's
 * collections and the allocator's arenas fall), so one pair says little; the growth reported is
 * the median of the pairs' differences, each pair started a minute apart on the same machine.
 */
const MIN_RSS_PAIRS = 4;
const SCRAPE_INTERVAL_MS = 100;
const GOAL_P99_US = 2000;

/** Scrapes /metrics every SCRAPE_INTERVAL_MS over one keep-alive connection; prints "scraping" after the first 200. */
const SCRAPER = `const http = require('http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let announced = false;
setInterval(() => http.get({ host: '127.0.0.1', port: 9747, path: '/metrics', agent }, (response) => {
  response.resume();
  if (response.statusCode === 200 && !announced) { announced = true; console.log('scraping'); }
}).on('error', (error) => console.error(error.message)), ${SCRAPE_INTERVAL_MS});`;

type Variant = 'off' | 'on';

function metricsArgs(variant: Variant, daemonDir: string): string[] {
  return variant === 'off'
    ? []
    : ['--metrics-listen', METRICS_ADDRESS, '--metrics-textfile', path.join(daemonDir, 'offloadd.prom')];
}

async function withMetricsDaemon<T>(
  ctx: BenchContext,
  netns: BenchNetns,
  variant: Variant,
  label: string,
  body: (daemon: BenchDaemon) => Promise<T>,
): Promise<T> {
  await settle();
  const daemon = new BenchDaemon(netns, {
    runtime: ctx.runtime,
    policy: benchPolicy(),
    logLevel: 'warning',
    profileDir: ctx.profileDir,
    label,
    extraArgs: (dir) => metricsArgs(variant, dir),
  });
  await daemon.start();
  try {
    return await body(daemon);
  } finally {
    await daemon.stop();
  }
}

async function idleRssMiB(ctx: BenchContext, variant: Variant, rep: number): Promise<number> {
  return withNetns(ctx.tools, async (netns) => {
    netns.batch(vethPairCommands('m', MANAGED / 2));
    return withMetricsDaemon(ctx, netns, variant, `metrics-rss-${variant}-${rep}`, async (daemon) => {
      if (variant === 'on') {
        const { stdout } = await netns.execAsync('curl', '-sS', `http://${METRICS_ADDRESS}/metrics`);
        const lines = stdout.split('\n').filter((line) => line.startsWith('offloadd_interface_compliant{')).length;
        if (lines !== MANAGED) throw new Error(`the scrape showed ${lines} interfaces, not ${MANAGED}`);
      }
      await sleep(SETTLE_MS);
      return daemon.memory().rssKiB / 1024;
    });
  });
}

async function driftWhile(ctx: BenchContext, scraping: boolean): Promise<DriftSamples> {
  const commands = [
    ...vethPairCommands('m', MANAGED / 2),
    ...Array.from({ length: DRIFT_INTERFACES }, (_, index) => `link add md${index} type veth peer name ud${index}`),
  ];
  return withNetns(ctx.tools, async (netns) => {
    netns.batch(commands);
    netns.setAll('md', false);
    return withMetricsDaemon(ctx, netns, 'on', `metrics-drift-${scraping ? 'scraped' : 'quiet'}`, async () => {
      const scraper = scraping ? netns.spawn(process.execPath, ['-e', SCRAPER]) : null;
      try {
        if (scraper) {
          await new Promise<void>((resolve, reject) => {
            scraper.stdout?.once('data', () => resolve());
            scraper.once('exit', (code) => reject(new Error(`the scraper exited with ${code}`)));
          });
        }
        await settle();
        return await driftTrials(netns, 'md', ctx.driftTrials);
      } finally {
        if (scraper) netns.kill(scraper);
      }
    });
  });
}

export async function metricsScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const rss: Record<Variant, number[]> = { off: [], on: [] };
  const reps = Math.max(ctx.reps, MIN_RSS_PAIRS);
  for (let rep = 0; rep < reps; rep++) {
    for (const variant of ['off', 'on'] as const) {
      ctx.progress(`metrics: idle RSS with ${MANAGED} managed, metrics ${variant} (${rep + 1}/${reps})`);
      rss[variant].push(await idleRssMiB(ctx, variant, rep));
    }
  }
  const rssOff = median(rss.off);
  const rssOn = median(rss.on);
  const growth = median(rss.on.map((on, rep) => on - (rss.off[rep] as number)));
  ctx.progress(`metrics: ${ctx.driftTrials} drift trials with metrics on, not scraped`);
  const quiet = await driftWhile(ctx, false);
  ctx.progress(`metrics: ${ctx.driftTrials} drift trials with metrics on, scraped at 10 Hz`);
  const scraped = await driftWhile(ctx, true);
  const rssScenario = `metrics, idle, ${MANAGED} managed`;
  const driftScenario = `metrics, drift (${ctx.driftTrials} trials, ${MANAGED + DRIFT_INTERFACES} managed)`;
  return {
    name: 'metrics',
    description:
      `Metrics cost. RSS: ${MANAGED} managed veth ends, daemon with metrics off, then on (--metrics-listen and ` +
      `--metrics-textfile, one scrape of all ${MANAGED} label sets), VmRSS ${SETTLE_MS / 1000} s after READY; ${reps} ` +
      `alternating runs each, growth = median of the pairs' differences. Drift: observer.c turns gso on ${ctx.driftTrials} times on ${DRIFT_INTERFACES} more interfaces and ` +
      `times until it is off again; metrics on, without scrapes and while a keep-alive client scrapes every ${SCRAPE_INTERVAL_MS} ms ` +
      '(offloadd column: scraped; baseline column: not scraped).',
    measurements: [
      {
        scenario: rssScenario,
        metric: 'RSS with metrics on; baseline column: off',
        unit: 'MiB',
        offloadd: rssOn,
        baseline: rssOff,
      },
      {
        scenario: rssScenario,
        metric: 'RSS growth with metrics on (median of paired differences)',
        unit: 'MiB',
        offloadd: growth,
      },
      {
        scenario: driftScenario,
        metric: 'correction p50 while scraped at 10 Hz; baseline: not scraped',
        unit: 'us',
        offloadd: scraped.drift.p50,
        baseline: quiet.drift.p50,
      },
      {
        scenario: driftScenario,
        metric: 'correction p99 while scraped at 10 Hz; baseline: not scraped',
        unit: 'us',
        offloadd: scraped.drift.p99,
        baseline: quiet.drift.p99,
      },
      {
        scenario: driftScenario,
        metric: 'correction max while scraped at 10 Hz; baseline: not scraped',
        unit: 'us',
        offloadd: scraped.drift.max,
        baseline: quiet.drift.max,
      },
    ],
    goals: [
      {
        goal: `idle RSS growth with metrics on, ${MANAGED} interfaces ≤ ${RSS_BUDGET_MIB} MiB`,
        measured: growth,
        limit: RSS_BUDGET_MIB,
        direction: 'atMost',
        unit: 'MiB',
      },
      {
        goal: 'drift correction p99 while scraped at 10 Hz ≤ 2 ms',
        measured: scraped.drift.p99,
        limit: GOAL_P99_US,
        direction: 'atMost',
        unit: 'us',
      },
    ],
    raw: {
      rssOffMiB: rss.off,
      rssOnMiB: rss.on,
      quiet: { ...quiet.drift, timeouts: quiet.timeouts },
      scraped: { ...scraped.drift, timeouts: scraped.timeouts },
    },
  };
}
