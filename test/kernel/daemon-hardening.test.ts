/**
 * The daemon on a bad day (issue 9): options out of range, overflow storms, refused writes,
 * changes made while it was stopped, a systemd that does not listen. Real kernel, own namespaces.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import type { LedgerRecord } from '../../src/ledger/record';
import { type DaemonProcess, type Netns, REPO_ROOT, waitFor, eachTestInItsOwnNetns } from '../helpers/netns';
import { activeLedgerRecords } from '../helpers/ledger-file';

const OFFLOADCTL = path.join(REPO_ROOT, 'bin', 'offloadctl');

const UPLINKS = `
flapping: { max_corrections: 50, window: 60, max_backoff: 8 }
rules:
  - name: vm-uplinks
    match: { name: "up*" }
    features: { gro: off }
`;

function ledger(daemon: DaemonProcess): LedgerRecord[] {
  return activeLedgerRecords(daemon.stateDir, { skipTorn: true });
}

function status(daemon: DaemonProcess): { counters: Record<string, number> } {
  const result = spawnSync(process.execPath, [OFFLOADCTL, 'status', '--json', '--socket', daemon.socketPath], {
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as { counters: Record<string, number> };
}

describe('daemon hardening (real kernel, own namespace)', function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  it('refuses a --netlink-rcvbuf outside 4096..1 GiB instead of wrapping it', () => {
    const policy = ns.file('p.yaml', UPLINKS);
    for (const value of ['2147483648', '4294967296', '0', '4095', '', '1e6', '0x10000', '-1', '1073741825']) {
      const result = ns.runOffloadd(['--once', '--policy', policy, `--netlink-rcvbuf=${value}`]);
      assert.equal(result.status, 2, `${JSON.stringify(value)}: ${result.stderr}`);
      assert.match(
        result.stderr,
        /--netlink-rcvbuf: .* is not a whole number of bytes from 4096 to 1073741824/,
        JSON.stringify(value),
      );
    }
    assert.equal(ns.runOffloadd(['--once', '--policy', policy, '--netlink-rcvbuf', '4096']).status, 0);
  });

  it('coalesces a storm of receive-buffer overflows into few resync records, each with its notice count', async function () {
    this.timeout(180000);
    // veths start with gso on: every new one needs a change, so each gets an `initial` record.
    const daemon = ns.startDaemon([
      '--policy',
      ns.file('p.yaml', UPLINKS.replace('gro: off', 'gso: off')),
      '--netlink-rcvbuf',
      '4096',
      '--log-level',
      'info',
    ]);
    await daemon.ready();
    const commands: string[] = [];
    for (let i = 0; i < 1500; i++) commands.push(`link add up${i} type veth peer name dn${i}`);
    ns.ipBatch(commands);
    await waitFor(
      () => {
        const records = ledger(daemon).filter(
          (record) => record.event === 'initial' && record.interface?.startsWith('up'),
        );
        return new Set(records.map((record) => record.interface)).size === 1500;
      },
      'all 1500 up* interfaces enforced and recorded',
      150000,
    );
    const resyncs = ledger(daemon).filter((record) => record.event === 'resync');
    const notices = resyncs.reduce((sum, record) => sum + (record.notices ?? 0), 0);
    process.stdout.write(`      ${resyncs.length} resync records for ${notices} lost-event notices\n`);
    assert.ok(resyncs.length >= 1, 'the overflow was noticed');
    assert.ok(
      resyncs.every((record) => typeof record.notices === 'number' && record.notices >= 1),
      'every resync record says how many notices it covers',
    );
    assert.ok(notices > resyncs.length, `notices were coalesced: ${resyncs.length} records for ${notices} notices`);
    assert.equal(daemon.exitCode, null);
  });

  it('counts a write the kernel refuses (EPERM) as a failure, in the ledger and in status', async () => {
    ns.addVeth('up0');
    ns.setFeatures('up0', 'gro', 'on');
    // Root without CAP_NET_ADMIN: every ETHTOOL_SFEATURES is refused with EPERM. Dropped from the
    // inheritable set too: root's exec takes that set back in (systemd-nspawn fills it).
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', UPLINKS)], {}, undefined, {
      prefix: ['setpriv', '--inh-caps', '-net_admin', '--bounding-set', '-net_admin'],
    });
    await daemon.ready();
    const failed = await waitFor(
      () => ledger(daemon).find((record) => record.interface === 'up0' && record.action === 'failed'),
      'a failed record',
    );
    assert.match(failed.reason ?? '', /EPERM|not permitted/i);
    assert.ok(status(daemon).counters['failures']! >= 1, 'counters.failures counts it');
    assert.equal(ns.features('up0')['generic-receive-offload'], true, 'nothing changed');
  });

  it('records a change made while it was stopped as drift, for corrected and always-compliant interfaces', async () => {
    ns.addVeth('up-fixed');
    ns.setFeatures('up-fixed', 'gro', 'on');
    ns.addVeth('up-good'); // veth starts with rx-gro off: compliant, never recorded
    const policy = ns.file('p.yaml', UPLINKS);
    const first = ns.startDaemon(['--policy', policy]);
    await first.ready();
    await waitFor(
      () => ledger(first).some((record) => record.interface === 'up-fixed' && record.event === 'initial'),
      'first enforcement recorded',
    );
    assert.equal(await first.stop(), 0);
    const before = ledger(first).length;

    // While no daemon runs, someone turns GRO back on; a third interface appears, already wrong.
    ns.setFeatures('up-fixed', 'gro', 'on');
    ns.setFeatures('up-good', 'gro', 'on');
    ns.addVeth('up-new');
    ns.setFeatures('up-new', 'gro', 'on');

    const second = ns.startDaemon(['--policy', policy], {}, first.stateDir);
    await second.ready();
    const after = await waitFor(() => {
      const records = ledger(second).slice(before);
      return records.length >= 3 ? records : null;
    }, 'three records from the second start');
    const eventOf = (name: string): string | undefined => after.find((record) => record.interface === name)?.event;
    assert.equal(eventOf('up-fixed'), 'drift');
    assert.equal(eventOf('up-good'), 'drift');
    assert.equal(eventOf('up-new'), 'initial', 'never seen before: a first enforcement');
    assert.match(
      after.find((record) => record.interface === 'up-good')?.reason ?? '',
      /while offloadd was not running/,
    );
  });

  it('offloadctl enforce corrects at once what the flapping back-off holds back, as a manual correction', async () => {
    ns.addVeth('up0');
    const policy = UPLINKS.replace(
      'max_corrections: 50, window: 60, max_backoff: 8',
      'max_corrections: 1, window: 600, max_backoff: 600',
    );
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', policy)]);
    await daemon.ready();
    ns.setFeatures('up0', 'gro', 'on'); // corrected, and the back-off starts
    await waitFor(() => ledger(daemon).some((record) => record.event === 'flapping'), 'the back-off');
    ns.setFeatures('up0', 'gro', 'on'); // held back now: the event path will not correct it
    await waitFor(() => ledger(daemon).some((record) => record.action === 'deferred'), 'the held-back drift');
    assert.equal(ns.features('up0')['generic-receive-offload'], true);
    const result = spawnSync(process.execPath, [OFFLOADCTL, 'enforce', 'up0', '--socket', daemon.socketPath], {
      encoding: 'utf8',
    });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(ns.features('up0')['generic-receive-offload'], false, 'corrected by the request, not by an event');
    await waitFor(
      () => ledger(daemon).find((record) => record.trigger === 'manual' && record.action === 'enforced'),
      'the manual correction recorded',
    );
  });

  it("says so when systemd's notify socket does not answer, instead of failing silently", async () => {
    ns.addVeth('up0');
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', UPLINKS)], {
      NOTIFY_SOCKET: path.join(ns.tmp, 'no-such-notify-socket'),
    });
    await daemon.waitForLine(/Cannot notify systemd through .*no-such-notify-socket/);
    await daemon.ready();
    assert.equal(daemon.linesMatching(/Cannot notify systemd/).length, 1, 'logged once, not once per message');
  });
});
