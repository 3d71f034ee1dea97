/**
 * The ledger and the state directory under a bad day, against the real daemon: links and FIFOs
 * at the ledger's path, unsafe or shared state directories, a stop during the start-up pass, a
 * ledger deleted while running, and full or read-only file systems (a size-limited tmpfs mounted
 * in a private mount namespace that only the daemon and the test's nsenter calls see).
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { call } from '../../src/api/client';
import type { StatusResult } from '../../src/api/protocol';
import type { LedgerRecord } from '../../src/ledger/record';
import {
  type DaemonLaunch,
  type DaemonProcess,
  eachTestInItsOwnNetns,
  type Netns,
  onPrivateTmpfs,
  run,
  waitFor,
} from '../helpers/netns';
import { activeLedgerRecords, parseLedgerText } from '../helpers/ledger-file';

const GSO = 'generic-segmentation-offload';
/** tmpfs allocates whole pages: a file that ends on a page boundary cannot grow on a full one. */
const PAGE_BYTES = 4096;
const GSO_OFF = `
rules:
  - name: uplinks
    match: { name: "up*" }
    features: { gso: off }
`;
const GRO_OFF = `
flapping: { max_corrections: 50, window: 60, max_backoff: 8 }
rules:
  - name: uplinks
    match: { name: "up*" }
    features: { gro: off }
`;

function ledgerOf(daemon: DaemonProcess): LedgerRecord[] {
  return activeLedgerRecords(daemon.stateDir);
}

function assertIncreasing(records: LedgerRecord[]): void {
  records.forEach((record, index) => {
    if (index > 0)
      assert.ok(
        record.seq > (records[index - 1] as LedgerRecord).seq,
        `seq ${record.seq} after ${(records[index - 1] as LedgerRecord).seq}`,
      );
  });
}

async function status(daemon: DaemonProcess): Promise<StatusResult> {
  return call(daemon.socketPath, 'status', {});
}

async function exited(daemon: DaemonProcess): Promise<number> {
  return (await waitFor(() => daemon.exitCode !== null && { code: daemon.exitCode }, 'the daemon to exit', 30000)).code;
}

/** `count` veth pairs: up0, up1, ... (peers peer-up0, ...). */
function addUplinks(ns: Netns, count: number): void {
  ns.ipBatch(Array.from({ length: count }, (_, index) => `link add up${index} type veth peer name peer-up${index}`));
}

/** Those of up0 ... up<count - 1> whose GSO is off now, as ethtool -k says. */
function gsoOffAmong(ns: Netns, count: number): string[] {
  return ns
    .exec('sh', '-c', `for i in $(seq 0 ${count - 1}); do printf "up$i "; ethtool -k up$i | grep '^${GSO}:'; done`)
    .split('\n')
    .filter((line) => / off$/.test(line))
    .map((line) => line.split(' ')[0] as string);
}

/** The interfaces the records say GSO was set as wanted on. */
function gsoEnforcedOn(records: readonly LedgerRecord[]): Set<string | undefined> {
  return new Set(
    records
      .filter((record) => record.feature === 'tx-generic-segmentation' && record.action === 'enforced')
      .map((record) => record.interface),
  );
}

/** A user other than the daemon's, as who planted a link. */
const NOBODY_UID = 65534;

describe('ledger and state directory (real daemon, own namespace)', function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  it('never follows a symbolic link at ledger.jsonl: enforces, leaves the target alone, flags the ledger in status', async () => {
    ns.addVeth('up0');
    const stateDir = path.join(ns.tmp, 'state');
    fs.mkdirSync(stateDir, { mode: 0o750 });
    const victim = ns.file('victim', 'precious\n');
    fs.symlinkSync(victim, path.join(stateDir, 'ledger.jsonl'));
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', GSO_OFF)], {}, stateDir);
    await daemon.ready();
    assert.equal(ns.features('up0')[GSO], false, 'enforced');
    assert.equal(fs.readFileSync(victim, 'utf8'), 'precious\n');
    const { ledger } = await status(daemon);
    assert.equal(ledger.writable, false);
    assert.ok(ledger.unwritableSince !== null && !Number.isNaN(Date.parse(ledger.unwritableSince)));
    assert.match(ledger.problem ?? '', /symbolic link/);
    assert.ok(daemon.linesMatching(/not writable/).length >= 1, daemon.lines.join('\n'));
  });

  it('does not hang on a FIFO at ledger.jsonl: enforces and flags the ledger in status', async () => {
    ns.addVeth('up0');
    const stateDir = path.join(ns.tmp, 'state');
    fs.mkdirSync(stateDir, { mode: 0o750 });
    run('mkfifo', [path.join(stateDir, 'ledger.jsonl')]);
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', GSO_OFF)], {}, stateDir);
    await daemon.ready();
    assert.equal(ns.features('up0')[GSO], false, 'enforced');
    const { ledger } = await status(daemon);
    assert.equal(ledger.writable, false);
    assert.match(ledger.problem ?? '', /FIFO/);
  });

  for (const unsafe of ['group-writable', 'world-writable', 'owned by another user'] as const) {
    it(`refuses a state directory ${unsafe}, before changing anything`, async () => {
      ns.addVeth('up0');
      const stateDir = path.join(ns.tmp, 'state');
      fs.mkdirSync(stateDir);
      if (unsafe === 'owned by another user') {
        fs.chmodSync(stateDir, 0o750);
        fs.chownSync(stateDir, 65534, 65534);
      } else {
        fs.chmodSync(stateDir, unsafe === 'group-writable' ? 0o770 : 0o777);
      }
      const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', GSO_OFF)], {}, stateDir);
      assert.equal(await exited(daemon), 1);
      const message = daemon.lines.join('\n');
      assert.match(
        message,
        unsafe === 'owned by another user'
          ? /owned by uid 65534, not by the daemon's user/
          : /writable by its group or by everyone/,
      );
      assert.match(message, /hint: .*(chown|chmod)/);
      assert.equal(ns.features('up0')[GSO], true, 'left alone');
      assert.equal(fs.existsSync(path.join(stateDir, 'ledger.jsonl')), false);
    });
  }

  it('a state directory given as a symbolic link is refused (issue 20 #2)', async () => {
    ns.addVeth('up0');
    // The target another user chose: owned by the daemon's user and 0750, so only the link is wrong.
    const target = path.join(ns.tmp, 'chosen-by-someone-else');
    fs.mkdirSync(target, { mode: 0o750 });
    const stateDir = path.join(ns.tmp, 'state');
    fs.symlinkSync(target, stateDir);
    // Planted by another user (nobody): the daemon cannot tell who chose the target.
    fs.lchownSync(stateDir, NOBODY_UID, NOBODY_UID);
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', GSO_OFF)], {}, stateDir);
    assert.equal(await exited(daemon), 1);
    const message = daemon.lines.join('\n');
    assert.match(message, /state directory .* is a symbolic link/);
    assert.match(message, /hint: .*readlink -f/);
    assert.equal(ns.features('up0')[GSO], true, 'left alone');
    assert.deepEqual(fs.readdirSync(target), [], 'nothing written through the link');
  });

  it("follows a link made by root in a directory only root writes, as systemd's DynamicUser= layout is (issue 20 #2)", async () => {
    ns.addVeth('up0');
    const target = path.join(ns.tmp, 'private', 'offloadd');
    fs.mkdirSync(target, { recursive: true, mode: 0o750 });
    const stateDir = path.join(ns.tmp, 'offloadd');
    fs.symlinkSync('private/offloadd', stateDir);
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', GSO_OFF)], {}, stateDir);
    await daemon.ready();
    assert.equal(ns.features('up0')[GSO], false);
    assert.ok(fs.existsSync(path.join(target, 'ledger.jsonl')), 'the ledger is in the link target');
    await daemon.stop();
  });

  it('a state directory under a directory others may write without the sticky bit is refused (issue 20 #2)', async () => {
    ns.addVeth('up0');
    const parent = path.join(ns.tmp, 'shared');
    fs.mkdirSync(parent);
    fs.chmodSync(parent, 0o775);
    const stateDir = path.join(parent, 'state');
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', GSO_OFF)], {}, stateDir);
    assert.equal(await exited(daemon), 1);
    assert.match(daemon.lines.join('\n'), /shared, above state directory .* without the sticky bit/);
    assert.equal(ns.features('up0')[GSO], true, 'left alone');
  });

  it('refuses a second daemon on a held state directory, naming the holder, before changing anything', async () => {
    ns.addVeth('up0');
    ns.addVeth('other0');
    const first = ns.startDaemon(['--policy', ns.file('p.yaml', GSO_OFF)]);
    await first.ready();
    const before = fs.readFileSync(path.join(first.stateDir, 'ledger.jsonl'), 'utf8');
    const second = ns.startDaemon(
      ['--policy', ns.file('other.yaml', GSO_OFF.replace('up*', 'other*'))],
      {},
      first.stateDir,
      {
        socketPath: path.join(ns.tmp, 'second.sock'),
      },
    );
    assert.equal(await exited(second), 1);
    assert.match(
      second.lines.join('\n'),
      new RegExp(
        `another offloadd \\(pid ${first.pid}\\) holds ${first.stateDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`,
      ),
    );
    assert.equal(ns.features('other0')[GSO], true, 'the second daemon changed nothing');
    assert.equal(fs.readFileSync(path.join(first.stateDir, 'ledger.jsonl'), 'utf8'), before, 'nor wrote to the ledger');
    assert.equal(fs.existsSync(second.socketPath), false, 'nor made a socket');
    assert.equal((await status(first)).pid, first.pid, 'the first daemon still serves');
  });

  it('keeps a record of every change made before a SIGTERM during the start-up pass over 1,200 interfaces', async function () {
    this.timeout(240000);
    const count = 1200;
    addUplinks(ns, count);
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', GSO_OFF), '--log-level', 'info']);
    // The first change seen from outside: the pass is under way. Stop it there.
    await waitFor(() => ns.features('up0')[GSO] === false, 'the first change', 60000);
    daemon.signal('SIGTERM');
    assert.equal(await exited(daemon), 0, daemon.lines.slice(-20).join('\n'));
    const changed = gsoOffAmong(ns, count);
    assert.ok(changed.length > 0);
    const recorded = gsoEnforcedOn(ledgerOf(daemon));
    const missing = changed.filter((name) => !recorded.has(name));
    process.stdout.write(`      changed before the stop: ${changed.length} of ${count}; recorded: ${recorded.size}\n`);
    assert.deepEqual(missing, [], `${missing.length} changed interfaces have no record`);
  });

  it('keeps a record of every change made before a SIGKILL during the start-up pass over 1,200 interfaces: the next start records them from their intents (issue 22 #2)', async function () {
    this.timeout(240000);
    const count = 1200;
    addUplinks(ns, count);
    const policy = ns.file('p.yaml', GSO_OFF);
    const daemon = ns.startDaemon(['--policy', policy, '--log-level', 'info']);
    await waitFor(() => ns.features('up0')[GSO] === false, 'the first change', 60000);
    daemon.signal('SIGKILL');
    await exited(daemon);
    const changed = gsoOffAmong(ns, count);
    assert.ok(changed.length > 0);
    const next = ns.startDaemon(['--policy', policy, '--log-level', 'info'], {}, daemon.stateDir);
    await next.ready();
    await next.stop();
    const records = ledgerOf(next);
    assertIncreasing(records);
    const recorded = gsoEnforcedOn(records);
    const missing = changed.filter((name) => !recorded.has(name));
    const fromIntents = records.filter((record) =>
      /recorded at the next start from its intent/.test(record.reason ?? ''),
    );
    process.stdout.write(
      `      changed before the kill: ${changed.length} of ${count}; recorded from intents at the next start: ${fromIntents.length}\n`,
    );
    assert.deepEqual(missing, [], `${missing.length} changed interfaces have no record`);
    assert.equal(fs.statSync(path.join(next.stateDir, 'ledger.intent')).size, 0, 'no intent left after a clean stop');
  });

  it('a long and partly unreadable history does not hold up READY; a drift query right after READY answers from all of it (issue 22 #1)', async function () {
    this.timeout(120000);
    ns.addVeth('up0');
    const stateDir = path.join(ns.tmp, 'state');
    fs.mkdirSync(stateDir, { mode: 0o750 });
    const history = 30000;
    const line = (seq: number): string =>
      `${JSON.stringify({ seq, time: new Date(Date.UTC(2026, 10, 1) + seq * 1000).toISOString(), event: 'drift', trigger: 'features', action: 'enforced', interface: `old${seq % 7}`, feature: 'rx-gro', wanted: 'off', active: 'on' })}\n`;
    const lines = Array.from({ length: history }, (_, index) => line(index + 1));
    fs.writeFileSync(path.join(stateDir, 'ledger.jsonl.1'), lines.slice(0, 10000).join(''), { mode: 0o640 });
    fs.writeFileSync(path.join(stateDir, 'ledger.jsonl'), lines.slice(10000).join(''), { mode: 0o640 });
    fs.mkdirSync(path.join(stateDir, 'ledger.jsonl.2')); // unreadable as a ledger file
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', GSO_OFF), '--log-level', 'info'], {}, stateDir);
    await daemon.ready();
    const [newest, oldest] = await Promise.all([
      call(daemon.socketPath, 'drift.list', { limit: 2 }),
      call(daemon.socketPath, 'drift.list', { interface: 'old1', limit: 100000 }),
    ]);
    assert.equal(newest.records[0]?.seq, history + 1, 'the start-up record, numbered after the history');
    assert.equal(newest.records[0]?.interface, 'up0');
    assert.equal(newest.records[1]?.seq, history);
    assert.equal(oldest.records.length, Math.floor((history - 1) / 7) + 1, 'every old1 record, from memory and files');
    assert.match((oldest.warnings ?? []).join('\n'), /ledger\.jsonl\.2 cannot be read/);
  });

  it('notices a ledger deleted while running and reopens it, with a warning', async () => {
    ns.addVeth('up0');
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', GRO_OFF)]);
    await daemon.ready();
    const last = ledgerOf(daemon).at(-1)?.seq ?? 0;
    fs.rmSync(path.join(daemon.stateDir, 'ledger.jsonl'));
    ns.setFeatures('up0', 'gro', 'on');
    await waitFor(
      () => ledgerOf(daemon).some((record) => record.event === 'drift' && record.interface === 'up0'),
      'the drift record in a fresh ledger.jsonl',
    );
    assert.ok(
      ledgerOf(daemon).every((record) => record.seq > last),
      'numbering continues',
    );
    await daemon.waitForLine(/ledger\.jsonl was deleted or replaced while the daemon ran; reopening it/);
  });
});

describe('ledger on a full or read-only file system (tmpfs in a private mount namespace)', function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  /** The daemon on a fresh tmpfs of `size` at its state directory; `setup` runs in it first (sh, "$0" is the directory). */
  function startOnTmpfs(policy: string, size: string, setup = ''): DaemonProcess {
    const stateDir = path.join(ns.tmp, 'state');
    fs.mkdirSync(stateDir, { recursive: true });
    return ns.startDaemon(['--policy', ns.file('p.yaml', policy)], {}, stateDir, {
      ...onPrivateTmpfs(stateDir, size, setup),
      socketPath: path.join(ns.tmp, 'api.sock'),
    });
  }

  /** A command in the mount namespace of process `pid`, where the state directory's tmpfs is. */
  function inMountsOf(pid: number | undefined, script: string): string {
    return run('nsenter', ['-t', String(pid), '-m', 'sh', '-c', script]);
  }

  /** A command in the daemon's mount namespace. */
  function inDaemonMounts(daemon: DaemonProcess, script: string): string {
    return inMountsOf(daemon.pid, script);
  }

  const fill = (dir: string): string => `cat /dev/zero > "${dir}/filler" 2>/dev/null || true;`;

  /**
   * Drifts gro on up0 (the daemon corrects each) until the daemon's ledger, on a full disk, says
   * it is not writable, then `more` times. Returns the drifts before that (`fitted`) and in all.
   */
  async function driftUntilLedgerFull(
    daemon: DaemonProcess,
    more: number,
  ): Promise<{ fitted: number; rounds: number }> {
    let rounds = 0;
    const drift = async (): Promise<void> => {
      ns.setFeatures('up0', 'gro', 'on');
      rounds++;
      await waitFor(
        () => ns.features('up0')['generic-receive-offload'] === false,
        `drift ${rounds} corrected on a full disk`,
      );
    };
    while ((await status(daemon)).ledger.writable) {
      assert.ok(rounds < PAGE_BYTES / 100, 'a page holds fewer records than this');
      await drift();
    }
    const fitted = rounds;
    for (let extra = 0; extra < more; extra++) await drift();
    return { fitted, rounds };
  }

  it('cuts a failed append back, keeps enforcing, shows "not writable since" in status, and writes the held records once space returns', async function () {
    this.timeout(90000);
    ns.addVeth('up0');
    ns.setFeatures('up0', 'gro', 'on'); // an initial record: the ledger's last page is partly used
    const daemon = startOnTmpfs(GRO_OFF, '256k');
    await daemon.ready();
    inDaemonMounts(daemon, fill(daemon.stateDir));
    // Drift until the page is full: the append that crosses into the next page is partial
    // (tmpfs writes what fits), the ones after it fail outright. Then a few more.
    const { fitted, rounds } = await driftUntilLedgerFull(daemon, 3);
    const full = (await status(daemon)).ledger;
    assert.equal(full.writable, false, JSON.stringify(full));
    assert.ok(full.unwritableSince !== null && !Number.isNaN(Date.parse(full.unwritableSince)));
    assert.match(full.problem ?? '', /ENOSPC|no space/i);
    await daemon.waitForLine(/Ledger .* not writable: /);

    process.stdout.write(`      drifts before the ledger failed: ${fitted}, in all: ${rounds}\n`);
    inDaemonMounts(daemon, `rm "${daemon.stateDir}/filler"`);
    await daemon.waitForLine(/Ledger .* writable again/, 30000);
    const after = (await status(daemon)).ledger;
    assert.equal(after.writable, true);
    assert.equal(after.unwritableSince, null);
    const records = parseLedgerText(inDaemonMounts(daemon, `cat "${daemon.stateDir}/ledger.jsonl"`));
    assertIncreasing(records);
    assert.equal(
      records.filter((record) => record.event === 'drift' && record.interface === 'up0').length,
      rounds,
      'every drift recorded, none glued or lost',
    );
    assert.equal(daemon.exitCode, null);
  });

  it("temporary files left after a full disk: none of the daemon's (sequence number, last seen state, metrics textfile) stays behind (issue 20 #17)", async function () {
    this.timeout(90000);
    ns.addVeth('up0');
    const stateDir = path.join(ns.tmp, 'state');
    fs.mkdirSync(stateDir, { recursive: true });
    const textfile = path.join(stateDir, 'metrics', 'offloadd.prom');
    const daemon = ns.startDaemon(
      ['--policy', ns.file('p.yaml', GRO_OFF), '--metrics-textfile', textfile],
      {},
      stateDir,
      {
        ...onPrivateTmpfs(stateDir, '256k', 'mkdir "$0/metrics";'),
        socketPath: path.join(ns.tmp, 'api.sock'),
      },
    );
    await daemon.ready();
    inDaemonMounts(daemon, fill(daemon.stateDir));
    // Drift until the ledger and the textfile have met the full disk; the last seen state is
    // written every 10 s, so its failure is waited for.
    let rounds = 0;
    const failed = [/Ledger .* not writable: /, /Metrics: could not write /];
    while (!failed.every((pattern) => daemon.linesMatching(pattern).length > 0)) {
      assert.ok(rounds < 500, `the ledger and the textfile met the full disk:\n${daemon.lines.slice(-20).join('\n')}`);
      ns.setFeatures('up0', 'gro', 'on');
      rounds++;
      await waitFor(() => ns.features('up0')['generic-receive-offload'] === false, `drift ${rounds} corrected`);
    }
    await daemon.waitForLine(/Last seen state: cannot write /, 30000);
    const listing = inDaemonMounts(daemon, `cd "${stateDir}" && find . -mindepth 1 | sort`).split('\n');
    assert.deepEqual(
      listing.filter((name) => /tmp/.test(name)),
      [],
      listing.join('\n'),
    );
  });

  it('held records are never lost when the disk stays full until exit: the next start writes them, numbers continuous (issue 20 #3)', async function () {
    this.timeout(120000);
    ns.addVeth('up0');
    ns.setFeatures('up0', 'gro', 'on');
    const stateDir = path.join(ns.tmp, 'state');
    fs.mkdirSync(stateDir);
    // A private mount namespace that outlives each daemon, so the full tmpfs survives a restart.
    const holder = spawn(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount -t tmpfs -o size=2m,mode=0750 offloadd-test "$0" && echo mounted && exec sleep 600',
        stateDir,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      let output = '';
      holder.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      await waitFor(() => output.includes('mounted'), 'the tmpfs mounted');
      const inMounts = (script: string): string => inMountsOf(holder.pid, script);
      const launch = (socket: string): DaemonLaunch => ({
        prefix: ['nsenter', '-t', String(holder.pid), '-m'],
        socketPath: path.join(ns.tmp, socket),
      });
      const policy = ns.file('p.yaml', GRO_OFF);
      const first = ns.startDaemon(['--policy', policy], {}, stateDir, launch('first.sock'));
      await first.ready();
      inMounts(fill(stateDir));
      const { rounds } = await driftUntilLedgerFull(first, 5);
      await first.stop();
      assert.match(first.lines.join('\n'), /kept in .*ledger\.reserve and written to the ledger at the next start/);
      assert.doesNotMatch(first.lines.join('\n'), /only in the log/);

      inMounts(`rm "${stateDir}/filler"`);
      const second = ns.startDaemon(['--policy', policy], {}, stateDir, launch('second.sock'));
      await second.ready();
      await second.stop();
      const records = parseLedgerText(inMounts(`cat "${stateDir}/ledger.jsonl"`));
      records.forEach((record, index) => {
        if (index > 0) assert.equal(record.seq, (records[index - 1] as LedgerRecord).seq + 1, 'numbers continuous');
      });
      assert.equal(
        records.filter((record) => record.event === 'drift' && record.interface === 'up0').length,
        rounds,
        `every drift recorded once: ${JSON.stringify(records.map((record) => [record.seq, record.event, record.interface]))}`,
      );
      assert.deepEqual(
        inMounts(`ls -A "${stateDir}"`)
          .split('\n')
          .filter((name) => name.includes('tmp')),
        [],
        'no temporary files left',
      );
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('starts and enforces with a torn last line on a full disk', async () => {
    ns.addVeth('up0');
    // A valid record, then a torn one padded to fill the file's last page: nothing more fits.
    const first =
      '{"seq":1,"time":"2026-11-20T10:00:00.000Z","kind":"drift","trigger":"features","action":"enforced"}\n';
    const torn = `{"seq": 2, "kind": "dr${'x'.repeat(PAGE_BYTES - first.length - 22)}`;
    const seed = ns.file('seed.jsonl', first + torn);
    assert.equal(fs.statSync(seed).size, PAGE_BYTES);
    const daemon = startOnTmpfs(GSO_OFF, '64k', `cp "${seed}" "$0/ledger.jsonl"; ${fill('$0')}`);
    await daemon.ready();
    assert.equal(ns.features('up0')[GSO], false, 'enforced');
    const { ledger } = await status(daemon);
    assert.equal(ledger.writable, false);
    assert.equal(ledger.lastSeq, 2, 'numbered after the last valid record');
    assert.ok(daemon.linesMatching(/torn last line/).length === 1, daemon.lines.join('\n'));
  });

  it('starts and enforces on a read-only state directory', async () => {
    ns.addVeth('up0');
    const daemon = startOnTmpfs(GSO_OFF, '64k', 'touch "$0/ledger.jsonl"; mount -o remount,ro "$0";');
    await daemon.ready();
    assert.equal(ns.features('up0')[GSO], false, 'enforced');
    const { ledger } = await status(daemon);
    assert.equal(ledger.writable, false);
    assert.match(ledger.problem ?? '', /read-only/);
    await daemon.waitForLine(/not writable/);
  });
});
