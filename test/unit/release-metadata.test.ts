/**
 * What a release says about itself, without a kernel: CHANGELOG.md is well-formed and turns into a
 * debian/changelog dpkg reads; the version and the commit reach the build info, also in a tree
 * made by `git archive` (no .git).
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from '../helpers/promql';

interface Section {
  version: string;
  date: string | null;
  items: string[];
}
interface ChangelogModule {
  parseChangelog(text: string): Section[];
  debianChangelog(markdown: string, version: string, maintainer: string, commitEpoch: number, commit: string): string;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS build script of the repository
const changelog = require(path.join(REPO_ROOT, 'scripts', 'debian-changelog.js')) as ChangelogModule;
const MARKDOWN = fs.readFileSync(path.join(REPO_ROOT, 'CHANGELOG.md'), 'utf8');
const MAINTAINER = 'offloadd maintainers <maintainers@example.org>';
const EPOCH = 1_790_000_000;

/** dpkg-parsechangelog's view of a debian/changelog: every entry's version. */
function debianVersions(text: string): string[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-changelog-'));
  try {
    fs.writeFileSync(path.join(dir, 'changelog'), text);
    const out = execFileSync(
      'dpkg-parsechangelog',
      ['-l', path.join(dir, 'changelog'), '--format', 'rfc822', '--all'],
      {
        encoding: 'utf8',
      },
    );
    return [...out.matchAll(/^Version: (.+)$/gm)].map((match) => match[1] as string);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('release metadata', () => {
  it('CHANGELOG.md: Unreleased first, then every release, newest first, dated and non-empty', () => {
    const sections = changelog.parseChangelog(MARKDOWN);
    assert.equal(sections[0]?.version, 'Unreleased');
    const releases = sections.slice(1);
    assert.deepEqual(
      releases.map((s) => s.version),
      ['0.3.0', '0.2.0', '0.1.0'],
    );
    for (const section of releases) {
      assert.match(section.date ?? '', /^\d{4}-\d{2}-\d{2}$/, section.version);
      assert.ok(section.items.length > 0, `${section.version} says what changed`);
    }
    const dates = releases.map((s) => s.date as string);
    assert.deepEqual([...dates].sort().reverse(), dates, 'newest first');
  });

  it("package.json's version is a release in CHANGELOG.md or the next one (then Unreleased says what changed)", () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
      version: string;
    };
    const sections = changelog.parseChangelog(MARKDOWN);
    const known = sections.some((s) => s.version === version);
    if (!known)
      assert.ok((sections[0]?.items.length ?? 0) > 0, `${version} is not in CHANGELOG.md, and Unreleased is empty`);
  });

  it('debian/changelog: one entry per release that dpkg parses, the current one dated with the commit', () => {
    const text = changelog.debianChangelog(MARKDOWN, '0.3.0', MAINTAINER, EPOCH, '0123456789ab');
    if (spawnSync('dpkg-parsechangelog', ['--version']).status === 0)
      assert.deepEqual(debianVersions(text), ['0.3.0', '0.2.0', '0.1.0']);
    assert.match(text, /^ -- offloadd maintainers <maintainers@example\.org> {2}Mon, 21 Sep 2026 14:13:20 \+0000$/m);
    assert.match(text, /Built from commit 0123456789ab\./);
    for (const line of text.split('\n').filter((l) => l.startsWith('  ')))
      assert.ok(line.length <= 80, `line too long: ${line}`);
  });

  it('debian/changelog for the next version takes Unreleased; a version with nothing to say is refused', () => {
    const text = changelog.debianChangelog(MARKDOWN, '0.4.0', MAINTAINER, EPOCH, '0123456789ab');
    assert.match(text, /^offloadd \(0\.4\.0\) unstable; urgency=medium$/m);
    assert.match(text, /signed apt repository/);
    const empty = MARKDOWN.replace(/## \[Unreleased\][\s\S]*?(?=## \[0\.3\.0\])/, '## [Unreleased]\n\n');
    assert.throws(
      () => changelog.debianChangelog(empty, '0.4.0', MAINTAINER, EPOCH, 'x'),
      /says nothing under \[Unreleased\]/,
    );
    assert.throws(
      () => changelog.debianChangelog('# Changelog\n', '0.4.0', MAINTAINER, EPOCH, 'x'),
      /neither a \[0\.4\.0\] nor an \[Unreleased\]/,
    );
  });

  it('a tree made by git archive (no .git) still builds with its commit', function () {
    const status = spawnSync('git', ['-C', REPO_ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' });
    if (status.status !== 0) this.skip();
    const head = status.stdout.trim();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-archive-'));
    try {
      const archive = path.join(dir, 'src.tar');
      execFileSync('git', [
        '-C',
        REPO_ROOT,
        'archive',
        '--format=tar',
        '-o',
        archive,
        'HEAD',
        'package.json',
        'policy',
        'scripts',
      ]);
      execFileSync('tar', ['-xf', archive, '-C', dir]);
      assert.ok(!fs.existsSync(path.join(dir, '.git')));
      // GIT_DIR pointing nowhere: git must not find the enclosing checkout of the temporary directory either.
      execFileSync(process.execPath, [path.join(dir, 'scripts', 'build-info.js')], {
        env: { ...process.env, GIT_DIR: path.join(dir, 'no-git') },
      });
      const info = fs.readFileSync(path.join(dir, 'src', 'generated', 'build-info.ts'), 'utf8');
      assert.match(info, new RegExp(`^export const COMMIT: string = "${head}";$`, 'm'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
