#!/usr/bin/env node
// Bundles offloadd and offloadctl (TypeScript sources and their runtime dependencies) into one
// JavaScript file each, for an installation whose files live in LIBDIR:
//   node scripts/bundle.js OUTDIR LIBDIR        e.g. OUTDIR /usr/lib/offloadd
// The version and the default policy are embedded (scripts/build-info.js); the policy's
// pristine copy is LIBDIR/default-policy.yaml. The addon is loaded from next to the bundle.
'use strict';
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
  }
}

main(process.argv.slice(2)).catch((error) => {
  process.stderr.write(`bundle: ${error.message}\n`);
  process.exit(1);
});
