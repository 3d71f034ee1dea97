'use strict';
// The test runner refuses an unsupported Node before loading any test (bin/node-version.js).
require('./bin/node-version.js').requireSupportedNode('mocha', process.version);

// Test files named on the command line replace the default spec instead of adding to it, so
// `npm test -- dist/test/unit/escape.test.js` runs that file alone (mocha merges them otherwise).
const namedFiles = process.argv.slice(2).some((argument) => /\.test\.js$/.test(argument));

module.exports = {
  spec: namedFiles ? [] : ['dist/test/**/*.test.js'],
  ignore: ['dist/test/packages/**'],
  timeout: 60000,
  slow: 5000,
  exit: true,
};
