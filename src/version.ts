/** Embedded at build time (scripts/build-info.js), so there is one place to bump the version. */
import { COMMIT, VERSION } from './generated/build-info';

export { COMMIT, VERSION };

/** What `--version` prints: the release and the commit it was built from, e.g. "offloadd 0.4.0 (commit 1a2b3c4d5e6f)". */
export function versionLine(program: string): string {
  return `${program} ${VERSION} (commit ${COMMIT === 'unknown' ? COMMIT : COMMIT.slice(0, 12)})`;
}
