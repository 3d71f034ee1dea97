#!/usr/bin/env bash
# Runs a command with the pinned Node runtime (.node-version; scripts/node-runtime.sh fetches and
# caches it) first on PATH, so that `node` and every tool started through `#!/usr/bin/env node`
# (tsc, mocha, eslint, a nested npm) is the pinned one, whatever node npm or the shell found
# first: npm runs a script with the PATH it was given, so a host's old node would otherwise run
# the suite. The npm scripts in package.json start each command with it:
#   scripts/pinned-node.sh COMMAND [ARG...]
set -euo pipefail
runtime="$("$(dirname "$0")/node-runtime.sh")"
export PATH="$runtime/bin:$PATH"
exec "$@"
