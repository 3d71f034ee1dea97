#!/usr/bin/env node
// Bundles offloadd and offloadctl (TypeScript sources and their runtime dependencies) into one
// JavaScript file each, for an installation whose files live in LIBDIR:
//   node scripts/bundle.js OUTDIR LIBDIR        e.g. OUTDIR /usr/lib/offloadd
// The version and the default policy are embedded (scripts/build-info.js); the policy's
// pristine copy is LIBDIR/default-policy.yaml. The addon is loaded from next to the bundle.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const esbuild = require('esbuild');
const { buildInfoSource } = require('./build-info');

const REPO = path.resolve(__dirname, '..');
const NODE_TARGET = 'node22'; // engines.node: the oldest runtime the bundle must run on

async function main([outdir, libdir]) {
  if (!outdir || !libdir || !path.isAbsolute(libdir)) {
    throw new Error('usage: node scripts/bundle.js OUTDIR LIBDIR (LIBDIR absolute, e.g. /usr/lib/offloadd)');
  }
  const buildInfo = {
    name: 'build-info',
    setup(build) {
      build.onResolve({ filter: /\/generated\/build-info$/ }, () => ({ path: 'build-info', namespace: 'build-info' }));
      build.onLoad({ filter: /.*/, namespace: 'build-info' }, () => ({
        contents: buildInfoSource(path.posix.join(libdir, 'default-policy.yaml')),
        loader: 'ts',
      }));
    },
  };
  for (const program of ['offloadd', 'offloadctl']) {
    const result = await esbuild.build({
      stdin: {
        contents: `require('./src/cli/${program}').main(process.argv.slice(2));`,
        resolveDir: REPO,
        sourcefile: `${program}-main.js`,
        loader: 'js',
      },
      bundle: true,
      platform: 'node',
      target: NODE_TARGET,
      format: 'cjs',
      outfile: path.join(outdir, `${program}.js`),
      plugins: [buildInfo],
      legalComments: 'eof',
      logLevel: 'warning',
      // The addon is a file found at run time (src/addon/binding.ts), not a module to bundle.
      logOverride: { 'unsupported-require-call': 'silent' },
    });
    if (result.errors.length > 0) process.exit(1);
    asciiOnly(path.join(outdir, `${program}.js`));
  }
}

// esbuild escapes non-ASCII characters in strings and identifiers (charset: ascii), but not in
// the comments it keeps. One such character anywhere makes V8 hold the whole ~1 MB source as a
// two-byte string for the process's life (the source stays for lazy compilation): ~1 MiB of RSS.
// Escaped in comments, where it changes nothing.
function asciiOnly(file) {
  const source = fs.readFileSync(file, 'utf8');
  const ascii = source.replace(/[^\x00-\x7f]/g, (char) => '\\u' + char.charCodeAt(0).toString(16).padStart(4, '0'));
  if (ascii !== source) fs.writeFileSync(file, ascii);
}

main(process.argv.slice(2)).catch((error) => {
  process.stderr.write(`bundle: ${error.message}\n`);
  process.exit(1);
});
