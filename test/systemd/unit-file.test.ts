/** Static checks of the unit and catalog (scripts/check-unit.sh): verify silent, exposure ≤ 2.0. */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from '../helpers/netns';

describe('systemd/offloadd.service and offloadd.catalog (static checks)', () => {
  it('passes systemd-analyze verify and security (≤ 2.0), and the catalog is complete', function () {
    const result = spawnSync('bash', [path.join(REPO_ROOT, 'scripts', 'check-unit.sh')], { encoding: 'utf8' });
    const exposure = /exposure (\d+\.\d+)/.exec(result.stdout)?.[1];
    process.stdout.write(`      exposure ${exposure ?? '?'}\n`);
    assert.equal(result.status, 0, result.stdout + result.stderr);
  });

  it('stays valid and ≤ 2.0 with the metrics drop-in example merged in, which keeps AF_UNIX AF_NETLINK in the unit', function () {
    const unit = fs.readFileSync(path.join(REPO_ROOT, 'systemd', 'offloadd.service'), 'utf8');
    assert.match(unit, /^RestrictAddressFamilies=AF_UNIX AF_NETLINK$/m, 'the unit itself allows no IP');
    const dropIn = fs.readFileSync(path.join(REPO_ROOT, 'systemd', 'offloadd.service.d', 'metrics.conf.example'), 'utf8');
    assert.match(dropIn, /^RestrictAddressFamilies=AF_INET AF_INET6$/m);
    assert.match(dropIn, /--metrics-listen /);
    // One [Service] section, as systemd sees unit and drop-in together; ExecStart= as in the checkout.
    const service = dropIn
      .split('[Service]\n')[1]
      ?.replace(/^ExecStart=\/usr\/sbin\/offloadd/m, 'ExecStart=/usr/bin/node /opt/offloadd/bin/offloadd');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-unit-'));
    try {
      const merged = path.join(dir, 'offloadd.service');
      fs.writeFileSync(merged, unit.replace('\n[Install]', `${service ?? ''}\n[Install]`));
      const result = spawnSync('bash', [path.join(REPO_ROOT, 'scripts', 'check-unit.sh'), merged], {
        encoding: 'utf8',
      });
      assert.equal(result.status, 0, result.stdout + result.stderr);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("runs the daemon with the node options the packages' launchers and the image use (scripts/stage.sh)", function () {
    const stage = fs.readFileSync(path.join(REPO_ROOT, 'scripts', 'stage.sh'), 'utf8');
    const flags = /^DAEMON_NODE_FLAGS=(.*)$/m.exec(stage)?.[1];
    assert.ok(flags !== undefined, 'scripts/stage.sh sets DAEMON_NODE_FLAGS');
    // One option: the image's launcher carries it on its #! line, where the kernel passes one argument.
    assert.match(flags, /^--[\w-]+(=\S+)?$/);
    const unit = fs.readFileSync(path.join(REPO_ROOT, 'systemd', 'offloadd.service'), 'utf8');
    assert.match(unit, new RegExp(`^ExecStart=/usr/bin/node ${flags} /opt/offloadd/bin/offloadd$`, 'm'));
  });
});
