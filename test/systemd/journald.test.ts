/**
 * Logging to a real, standalone journald: structured fields (INTERFACE=, MESSAGE_ID=, OFFLOADD_*),
 * priorities, the unit derived from the cgroup, and messages too large for one datagram.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { MessageId } from '../../src/observe/message-ids';
import { createLog } from '../../src/observe/log';
import { Journald, skipUnlessJournald } from '../helpers/journald';
import { canConnect, Netns, REPO_ROOT } from '../helpers/netns';

const OFFLOADD = path.join(REPO_ROOT, 'bin', 'offloadd');

describe('journald (a real standalone journald)', function () {
  this.timeout(60000);
  let journald: Journald;
  let ns: Netns;

  before(function () {
    skipUnlessJournald(this);
  });
  beforeEach(async () => {
    // The namespace first: journald's private mount namespace copies /run/netns/<name> as it is
    // then, and a later `ip netns add` would not propagate into it.
    ns = new Netns();
    journald = await Journald.start();
  });
  afterEach(async () => {
    await ns?.destroy();
    await journald?.stop();
  });

  it('logs drift with INTERFACE=, MESSAGE_ID= and OFFLOADD_* fields, under the unit', async () => {
    ns.addVeth('up0');
    const policy = ns.file('p.yaml', 'rules:\n  - name: uplinks\n    match: { name: "up*" }\n    features: { gro: off, gso: off }\n');
    const socket = path.join(ns.tmp, 'api.sock');
    const daemon = journald.run('ip', ['netns', 'exec', ns.name, process.execPath, OFFLOADD, '--policy', policy,
      '--state-dir', path.join(ns.tmp, 'state'), '--socket', socket, '--log-target', 'journal'], { cgroupUnit: 'offloadd.service' });
    for (let tries = 0; !(await canConnect(socket)); tries++) {
      if (tries > 500) throw new Error(`the daemon did not start: ${(await daemon.stop()).stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    ns.setFeatures('up0', 'gro', 'on');

    let drift;
    try {
      [drift] = await journald.waitForEntries(['_SYSTEMD_UNIT=offloadd.service', 'INTERFACE=up0', `MESSAGE_ID=${MessageId.drift}`]);
    } catch (error) {
      const all = await journald.query([]);
      throw new Error(`${(error as Error).message}\n${all.map((e) => JSON.stringify(e)).join('\n').slice(0, 4000)}\n${(await daemon.stop()).stderr}`);
    }
    assert.ok(drift);
    assert.equal(drift['SYSLOG_IDENTIFIER'], 'offloadd');
    assert.equal(drift['PRIORITY'], '4');
    assert.equal(drift['OFFLOADD_FEATURE'], 'rx-gro');
    assert.equal(drift['OFFLOADD_WANTED'], 'off');
    assert.equal(drift['OFFLOADD_ACTIVE'], 'on');
    assert.equal(drift['OFFLOADD_ACTION'], 'enforced');
    assert.equal(drift['OFFLOADD_RULE'], 'uplinks');
    assert.equal(drift['OFFLOADD_TRIGGER'], 'features');
    assert.match(String(drift['MESSAGE']), /up0: rx-gro drifted off → on/);

    const initial = await journald.waitForEntries(['INTERFACE=up0', `MESSAGE_ID=${MessageId.initial}`]);
    assert.equal(initial[0]?.['OFFLOADD_FEATURE'], 'tx-generic-segmentation');
    assert.equal(initial[0]?.['PRIORITY'], '5');
    await journald.waitForEntries([`MESSAGE_ID=${MessageId.started}`, '_SYSTEMD_UNIT=offloadd.service']);
    await journald.waitForEntries([`MESSAGE_ID=${MessageId.policyLoaded}`]);

    daemon.kill('SIGTERM');
    await journald.waitForEntries([`MESSAGE_ID=${MessageId.stopping}`]);
  });

  it('delivers a message larger than one datagram whole (memfd), and multi-line values', async () => {
    const log = createLog({ level: 'debug', target: 'journal', journalSocket: journald.socketPathFromOutside });
    const big = 'x'.repeat(300 * 1024);
    log.log('info', big, { OFFLOADD_TEST: 'big' });
    log.log('info', 'two\nlines', { OFFLOADD_TEST: 'multiline', OFFLOADD_NOTE: 'a\nb' });
    const [entry] = await journald.waitForEntries(['OFFLOADD_TEST=big'], 1, 10000, ['--all']); // --all: fields over 4 KiB
    assert.equal(String(entry?.['MESSAGE']).length, big.length);
    const [multi] = await journald.waitForEntries(['OFFLOADD_TEST=multiline']);
    assert.equal(multi?.['MESSAGE'], 'two\nlines');
    assert.equal(multi?.['OFFLOADD_NOTE'], 'a\nb');
    await log.close();
  });
});
