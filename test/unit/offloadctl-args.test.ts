/**
 * offloadctl's command line: global options before or after the command, as with systemctl,
 * networkctl, ip and kubectl. Against a socket that does not exist: no daemon, no root needed.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { REPO_ROOT } from '../helpers/netns';

const OFFLOADCTL = path.join(REPO_ROOT, 'bin', 'offloadctl');
const NO_SOCKET = '/nonexistent/offloadd-test.sock';

function offloadctl(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [OFFLOADCTL, ...args], { encoding: 'utf8' });
}

describe('offloadctl arguments', () => {
  for (const args of [
    ['--json', '--socket', NO_SOCKET, 'status'],
    [`--socket=${NO_SOCKET}`, 'status', '--json'],
    ['status', '--json', '--socket', NO_SOCKET],
  ]) {
    it(`takes global options anywhere: offloadctl ${args.join(' ')}`, () => {
      const result = offloadctl(...args);
      assert.equal(result.status, 3, result.stderr); // unreachable: the options were understood
      const answer = JSON.parse(result.stdout) as { error: { code: string; message: string } };
      assert.equal(answer.error.code, 'ERR_UNREACHABLE');
      assert.ok(answer.error.message.includes(NO_SOCKET), answer.error.message);
    });
  }

  it('names the command an unknown option was given to, and says when it came before any command', () => {
    const after = offloadctl('list', '--bogus');
    assert.equal(after.status, 2);
    assert.match(after.stderr, /^offloadctl list: .*--bogus/);
    const before = offloadctl('--bogus', 'list');
    assert.equal(before.status, 2);
    assert.match(before.stderr, /unknown option "--bogus" before the command/);
    assert.equal(offloadctl('--socket').status, 2, '--socket without a value');
    assert.equal(offloadctl('--json').status, 2, 'options but no command');
  });
});
