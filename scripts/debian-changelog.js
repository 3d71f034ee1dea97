#!/usr/bin/env node
// Writes debian/changelog from CHANGELOG.md (Keep a Changelog), so the two never disagree:
//   node scripts/debian-changelog.js VERSION MAINTAINER COMMIT_EPOCH COMMIT > debian/changelog
// One entry per release section, newest first. The entry for VERSION is its own section, or,
// before that section is written, the Unreleased one; it is dated with the commit (dpkg derives
// SOURCE_DATE_EPOCH from that date, so the package's timestamps come from the commit too).
// Older releases are dated with the day CHANGELOG.md gives them.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const CHANGELOG = path.join(__dirname, '..', 'CHANGELOG.md');
const WIDTH = 78;

/** The release sections: [{ version, date, items: ['Added: ...'] }], as written (newest first). */
function parseChangelog(text) {
  const sections = [];
  let current = null;
  let heading = '';
  for (const line of text.split('\n')) {
    const release = /^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?\s*$/.exec(line);
    if (release) {
      current = { version: release[1], date: release[2] ?? null, items: [] };
      sections.push(current);
      heading = '';
      continue;
    }
    if (!current) continue;
    const kind = /^### (\w+)/.exec(line);
    if (kind) heading = kind[1];
    else if (/^- /.test(line)) current.items.push(`${heading ? `${heading}: ` : ''}${line.slice(2).trim()}`);
    else if (/^\s+\S/.test(line) && current.items.length > 0)
      current.items[current.items.length - 1] += ` ${line.trim()}`;
  }
  return sections;
}

/** "  * text" wrapped at WIDTH, continuation lines indented under the text. */
function bullet(text) {
  const words = text.replace(/`/g, '').split(/\s+/);
  const lines = [];
  let line = '  *';
  for (const word of words) {
    if (line.length + 1 + word.length > WIDTH && line.trim() !== '*') {
      lines.push(line);
      line = '    ';
    }
    line += (line.endsWith(' ') ? '' : ' ') + word;
  }
  lines.push(line);
  return lines.join('\n');
}

function rfc2822(epochSeconds) {
  const date = new Date(epochSeconds * 1000);
  const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][date.getUTCDay()];
  const month = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][
    date.getUTCMonth()
  ];
  const pad = (n) => String(n).padStart(2, '0');
  return `${day}, ${pad(date.getUTCDate())} ${month} ${date.getUTCFullYear()} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`;
}

function debianChangelog(markdown, version, maintainer, commitEpoch, commit) {
  const sections = parseChangelog(markdown);
  const own = sections.find((s) => s.version === version);
  const unreleased = sections.find((s) => s.version === 'Unreleased');
  const top = own ?? unreleased;
  if (!top) throw new Error(`CHANGELOG.md has neither a [${version}] nor an [Unreleased] section`);
  if (top.items.length === 0)
    throw new Error(`CHANGELOG.md says nothing under [${top.version}]: write what changed in ${version}`);
  const entries = [{ version, epoch: commitEpoch, items: [...top.items, `Built from commit ${commit}.`] }];
  for (const section of sections) {
    if (section === top || section.version === 'Unreleased' || section.version === version) continue;
    if (!section.date)
      throw new Error(`CHANGELOG.md: release [${section.version}] has no date (## [x.y.z] - YYYY-MM-DD)`);
    entries.push({
      version: section.version,
      epoch: Date.parse(`${section.date}T00:00:00Z`) / 1000,
      items: section.items,
    });
  }
  return entries
    .map(
      (e) =>
        `offloadd (${e.version}) unstable; urgency=medium\n\n${e.items.map(bullet).join('\n')}\n\n -- ${maintainer}  ${rfc2822(e.epoch)}\n`,
    )
    .join('\n');
}

if (require.main === module) {
  const [version, maintainer, epoch, commit] = process.argv.slice(2);
  if (!version || !maintainer || !/^\d+$/.test(epoch ?? '') || !commit) {
    process.stderr.write('usage: node scripts/debian-changelog.js VERSION MAINTAINER COMMIT_EPOCH COMMIT\n');
    process.exit(2);
  }
  try {
    process.stdout.write(
      debianChangelog(fs.readFileSync(CHANGELOG, 'utf8'), version, maintainer, Number(epoch), commit),
    );
  } catch (error) {
    process.stderr.write(`debian-changelog: ${error.message}\n`);
    process.exit(2);
  }
}

module.exports = { parseChangelog, debianChangelog };
