/** Static checks of the unit and catalog (scripts/check-unit.sh): verify silent, exposure ≤ 2.0. */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { REPO_ROOT } from '../helpers/netns';

describe('systemd/offloadd.service and offloadd.catalog (static checks)', () => {
  it('passes systemd-analyze verify and security (≤ 2.0), and the catalog is complete', function () {
    const result = spawnSync('bash', [path.join(REPO_ROOT, 'scripts', 'check-unit.sh')], { encoding: 'utf8' });
    const exposure = /exposure (\d+\.\d+)/.exec(result.stdout)?.[1];
    process.stdout.write(`      exposure ${exposure ?? '?'}\n`);
    assert.equal(result.status, 0, result.stdout + result.stderr);
  });
});
