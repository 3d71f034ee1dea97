/**
 * A wall clock stepped under the daemon (libfaketime preloaded into the daemon only, reading its
 * offset from a file the test rewrites; the monotonic clock is left alone, as a real step leaves
 * it). The host's clock is never touched.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LedgerRecord } from '../../src/ledger/record';
import { eachTestInItsOwnNetns, type Netns, waitFor } from '../helpers/netns';
import { LIBFAKETIME, steppableWallClock, stepWallClock } from '../helpers/wall-clock';

const FLAPPY_GRO_OFF = `
flapping: { max_corrections: 2, window: 60, max_backoff: 4 }
rules:
  - name: uplinks
    match: { name: "up*" }
    features: { gro: off }
`;
const GRO = 'generic-receive-offload';

describe('a wall clock stepped under the daemon (libfaketime, daemon only)', function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  before(function () {
    if (!fs.existsSync(LIBFAKETIME)) {
      process.stdout.write(`      skipped: ${LIBFAKETIME} is missing (apt-get install faketime)\n`);
      this.skip();
    }
  });

  it('a flapping back-off is not lengthened by a wall clock stepped back one hour (issue 20 #10)', async function () {
    this.timeout(90000);
    ns.addVeth('up0');
    const offsetFile = path.join(ns.tmp, 'wall-clock-offset');
    const daemon = ns.startDaemon(['--policy', ns.file('p.yaml', FLAPPY_GRO_OFF)], steppableWallClock(offsetFile));
    await daemon.ready();
    const ledger = (): LedgerRecord[] =>
      fs
        .readFileSync(path.join(daemon.stateDir, 'ledger.jsonl'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as LedgerRecord);
    const drift = async (what: string): Promise<void> => {
      ns.setFeatures('up0', 'gro', 'on');
      await waitFor(() => ns.features('up0')[GRO] === false, what, 15000);
    };
    // Back-offs of 1 s, then 2 s, then 4 s: the longest, so the step lands inside it.
    for (let round = 1; !ledger().some((r) => r.event === 'flapping' && r.backoffSec === 4); round++) {
      assert.ok(round < 20, 'the back-off reached 4 s');
      await drift(`drift ${round} corrected`);
    }
    stepWallClock(offsetFile, -3600);
    const stepped = ledger().length;
    await drift('the drift held back corrected once the 4 s back-off ended, not an hour later');
    const after = ledger().slice(stepped);
    assert.ok(
      after.some((record) => record.event === 'drift' && Date.parse(record.time) < Date.now() - 3_000_000),
      `records after the step keep the (stepped) wall time for people: ${JSON.stringify(after)}`,
    );
  });
});
