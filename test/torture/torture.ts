/**
 * A seeded random schedule of link and feature operations against the real daemon: create,
 * delete, rename (into and out of the policy's glob), up, down, enslave to a bridge, flip
 * features, SIGSTOP/SIGCONT the daemon, reload the policy. At the end every managed interface
 * must be compliant, every flip of a managed feature must be in the ledger (or covered by a
 * resync record, or made moot by a later delete/rename/reload), the daemon must be alive and its
 * memory bounded. The seed is printed, so a failure is reproducible.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LedgerRecord } from '../../src/ledger/record';
import { spawnSync } from 'node:child_process';
import { Netns, REPO_ROOT, waitFor } from '../helpers/netns';

export interface TortureOptions {
  seed: number;
  operations: number;
  veths: number;
  log?: (line: string) => void;
}

export interface TortureReport {
  seed: number;
  operations: Record<string, number>;
  flips: number;
  flipsRecorded: number;
  flipsCoveredByResync: number;
  flipsMoot: number;
  resyncs: number;
  maxRssMiB: number;
  problems: string[];
}

/** mulberry32: small, fast, good enough for schedules. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const POLICIES = [
  'rules:\n  - name: managed\n    match: { name: "t*" }\n    features: { gro: off, gso: off }\n',
  'rules:\n  - name: managed\n    match: { name: "t*" }\n    features: { gro: off, gso: off }\n  - name: renamed\n    match: { name: "u*" }\n    features: { gso: off }\n',
];
const HEADER = 'sweep_interval: 0\nflapping: { max_corrections: 1000, window: 60, max_backoff: 1 }\n';

/** Which kernel features a policy manages for a name (mirrors POLICIES). */
function managedFeatures(policyIndex: number, name: string): string[] {
  if (name.startsWith('t')) return ['rx-gro', 'tx-generic-segmentation'];
  if (policyIndex === 1 && name.startsWith('u')) return ['tx-generic-segmentation'];
  return [];
}

interface Flip {
  time: number;
  ifindex: number;
  feature: string;
  moot: boolean;
}

function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : 0;
}

export async function runTorture(options: TortureOptions): Promise<TortureReport> {
  const log = options.log ?? ((): void => undefined);
  const random = prng(options.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const ns = new Netns();
  const report: TortureReport = {
    seed: options.seed, operations: {}, flips: 0, flipsRecorded: 0, flipsCoveredByResync: 0, flipsMoot: 0, resyncs: 0, maxRssMiB: 0, problems: [],
  };
  try {
    let policyIndex = 0;
    const policyFile = ns.file('policy.yaml', HEADER + POLICIES[0]);
    ns.ip('link', 'add', 'br0', 'type', 'bridge');
    const names = new Map<number, string>(); // ifindex → current name of the interfaces we made
    const ifindexOf = (name: string): number => (JSON.parse(ns.ip('-j', 'link', 'show', 'dev', name)) as Array<{ ifindex: number }>)[0]?.ifindex ?? 0;
    let counter = 0;
    const create = (): void => {
      const name = `t${counter++}`;
      ns.addVeth(name, `q${counter}`);
      names.set(ifindexOf(name), name);
    };
    for (let i = 0; i < options.veths; i++) create();

    const daemon = ns.startDaemon(['--policy', policyFile, '--log-level', process.env['OFFLOADD_TORTURE_LOG_LEVEL'] ?? 'warning', '--netlink-rcvbuf', '65536']);
    await daemon.ready();
    const flips: Flip[] = [];
    const mootFlips = (ifindex: number | null): void => {
      for (const flip of flips) if (ifindex === null || flip.ifindex === ifindex) flip.moot = true;
    };
    let stoppedFor = 0;

    for (let step = 0; step < options.operations; step++) {
      const entries = [...names.entries()];
      const [ifindex, name] = entries.length > 0 ? pick(entries) : [0, ''];
      const roll = random();
      let operation: string;
      try {
        if (roll < 0.05 || entries.length === 0) {
          operation = 'create';
          create();
        } else if (roll < 0.10) {
          operation = 'delete';
          ns.ip('link', 'del', name);
          names.delete(ifindex);
          mootFlips(ifindex);
        } else if (roll < 0.18) {
          operation = 'rename';
          const renamed = `${name.startsWith('t') ? 'u' : 't'}${name.slice(1)}`;
          ns.ip('link', 'set', 'dev', name, 'name', renamed);
          names.set(ifindex, renamed);
          mootFlips(ifindex);
        } else if (roll < 0.26) {
          operation = 'up';
          ns.ip('link', 'set', 'dev', name, 'up');
        } else if (roll < 0.32) {
          operation = 'down';
          ns.ip('link', 'set', 'dev', name, 'down');
        } else if (roll < 0.37) {
          operation = 'enslave';
          ns.ip('link', 'set', 'dev', name, 'master', 'br0');
        } else if (roll < 0.85) {
          operation = 'flip';
          const feature = pick(['rx-gro', 'tx-generic-segmentation']);
          const time = Date.now();
          ns.setFeatures(name, feature === 'rx-gro' ? 'gro' : 'gso', 'on');
          if (managedFeatures(policyIndex, name).includes(feature)) {
            flips.push({ time, ifindex, feature, moot: false });
            report.flips++;
          }
        } else if (roll < 0.93) {
          operation = 'stop';
          if (stoppedFor === 0) {
            daemon.signal('SIGSTOP');
            stoppedFor = 3 + Math.floor(random() * 40);
          }
        } else {
          operation = 'reload';
          policyIndex = 1 - policyIndex;
          fs.writeFileSync(policyFile, HEADER + POLICIES[policyIndex]);
          daemon.signal('SIGHUP');
          mootFlips(null); // a reload re-evaluates everything under a different policy
        }
      } catch (error) {
        // An operation can race with the kernel (e.g. the name was taken): that is not the daemon's fault.
        operation = 'failed-op';
        log(`op ${step} failed: ${(error as Error).message.split('\n')[0]}`);
      }
      report.operations[operation] = (report.operations[operation] ?? 0) + 1;
      if (stoppedFor > 0 && --stoppedFor === 0) daemon.signal('SIGCONT');
      if (step % 100 === 0 && daemon.exitCode === null) report.maxRssMiB = Math.max(report.maxRssMiB, rssMiB(daemon.pid));
    }
    if (stoppedFor > 0) daemon.signal('SIGCONT');

    // Quiescence: every interface that the final policy manages is compliant.
    const probe = path.resolve(__dirname, '..', 'helpers', 'features-probe.js');
    let bad: string[] = [];
    try {
      await waitFor(() => {
        const states = JSON.parse(ns.exec(process.execPath, probe, 'rx-gro', 'tx-generic-segmentation')) as Record<string, Record<string, boolean>>;
        bad = Object.entries(states).filter(([linkName, features]) => managedFeatures(policyIndex, linkName).some((feature) => features[feature] !== false)).map(([linkName]) => linkName);
        return bad.length === 0;
      }, 'every managed interface compliant', 30000);
    } catch (error) {
      const about = daemon.lines.filter((line) => bad.some((name) => line.includes(`${name}:`) || line.includes(` ${name} `))).slice(-20);
      for (const name of bad.slice(0, 3)) {
        // What the daemon itself believes about it.
        const explain = spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin', 'offloadctl'), 'explain', name, '--socket', daemon.socketPath], { encoding: 'utf8' });
        about.push(`offloadctl explain ${name}: ${explain.stdout}${explain.stderr}`);
      }
      throw new Error(`${(error as Error).message}: ${bad.join(', ')}\n${about.join('\n')}`);
    }
    report.maxRssMiB = Math.max(report.maxRssMiB, rssMiB(daemon.pid));
    if (daemon.exitCode !== null) report.problems.push(`the daemon died (exit ${daemon.exitCode})`);

    // Every flip accounted for.
    const records = fs.readFileSync(path.join(daemon.stateDir, 'ledger.jsonl'), 'utf8').split('\n')
      .filter(Boolean).map((line) => JSON.parse(line) as LedgerRecord);
    const resyncTimes = records.filter((record) => record.kind === 'resync').map((record) => Date.parse(record.time));
    report.resyncs = resyncTimes.length;
    for (const flip of flips) {
      const recorded = records.some((record) => record.ifindex === flip.ifindex && record.feature === flip.feature
        && record.action === 'enforced' && Date.parse(record.time) >= flip.time);
      if (recorded) report.flipsRecorded++;
      else if (resyncTimes.some((time) => time >= flip.time)) report.flipsCoveredByResync++;
      else if (flip.moot) report.flipsMoot++;
      else report.problems.push(`flip of ${flip.feature} on ifindex ${flip.ifindex} at ${new Date(flip.time).toISOString()} is not in the ledger`);
    }
    if (report.maxRssMiB > 150) report.problems.push(`memory grew to ${report.maxRssMiB.toFixed(1)} MiB`);
    const crashes = daemon.linesMatching(/^(crit|alert|emerg):|Internal error/);
    if (crashes.length > 0) report.problems.push(`internal errors logged: ${crashes.slice(0, 3).join(' | ')}`);
    return report;
  } finally {
    await ns.destroy();
  }
}

/** `npm run test:torture -- [--seed N] [--ops N] [--veths N]` */
if (require.main === module) {
  const argument = (name: string, fallback: number): number => {
    const index = process.argv.indexOf(`--${name}`);
    return index > 0 ? Number(process.argv[index + 1]) : fallback;
  };
  const seed = argument('seed', Math.floor(Math.random() * 2 ** 31));
  process.stdout.write(`torture: seed ${seed} (reproduce with --seed ${seed})\n`);
  runTorture({ seed, operations: argument('ops', 2000), veths: argument('veths', 200), log: (line) => process.stdout.write(`  ${line}\n`) })
    .then((report) => {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      process.stdout.write(report.problems.length === 0 ? 'torture: passed\n' : `torture: FAILED (seed ${seed})\n`);
      process.exitCode = report.problems.length === 0 ? 0 : 1;
    }, (error: unknown) => {
      process.stdout.write(`torture: FAILED (seed ${seed}): ${(error as Error).stack}\n`);
      process.exitCode = 1;
    });
}

