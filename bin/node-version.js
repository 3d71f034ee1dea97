'use strict';
// Required first by bin/offloadd, bin/offloadctl and the test runner (.mocharc.js): on a Node
// older than offloadd supports, stop at once with both versions named, instead of failing later
// in some less telling way. Plain ES5, so that even an old runtime gets as far as the message.
// MINIMUM_NODE_MAJOR is package.json's "engines" (test/unit/node-version.test.ts keeps them equal).
var MINIMUM_NODE_MAJOR = 22;
/** Exit status of a refusal that no restart can fix (the unit's RestartPreventExitStatus=). */
var EXIT_UNSUPPORTED_RUNTIME = 2;

function pinnedVersion() {
  try {
    return require('fs')
      .readFileSync(require('path').join(__dirname, '..', '.node-version'), 'utf8')
      .trim();
  } catch (error) {
    return null; // an installed tree has no .node-version
  }
}

function requireSupportedNode(program, version) {
  var match = /^v?(\d+)\./.exec(version);
  var major = match ? Number(match[1]) : NaN;
  if (major >= MINIMUM_NODE_MAJOR) return;
  var pinned = pinnedVersion();
  process.stderr.write(
    program +
      ': Node ' +
      version +
      ' (' +
      process.execPath +
      ') is not supported: offloadd needs Node >= ' +
      MINIMUM_NODE_MAJOR +
      (pinned ? ' (the pinned runtime is ' + pinned + ')' : '') +
      '.\n' +
      (pinned
        ? '  In a checkout: scripts/setup.sh installs the pinned runtime, and npm start / npm test use it.\n'
        : '') +
      '  Otherwise run it with a supported node: /path/to/node ' +
      (process.argv[1] || program) +
      ' ...\n',
  );
  process.exit(EXIT_UNSUPPORTED_RUNTIME);
}

module.exports = { MINIMUM_NODE_MAJOR: MINIMUM_NODE_MAJOR, requireSupportedNode: requireSupportedNode };
