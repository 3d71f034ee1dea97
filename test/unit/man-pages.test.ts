/**
 * The man pages and the bash completion say what `--help` says: every option of offloadd and
 * every command and option of offloadctl appear in them, and mandoc finds nothing to complain about.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '..', '..', '..');
const read = (file: string): string => fs.readFileSync(path.join(REPO, file), 'utf8');
const help = (program: string): string =>
  execFileSync(process.execPath, [path.join(REPO, 'bin', program), '--help'], { encoding: 'utf8' });

/** Long options listed at the start of a help line ("  --policy FILE   ..."). */
function helpOptions(text: string): string[] {
  return [...text.matchAll(/^ {2}(?:-\w, )?--([a-z][a-z-]*)/gm)].map((m) => m[1] as string);
}

/** Command names in the COMMANDS section of offloadctl --help. */
function helpCommands(text: string): string[] {
  const section = /^COMMANDS\n([\s\S]*?)\n\n/m.exec(text)?.[1] ?? '';
  return [...section.matchAll(/^ {2}([a-z][a-z-]*)\s/gm)].map((m) => m[1] as string);
}

describe('man pages and completion agree with --help', () => {
  it('offloadd(8) documents every option of offloadd --help', () => {
    const options = helpOptions(help('offloadd'));
    assert.ok(options.length >= 10, `options found: ${options.join(', ')}`);
    const page = read('man/offloadd.8');
    const missing = options.filter((option) => !page.includes(`.It Fl -${option}`) && !page.includes(`Fl -${option}`));
    assert.deepEqual(missing, [], 'add them to man/offloadd.8');
  });

  it('offloadctl(1) and the bash completion know every command and option of offloadctl --help', () => {
    const text = help('offloadctl');
    const commands = helpCommands(text);
    assert.ok(
      commands.includes('status') && commands.includes('check-policy'),
      `commands found: ${commands.join(', ')}`,
    );
    const page = read('man/offloadctl.1');
    assert.deepEqual(
      commands.filter((command) => !page.includes(`.It Cm ${command}`)),
      [],
      'add them to man/offloadctl.1',
    );
    const completion = read('completion/offloadctl.bash');
    const completed = /local commands='([^']*)'/.exec(completion)?.[1]?.split(' ') ?? [];
    assert.deepEqual([...completed].sort(), [...commands].sort(), 'completion/offloadctl.bash lists other commands');
    assert.deepEqual(
      helpOptions(text).filter((option) => !page.includes(`Fl -${option}`)),
      [],
      'add them to man/offloadctl.1',
    );
  });

  it('are clean under mandoc -Tlint', function () {
    try {
      execFileSync('sh', ['-c', 'command -v mandoc'], { stdio: 'ignore' });
    } catch {
      process.stdout.write('      skipped: mandoc is not installed (apt-get install mandoc)\n');
      this.skip();
    }
    const pages = ['man/offloadd.8', 'man/offloadctl.1', 'man/offloadd.policy.5'].map((file) => path.join(REPO, file));
    const result = execFileSync('sh', ['-c', 'mandoc -Tlint -Wwarning "$@" 2>&1; echo "exit $?"', 'lint', ...pages], {
      encoding: 'utf8',
    });
    assert.equal(result.trim(), 'exit 0');
  });
});
