/**
 * A seeded random schedule of link and feature operations against the real daemon: create,
 * delete, rename (into and out of the policy's glob), up, down, enslave to a bridge, flip
 * features, SIGSTOP/SIGCONT the daemon, reload the policy. At the end every managed interface
 * must be compliant, every flip of a managed feature must be in the ledger (or covered by a
 * resync record, or made moot by a later delete/rename/reload), the daemon must be alive and its
 * memory bounded. Meanwhile hostile API and metrics clients (client-storm.ts) pipeline without
 * reading, read slowly, storm connections and trickle bytes: afterwards the daemon must answer
 * both, hold no more descriptors than before, and have given no wrong answer. The seed is
 * printed, so a failure is reproducible.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { RECOVERED_REASON } from '../../src/ledger/intents';
import type { LedgerRecord } from '../../src/ledger/record';
import { spawn, spawnSync } from 'node:child_process';
import { type DaemonProcess, Netns, onPrivateTmpfs, REPO_ROOT, waitFor } from '../helpers/netns';
import { seededRandom } from '../helpers/random';
import type { StormSummary } from './client-storm';
import { steppableWallClock, stepWallClock } from '../helpers/wall-clock';

export interface TortureOptions {
  seed: number;
  operations: number;
  veths: number;
  /**
   * Restarts stopped at a random moment, often inside the start-up reconcile: by SIGTERM, and
   * every other one by SIGKILL (a crash between a change and its record's sync).
   */
  terminations?: number;
  /** A phase with the state directory on a full file system, then with space again. */
  diskFull?: boolean;
  /** Rounds of hostile API and metrics clients during the schedule (client-storm.ts); 0: none. */
  clientRounds?: number;
  /** Wall-clock steps (back and forward, up to a day) under a daemon whose corrections flap. */
  clockSteps?: number;
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
  /** Feature changes the daemon made during the SIGTERM phase, each checked against the ledger. */
  changesUnderTermination: number;
  /** Of those, changes made by a daemon then killed with SIGKILL (recorded by the next start from its intents). */
  changesUnderKill: number;
  /** Records the next start wrote from intents a killed daemon left (changes made, not yet recorded). */
  recordedFromIntents: number;
  /** Corrections made while the ledger's file system was full. */
  correctionsOnFullDisk: number;
  /** Hostile client actions run during the schedule, by kind. */
  clientActions: Record<string, number>;
  /** Wall-clock steps the daemon went through, every managed interface compliant after each. */
  clockSteps: number;
  problems: string[];
}

/** Where the daemon serves metrics inside the torture's namespace. */
const METRICS_ADDRESS = '127.0.0.1:9747';
const CLIENT_STORM = path.resolve(__dirname, 'client-storm.js');
/** Descriptors the daemon may hold after the client storm beyond those it held before (a scrape, a lingering refusal). */
const DESCRIPTOR_SLACK = 16;

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
  const random = seededRandom(options.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const ns = new Netns();
  const clientRounds = options.clientRounds ?? 0;
  const report: TortureReport = {
    seed: options.seed,
    operations: {},
    flips: 0,
    flipsRecorded: 0,
    flipsCoveredByResync: 0,
    flipsMoot: 0,
    resyncs: 0,
    maxRssMiB: 0,
    changesUnderTermination: 0,
    changesUnderKill: 0,
    recordedFromIntents: 0,
    correctionsOnFullDisk: 0,
    clientActions: {},
    clockSteps: 0,
    problems: [],
  };
  try {
    let policyIndex = 0;
    const policyFile = ns.file('policy.yaml', HEADER + POLICIES[0]);
    ns.ip('link', 'add', 'br0', 'type', 'bridge');
    const names = new Map<number, string>(); // ifindex → current name of the interfaces we made
    const ifindexOf = (name: string): number =>
      (JSON.parse(ns.ip('-j', 'link', 'show', 'dev', name)) as Array<{ ifindex: number }>)[0]?.ifindex ?? 0;
    let counter = 0;
    const create = (): void => {
      const name = `t${counter++}`;
      ns.addVeth(name, `q${counter}`);
      names.set(ifindexOf(name), name);
    };
    for (let i = 0; i < options.veths; i++) create();

    const daemon = ns.startDaemon([
      '--policy',
      policyFile,
      '--log-level',
      process.env['OFFLOADD_TORTURE_LOG_LEVEL'] ?? 'warning',
      '--netlink-rcvbuf',
      '65536',
      ...(clientRounds > 0 ? ['--metrics-listen', METRICS_ADDRESS] : []),
    ]);
    await daemon.ready();
    const descriptorsBefore = descriptors(daemon.pid);
    const storm = clientRounds > 0 ? startClientStorm(ns, daemon.socketPath, clientRounds, options.seed) : null;
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
        } else if (roll < 0.1) {
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
      if (step % 100 === 0 && daemon.exitCode === null)
        report.maxRssMiB = Math.max(report.maxRssMiB, rssMiB(daemon.pid));
    }
    if (stoppedFor > 0) daemon.signal('SIGCONT');
    if (storm !== null) await checkClientStorm(ns, daemon, storm, descriptorsBefore, report, log);

    // Quiescence: every interface that the final policy manages is compliant.
    const probe = path.resolve(__dirname, '..', 'helpers', 'features-probe.js');
    let bad: string[] = [];
    try {
      await waitFor(
        () => {
          const states = JSON.parse(ns.exec(process.execPath, probe, 'rx-gro', 'tx-generic-segmentation')) as Record<
            string,
            Record<string, boolean>
          >;
          bad = Object.entries(states)
            .filter(([linkName, features]) =>
              managedFeatures(policyIndex, linkName).some((feature) => features[feature] !== false),
            )
            .map(([linkName]) => linkName);
          return bad.length === 0;
        },
        'every managed interface compliant',
        30000,
      );
    } catch (error) {
      const about = daemon.lines
        .filter((line) => bad.some((name) => line.includes(`${name}:`) || line.includes(` ${name} `)))
        .slice(-20);
      for (const name of bad.slice(0, 3)) {
        // What the daemon itself believes about it.
        const explain = spawnSync(
          process.execPath,
          [path.join(REPO_ROOT, 'bin', 'offloadctl'), 'explain', name, '--socket', daemon.socketPath],
          { encoding: 'utf8' },
        );
        about.push(`offloadctl explain ${name}: ${explain.stdout}${explain.stderr}`);
      }
      throw new Error(`${(error as Error).message}: ${bad.join(', ')}\n${about.join('\n')}`);
    }
    report.maxRssMiB = Math.max(report.maxRssMiB, rssMiB(daemon.pid));
    if (daemon.exitCode !== null) report.problems.push(`the daemon died (exit ${daemon.exitCode})`);

    // Every flip accounted for.
    const records = fs
      .readFileSync(path.join(daemon.stateDir, 'ledger.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as LedgerRecord);
    const resyncTimes = records.filter((record) => record.event === 'resync').map((record) => Date.parse(record.time));
    report.resyncs = resyncTimes.length;
    for (const flip of flips) {
      const recorded = records.some(
        (record) =>
          record.ifindex === flip.ifindex &&
          record.feature === flip.feature &&
          record.action === 'enforced' &&
          Date.parse(record.time) >= flip.time,
      );
      if (recorded) report.flipsRecorded++;
      else if (resyncTimes.some((time) => time >= flip.time)) report.flipsCoveredByResync++;
      else if (flip.moot) report.flipsMoot++;
      else
        report.problems.push(
          `flip of ${flip.feature} on ifindex ${flip.ifindex} at ${new Date(flip.time).toISOString()} is not in the ledger`,
        );
    }
    if (report.maxRssMiB > 150) report.problems.push(`memory grew to ${report.maxRssMiB.toFixed(1)} MiB`);
    const crashes = daemon.linesMatching(/^(crit|alert|emerg):|Internal error/);
    if (crashes.length > 0) report.problems.push(`internal errors logged: ${crashes.slice(0, 3).join(' | ')}`);

    const managedNow = (): string[] =>
      [...names.values()].filter((linkName) => managedFeatures(policyIndex, linkName).includes('rx-gro'));
    if ((options.terminations ?? 0) > 0) {
      await daemon.stop();
      await terminationPhase(ns, {
        policyFile,
        stateDir: daemon.stateDir,
        managed: managedNow(),
        rounds: options.terminations ?? 0,
        random,
        report,
        log,
      });
    }
    if (options.diskFull) {
      await daemon.stop();
      await diskFullPhase(ns, { policyFile, managed: managedNow(), report, log });
    }
    if ((options.clockSteps ?? 0) > 0) {
      await daemon.stop();
      await clockStepPhase(ns, {
        policyFile,
        managed: managedNow(),
        steps: options.clockSteps ?? 0,
        random,
        report,
        log,
      });
    }
    for (const problem of ledgerProblems(daemon.stateDir)) report.problems.push(problem);
    return report;
  } finally {
    await ns.destroy();
  }
}

function descriptors(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

interface RunningStorm {
  output(): string;
  exited: Promise<number | null>;
}

function startClientStorm(ns: Netns, socketPath: string, rounds: number, seed: number): RunningStorm {
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      ns.name,
      process.execPath,
      CLIENT_STORM,
      socketPath,
      METRICS_ADDRESS,
      String(rounds),
      String(seed),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return { output: () => output, exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
}

/**
 * Once the schedule is done: the storm ends (each action is bounded), gave no wrong answer, and
 * the daemon answers the API and a scrape again and holds no more descriptors than before it.
 */
async function checkClientStorm(
  ns: Netns,
  daemon: DaemonProcess,
  storm: RunningStorm,
  descriptorsBefore: number,
  report: TortureReport,
  log: (line: string) => void,
): Promise<void> {
  const code = await storm.exited;
  let summary: StormSummary;
  try {
    summary = JSON.parse(storm.output()) as StormSummary;
  } catch {
    report.problems.push(`the client storm failed (exit ${code}): ${storm.output().slice(0, 200)}`);
    return;
  }
  report.clientActions = summary.actions;
  for (const wrong of summary.wrong) report.problems.push(`client storm: wrong answer: ${wrong}`);
  const status = spawnSync(
    process.execPath,
    [path.join(REPO_ROOT, 'bin', 'offloadctl'), 'status', '--socket', daemon.socketPath],
    { encoding: 'utf8' },
  );
  if (status.status !== 0) report.problems.push(`after the client storm, offloadctl status failed: ${status.stderr}`);
  const scrape = spawnSync(
    'ip',
    [
      'netns',
      'exec',
      ns.name,
      'curl',
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      `http://${METRICS_ADDRESS}/metrics`,
    ],
    { encoding: 'utf8', timeout: 10_000 },
  );
  if (scrape.stdout !== '200')
    report.problems.push(`after the client storm, a scrape got ${scrape.stdout || scrape.stderr}`);
  try {
    await waitFor(
      () => descriptors(daemon.pid) <= descriptorsBefore + DESCRIPTOR_SLACK,
      "the daemon to close the storm's connections",
    );
  } catch {
    report.problems.push(
      `after the client storm the daemon holds ${descriptors(daemon.pid)} descriptors (${descriptorsBefore} before)`,
    );
  }
  log(`client storm: ${JSON.stringify(summary)}`);
}

const PROBE = path.resolve(__dirname, '..', 'helpers', 'features-probe.js');
/** SIGTERM lands at a random moment within this long after the policy is loaded (or spawn). */
const TERMINATION_WINDOW_MS = 40;

function activeGro(ns: Netns): Record<string, boolean> {
  const states = JSON.parse(ns.exec(process.execPath, PROBE, 'rx-gro')) as Record<string, Record<string, boolean>>;
  return Object.fromEntries(Object.entries(states).map(([name, features]) => [name, features['rx-gro'] === true]));
}

/** Resolves at the namespace's next link event (`ip monitor link`); stop() ends the monitor. */
function linkEvent(ns: Netns): { seen: Promise<void>; stop: () => void } {
  const monitor = spawn('ip', ['-n', ns.name, 'monitor', 'link'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const seen = new Promise<void>((resolve) => monitor.stdout.once('data', () => resolve()));
  return { seen, stop: () => monitor.kill('SIGKILL') };
}

/** Every record of the ledger and its rotated files, oldest first. */
function readLedger(stateDir: string): { records: LedgerRecord[]; problems: string[] } {
  const problems: string[] = [];
  const files = fs
    .readdirSync(stateDir)
    .filter((name) => /^ledger\.jsonl(\.\d+)?$/.test(name))
    .sort((a, b) => Number(b.split('.')[2] ?? 0) - Number(a.split('.')[2] ?? 0));
  const records: LedgerRecord[] = [];
  for (const file of files) {
    const lines = fs.readFileSync(path.join(stateDir, file), 'utf8').split('\n');
    lines.forEach((line, index) => {
      if (line === '') return;
      try {
        const record = JSON.parse(line) as LedgerRecord;
        if (typeof record?.seq !== 'number' || typeof record.event !== 'string') throw new Error('not a record');
        records.push(record);
      } catch (error) {
        // Only a torn last line (a crash mid-write) is tolerated, and only at the very end.
        const tornTail = index === lines.length - 1;
        if (!tornTail) problems.push(`${file}:${index + 1}: ${(error as Error).message}: ${line.slice(0, 80)}`);
      }
    });
  }
  return { records, problems };
}

/** The ledger parses, and its sequence numbers strictly increase across files and restarts. */
function ledgerProblems(stateDir: string): string[] {
  const { records, problems } = readLedger(stateDir);
  for (let index = 1; index < records.length; index++) {
    const [previous, current] = [records[index - 1] as LedgerRecord, records[index] as LedgerRecord];
    if (current.seq <= previous.seq) problems.push(`sequence goes from ${previous.seq} to ${current.seq}`);
  }
  return problems.slice(0, 10);
}

/**
 * Restart the daemon on the same state and stop it at a random moment (often inside its start-up
 * reconcile): with SIGTERM, and every other round with SIGKILL, after which the next start must
 * record what the killed daemon changed but had not recorded yet (its write-ahead intents). Every
 * change it made, as seen by an independent probe, must be in the ledger afterwards.
 */
async function terminationPhase(
  ns: Netns,
  phase: {
    policyFile: string;
    stateDir: string;
    managed: string[];
    rounds: number;
    random: () => number;
    report: TortureReport;
    log: (line: string) => void;
  },
): Promise<void> {
  const { report } = phase;
  const args = ['--policy', phase.policyFile, '--log-level', 'info'];
  for (let round = 0; round < phase.rounds; round++) {
    const kill = round % 2 === 1;
    for (const name of phase.managed) if (phase.random() < 0.5) ns.setFeatures(name, 'gro', 'on');
    const before = activeGro(ns);
    const seqBefore = readLedger(phase.stateDir).records.at(-1)?.seq ?? 0;
    // A kill aims at the pass's first change (the kernel's link event for it): between the
    // requests and their records, where only the intents written ahead stand for the changes.
    const firstChange = kill ? linkEvent(ns) : null;
    const daemon = ns.startDaemon(args, {}, phase.stateDir);
    let exit: number | null;
    if (kill) {
      try {
        await Promise.race([firstChange?.seen, daemon.ready()]);
      } catch {
        // exited before READY: checked below like any other exit
      } finally {
        daemon.signal('SIGKILL');
        firstChange?.stop();
      }
      exit = await daemon.stop();
      // 137 = killed by SIGKILL, whenever it landed.
      if (exit !== 137 && exit !== 0) report.problems.push(`termination round ${round}: exit ${exit} after SIGKILL`);
    } else {
      // The policy line comes just before the start-up pass: aim at the pass, or just before it.
      if (phase.random() < 0.8) await daemon.waitForLine(/Policy loaded/).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, Math.floor(phase.random() * TERMINATION_WINDOW_MS)));
      exit = await daemon.stop(); // SIGTERM
      // 143 = killed by SIGTERM before Node installed its handler, i.e. before any change.
      if (exit !== 0 && exit !== 143)
        report.problems.push(`termination round ${round}: exit ${exit}, not a clean stop`);
    }
    const after = activeGro(ns);
    if (kill) {
      // The next start records what the killed one changed without a record (and changes nothing
      // more here: every change the probe saw was made before the kill).
      const next = ns.startDaemon(args, {}, phase.stateDir);
      await next.ready();
      await next.stop();
    }
    const written = readLedger(phase.stateDir).records.filter((record) => record.seq > seqBefore);
    report.recordedFromIntents += written.filter((record) => record.reason === RECOVERED_REASON).length;
    const recorded = new Set(
      written
        .filter((record) => record.feature === 'rx-gro' && record.action === 'enforced')
        .map((record) => record.interface),
    );
    for (const name of phase.managed) {
      if (before[name] === true && after[name] === false) {
        report.changesUnderTermination++;
        if (kill) report.changesUnderKill++;
        if (!recorded.has(name))
          report.problems.push(
            `termination round ${round} (${kill ? 'SIGKILL' : 'SIGTERM'}): the daemon turned gro off on ${name} but the ledger has no record of it`,
          );
      }
    }
  }
  phase.log(
    `termination phase: ${report.changesUnderTermination} changes checked, ${report.changesUnderKill} of them across SIGKILL, ` +
      `${report.recordedFromIntents} recorded from intents`,
  );
}

/**
 * The state directory on a small tmpfs in the daemon's own mount namespace: filled up, drift is
 * still corrected; with space again, records resume on a clean line.
 */
async function diskFullPhase(
  ns: Netns,
  phase: {
    policyFile: string;
    managed: string[];
    report: TortureReport;
    log: (line: string) => void;
  },
): Promise<void> {
  const { report } = phase;
  const stateDir = path.join(ns.tmp, 'state-full');
  fs.mkdirSync(stateDir, { mode: 0o700 });
  const daemon = ns.startDaemon(
    ['--policy', phase.policyFile, '--log-level', 'warning'],
    {},
    stateDir,
    onPrivateTmpfs(stateDir, '128k'),
  );
  await waitFor(
    () => daemon.exitCode !== null || fs.existsSync(`/proc/${daemon.pid}/root${stateDir}/ledger.jsonl`),
    'the ledger on the tmpfs',
  );
  const inside = `/proc/${daemon.pid}/root${stateDir}`;
  const filler = path.join(inside, 'filler');
  const fill = (): void => {
    try {
      fs.writeFileSync(filler, Buffer.alloc(256 * 1024));
    } catch {
      // ENOSPC once the file system is full: that is the point
    }
  };
  fill();
  const flipAll = async (what: string): Promise<void> => {
    for (const name of phase.managed) ns.setFeatures(name, 'gro', 'on');
    await waitFor(
      () => {
        const gro = activeGro(ns);
        return phase.managed.every((name) => gro[name] === false);
      },
      `every managed interface corrected ${what}`,
      30000,
    );
  };
  await flipAll('on a full disk');
  report.correctionsOnFullDisk += phase.managed.length;
  fs.rmSync(filler, { force: true });
  await flipAll('with space again');
  // After space returns, the new corrections must be on disk, each on a line of its own.
  const copy = path.join(ns.tmp, 'state-full-copy');
  fs.mkdirSync(copy, { recursive: true });
  await waitFor(
    () => {
      for (const name of fs.readdirSync(inside))
        if (name.startsWith('ledger.jsonl')) fs.copyFileSync(path.join(inside, name), path.join(copy, name));
      const names = new Set(
        readLedger(copy)
          .records.filter((record) => record.action === 'enforced')
          .map((record) => record.interface),
      );
      return phase.managed.every((name) => names.has(name));
    },
    'records again once space returned',
    30000,
  );
  for (const problem of ledgerProblems(copy)) report.problems.push(`after the full disk: ${problem}`);
  if (daemon.exitCode !== null) report.problems.push(`the daemon died on a full disk (exit ${daemon.exitCode})`);
  await daemon.stop();
  phase.log(`disk-full phase: ${phase.managed.length} interfaces corrected on a full disk`);
}

/** Wall-clock steps to choose from, in seconds: back and forward, small and large. */
const CLOCK_STEPS_SEC = [-3600, 3600, -86_400, -5, 600, -600];
/** Back-offs short enough to be seen ending within a round, and reached after a few corrections. */
const FLAPPY = 'flapping: { max_corrections: 3, window: 60, max_backoff: 2 }';

/**
 * The daemon's wall clock stepped back and forward (libfaketime, this daemon only) while managed
 * interfaces drift often enough to flap: after every step each one must be compliant again within
 * the back-off, and the ledger must stay whole, numbered without a gap, with the stepped times.
 */
async function clockStepPhase(
  ns: Netns,
  phase: {
    policyFile: string;
    managed: string[];
    steps: number;
    random: () => number;
    report: TortureReport;
    log: (line: string) => void;
  },
): Promise<void> {
  const { report } = phase;
  const policy = fs.readFileSync(phase.policyFile, 'utf8').replace(/^flapping: .*$/m, FLAPPY);
  const policyFile = path.join(ns.tmp, 'clock-step-policy.yaml');
  fs.writeFileSync(policyFile, policy);
  const offsetFile = path.join(ns.tmp, 'clock-step-offset');
  const stateDir = path.join(ns.tmp, 'state-clock-step');
  const daemon = ns.startDaemon(
    ['--policy', policyFile, '--log-level', 'warning'],
    steppableWallClock(offsetFile),
    stateDir,
  );
  await daemon.ready();
  let offsetSec = 0;
  for (let step = 0; step < phase.steps; step++) {
    offsetSec += CLOCK_STEPS_SEC[Math.floor(phase.random() * CLOCK_STEPS_SEC.length)] as number;
    stepWallClock(offsetFile, offsetSec);
    // Drifts in a burst, so corrections cross max_corrections and back off across the step.
    for (let burst = 0; burst < 4; burst++) {
      for (const name of phase.managed) ns.setFeatures(name, 'gro', 'on');
      await waitFor(
        () => {
          const gro = activeGro(ns);
          return phase.managed.every((name) => gro[name] === false);
        },
        `every managed interface corrected after a wall-clock step to ${offsetSec} s`,
        30000,
      );
    }
    report.clockSteps++;
  }
  if (daemon.exitCode !== null) report.problems.push(`the daemon died under clock steps (exit ${daemon.exitCode})`);
  await daemon.stop();
  const { records } = readLedger(stateDir);
  records.forEach((record, index) => {
    const previous = records[index - 1];
    if (previous !== undefined && record.seq !== previous.seq + 1)
      report.problems.push(`clock-step phase: record #${record.seq} follows #${previous.seq}`);
  });
  for (const problem of ledgerProblems(stateDir)) report.problems.push(`clock-step phase: ${problem}`);
  phase.log(`clock-step phase: ${report.clockSteps} steps, ${records.length} records`);
}

/** `npm run test:torture -- [--seed N] [--ops N] [--veths N] [--terminations N] [--client-rounds N] [--clock-steps N]` */
if (require.main === module) {
  const argument = (name: string, fallback: number): number => {
    const index = process.argv.indexOf(`--${name}`);
    return index > 0 ? Number(process.argv[index + 1]) : fallback;
  };
  const seed = argument('seed', Math.floor(Math.random() * 2 ** 31));
  process.stdout.write(`torture: seed ${seed} (reproduce with --seed ${seed})\n`);
  runTorture({
    seed,
    operations: argument('ops', 2000),
    veths: argument('veths', 200),
    terminations: argument('terminations', 20),
    diskFull: true,
    clientRounds: argument('client-rounds', 100),
    clockSteps: argument('clock-steps', 6),
    log: (line) => process.stdout.write(`  ${line}\n`),
  }).then(
    (report) => {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      process.stdout.write(report.problems.length === 0 ? 'torture: passed\n' : `torture: FAILED (seed ${seed})\n`);
      process.exitCode = report.problems.length === 0 ? 0 : 1;
    },
    (error: unknown) => {
      process.stdout.write(`torture: FAILED (seed ${seed}): ${(error as Error).stack}\n`);
      process.exitCode = 1;
    },
  );
}
