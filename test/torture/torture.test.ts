/** A short torture schedule for CI; `npm run test:torture` runs the long one. */
import { strict as assert } from 'node:assert';
import { runTorture } from './torture';
import { skipUnlessRoot } from '../helpers/netns';

describe('torture (short seeded schedule)', function () {
  before(function () {
    skipUnlessRoot(this);
  });
  it('ends compliant, with every managed flip accounted for, the daemon alive, every change made before a SIGTERM or on a full disk in a parseable, strictly increasing ledger, while hostile API and metrics clients storm', async function () {
    this.timeout(300000);
    const seed = Number(process.env['OFFLOADD_TORTURE_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
    const report = await runTorture({
      seed,
      operations: 400,
      veths: 60,
      terminations: 5,
      diskFull: true,
      clientRounds: 40,
      clockSteps: 2,
    });
    process.stdout.write(
      `      seed ${seed}: ${report.flips} flips (${report.flipsRecorded} recorded, ${report.flipsCoveredByResync} by resync, ${report.flipsMoot} moot), ${report.resyncs} resyncs, max RSS ${report.maxRssMiB.toFixed(1)} MiB, ${report.changesUnderTermination} changes checked across SIGTERMs and SIGKILLs (${report.changesUnderKill} across SIGKILL), ${report.correctionsOnFullDisk} corrections on a full disk, hostile clients ${JSON.stringify(report.clientActions)}\n`,
    );
    assert.deepEqual(report.problems, [], `seed ${seed} (reproduce with OFFLOADD_TORTURE_SEED=${seed})`);
  });
});
