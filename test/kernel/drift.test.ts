/**
 * Drift: detection, records, report mode, unenforceable features, flapping back-off, crash
 * durability and rotation of the ledger. Real kernel, own namespaces.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LedgerRecord } from '../../src/ledger/record';
import { type DaemonProcess, type Netns, REPO_ROOT, waitFor, eachTestInItsOwnNetns } from '../helpers/netns';
import { activeLedgerRecords } from '../helpers/ledger-file';

const OFFLOADCTL = path.join(REPO_ROOT, 'bin', 'offloadctl');

/** Blank lines and the torn line a test wrote on purpose are skipped. */
function ledger(daemon: DaemonProcess): LedgerRecord[] {
  return activeLedgerRecords(daemon.stateDir, { skipTorn: true });
}

function policy(body: string): string {
  return `flapping: { max_corrections: 50, window: 60, max_backoff: 8 }\n${body}`;
}

const GRO_OFF = (extra = ''): string =>
  policy(`${extra}
rules:
  - name: vm-uplinks
    match: { name: "up*" }
    features: { gro: off }
`);

/** Drifts the daemon has counted: it counts a record only once the ledger has synced it. */
function durableDrifts(daemon: DaemonProcess): number {
  const result = spawnSync(process.execPath, [OFFLOADCTL, 'status', '--json', '--socket', daemon.socketPath], {
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`offloadctl status failed: ${result.stderr}`);
  return (JSON.parse(result.stdout) as { counters: { drifts: number } }).counters.drifts;
}

function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in USER_HZ (100)
}

describe('drift (real kernel, own namespace)', function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  it('records each drift and corrects it', async () => {
    ns.addVeth('up0');
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', GRO_OFF())]);
    await daemon.ready();
    const rounds = 6;
    for (let round = 1; round <= rounds; round++) {
      ns.setFeatures('up0', 'gro', 'on');
      await waitFor(
        () => ledger(daemon).filter((record) => record.event === 'drift').length === round,
        `drift record ${round}`,
      );
      await waitFor(() => ns.features('up0')['generic-receive-offload'] === false, 'gro off again');
    }
    const drifts = ledger(daemon).filter((record) => record.event === 'drift');
    assert.equal(drifts.length, rounds);
    for (const record of drifts) {
      assert.equal(record.interface, 'up0');
      assert.equal(record.feature, 'rx-gro');
      assert.equal(record.wanted, 'off');
      assert.equal(record.active, 'on');
      assert.equal(record.action, 'enforced');
      assert.equal(record.trigger, 'features');
      assert.equal(record.rule, 'vm-uplinks');
      assert.ok(typeof record.correctionUs === 'number' && record.correctionUs > 0);
    }
  });

  for (const where of ['global', 'per rule'] as const) {
    it(`report mode (${where}) records drift and leaves the feature alone`, async () => {
      const text =
        where === 'global'
          ? GRO_OFF('mode: report')
          : policy(`
rules:
  - name: cautious
    mode: report
    match: { name: "up*" }
    features: { gro: off }
`);
      ns.addVeth('up0');
      const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', text)]);
      await daemon.ready();
      ns.setFeatures('up0', 'gro', 'on');
      await waitFor(
        () => ledger(daemon).some((record) => record.event === 'drift' && record.action === 'reported'),
        'reported drift',
      );
      assert.equal(ns.features('up0')['generic-receive-offload'], true, 'left on in report mode');
    });
  }

  it("records a deleted and re-created interface as a new interface's first enforcement", async () => {
    const text = policy(`
rules:
  - name: vm-uplinks
    match: { name: "up*" }
    features: { gso: off }
`);
    ns.addVeth('up0'); // veths start with GSO on
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', text)]);
    await daemon.ready();
    const initialBefore = ledger(daemon).filter((record) => record.event === 'initial').length;
    ns.ip('link', 'del', 'up0');
    ns.addVeth('up0'); // re-registered: a new ifindex, GSO on again
    await waitFor(
      () =>
        ledger(daemon).filter((record) => record.event === 'initial' && record.action === 'enforced').length ===
        initialBefore + 1,
      'initial enforcement record for the new ifindex',
    );
    assert.equal(ledger(daemon).filter((record) => record.event === 'drift').length, 0, 'not counted as drift');
    assert.equal(ns.features('up0')['generic-segmentation-offload'], false);
  });

  it('records a fixed feature once as unenforceable and does not retry in a loop', async () => {
    ns.addVeth('up0');
    const text = policy(`
rules:
  - name: wants-lro
    match: { name: "up*" }
    features: { rx-lro: on, gro: off }
`);
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', text)]);
    await daemon.ready();
    for (let i = 0; i < 5; i++) {
      ns.setFeatures('up0', 'gro', 'on');
      await waitFor(() => ns.features('up0')['generic-receive-offload'] === false, 'gro off');
    }
    const unenforceable = ledger(daemon).filter((record) => record.event === 'unenforceable');
    assert.equal(unenforceable.length, 1, JSON.stringify(unenforceable));
    assert.equal(unenforceable[0]?.feature, 'rx-lro');
    assert.match(unenforceable[0]?.reason ?? '', /fixed off/);
  });

  it('backs off from a flapping adversary and still serves other interfaces', async function () {
    this.timeout(60000);
    ns.addVeth('up-flap');
    const daemon = ns.startDaemon([
      '--policy',
      ns.file('p.yaml', GRO_OFF().replace('max_corrections: 50', 'max_corrections: 5')),
      '--log-level',
      'info',
    ]);
    await daemon.ready();
    const cpuBefore = cpuSeconds(daemon.pid);
    const wallBefore = Date.now();
    // The adversary: re-enables GRO as fast as a shell can, for 10 s.
    const adversary = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns.name,
        'bash',
        '-c',
        'end=$((SECONDS+10)); n=0; while [ $SECONDS -lt $end ]; do ethtool -K up-flap gro on 2>/dev/null; n=$((n+1)); done; echo $n',
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let flips = '';
    adversary.stdout.on('data', (chunk: Buffer) => (flips += chunk.toString()));
    const adversaryDone = new Promise((resolve) => adversary.on('exit', resolve));

    // Once the guard backs off, the other interface must still be served at once.
    await waitFor(
      () => ledger(daemon).some((record) => record.interface === 'up-flap' && record.event === 'flapping'),
      'the flapping back-off',
      10000,
    );
    ns.addVeth('up-second');
    ns.setFeatures('up-second', 'gro', 'on');
    await waitFor(
      () => ns.features('up-second')['generic-receive-offload'] === false,
      'the other interface enforced meanwhile',
      3000,
    );

    await adversaryDone;
    const cpuShare = (cpuSeconds(daemon.pid) - cpuBefore) / ((Date.now() - wallBefore) / 1000);
    const records = ledger(daemon).filter((record) => record.interface === 'up-flap');
    const flapping = records.filter((record) => record.event === 'flapping');
    process.stdout.write(
      `      adversary flips: ${flips.trim()}, daemon CPU share: ${(cpuShare * 100).toFixed(1)} %, records: ${records.length}, flapping records: ${flapping.length}\n`,
    );
    assert.ok(flapping.length >= 1, 'a flapping record');
    assert.ok(records.length < 100, `bounded records: ${records.length}`);
    assert.equal(daemon.exitCode, null);
    // Once the adversary stops, the back-off ends and the feature is corrected.
    await waitFor(
      () => ns.features('up-flap')['generic-receive-offload'] === false,
      'up-flap corrected after the back-off',
      20000,
    );
  });

  it('keeps every flushed record across kill -9, skips a torn last line, and continues the sequence', async function () {
    this.timeout(60000);
    for (let i = 0; i < 20; i++) ns.addVeth(`up${i}`);
    const first = ns.startDaemon(['--policy', ns.file('p.yaml', GRO_OFF()), '--log-level', 'info']);
    await first.ready();
    const flips: string[] = [];
    for (let round = 0; round < 5; round++) for (let i = 0; i < 20; i++) flips.push(`ethtool -K up${i} gro on`);
    // A burst of drift, killed in the middle.
    const burst = spawn('ip', ['netns', 'exec', ns.name, 'bash', '-c', flips.join('; ')], { stdio: 'ignore' });
    await waitFor(() => first.linesMatching(/drifted/).length >= 10, 'some drift reported');
    first.signal('SIGKILL');
    await new Promise((resolve) => burst.on('exit', resolve));
    await waitFor(() => first.exitCode !== null, 'first daemon dead');
    const reported = first.linesMatching(/drifted/).length;
    const file = path.join(first.stateDir, 'ledger.jsonl');
    const before = ledger(first);
    assert.ok(
      before.filter((record) => record.event === 'drift').length >= reported,
      'every reported record is on disk',
    );
    fs.appendFileSync(file, '{"seq": 99999, "kind": "dri'); // what a crash mid-write leaves

    const second = ns.startDaemon(
      ['--policy', ns.file('p.yaml', GRO_OFF()), '--log-level', 'info'],
      {},
      first.stateDir,
    );
    await second.ready();
    assert.ok(second.linesMatching(/torn last line/).length === 1, second.lines.join('\n'));
    ns.setFeatures('up0', 'gro', 'on');
    await waitFor(() => ledger(second).length > before.length, 'a new record after restart');
    const after = ledger(second);
    const lastBefore = before[before.length - 1]?.seq ?? 0;
    assert.ok(
      after.slice(before.length).every((record) => record.seq > lastBefore),
      'sequence continues',
    );
    assert.deepEqual(after.slice(0, before.length), before, 'history kept');
  });

  it('rotates the ledger within its bound', async function () {
    this.timeout(60000);
    const interfaces = 40;
    const rounds = 3;
    for (let i = 0; i < interfaces; i++) ns.addVeth(`up${i}`);
    const text = GRO_OFF().replace('flapping:', 'ledger: { max_bytes: 4096, keep: 2 }\nflapping:');
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', text), '--log-level', 'info']);
    await daemon.ready();
    for (let round = 1; round <= rounds; round++) {
      ns.exec('bash', '-c', Array.from({ length: interfaces }, (_, i) => `ethtool -K up${i} gro on`).join('; '));
      // The daemon counts a drift only once its record is durable, and checks for rotation in the
      // same step: a corrected feature alone says nothing about the ledger.
      await waitFor(() => durableDrifts(daemon) >= interfaces * round, `${interfaces * round} durable drift records`);
    }
    assert.equal(durableDrifts(daemon), interfaces * rounds, 'one drift per interface and round');
    const files = fs.readdirSync(daemon.stateDir).filter((name) => name.startsWith('ledger.jsonl'));
    assert.deepEqual(files.sort(), ['ledger.jsonl', 'ledger.jsonl.1', 'ledger.jsonl.2']);
    const lines = (name: string): string[] =>
      fs.readFileSync(path.join(daemon.stateDir, name), 'utf8').split('\n').filter(Boolean);
    // A file is rotated at the first sync after it reaches the bound; what arrives while that sync
    // runs (at most one round's burst, as each round waits for the last) still goes into it.
    const longestLine = Math.max(...files.flatMap((name) => lines(name).map((line) => Buffer.byteLength(line) + 1)));
    const activeSize = fs.statSync(path.join(daemon.stateDir, 'ledger.jsonl')).size;
    assert.ok(activeSize < 4096, `the active file is ${activeSize} bytes after everything was synced`);
    for (const name of ['ledger.jsonl.1', 'ledger.jsonl.2']) {
      const size = fs.statSync(path.join(daemon.stateDir, name)).size;
      assert.ok(size >= 4096 && size < 4096 + interfaces * longestLine, `${name} is ${size} bytes`);
    }
    // The kept files hold the newest records, in order, without a gap.
    const seqs = ['ledger.jsonl.2', 'ledger.jsonl.1', 'ledger.jsonl'].flatMap((name) =>
      lines(name).map((line) => (JSON.parse(line) as LedgerRecord).seq),
    );
    assert.deepEqual(
      seqs,
      Array.from({ length: seqs.length }, (_, i) => (seqs[0] as number) + i),
    );
    assert.ok((seqs.at(-1) ?? 0) >= interfaces * rounds, `the newest record is #${seqs.at(-1)}`);
  });
});
