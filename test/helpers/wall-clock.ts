/**
 * A wall clock that a test can step under one process only: libfaketime preloaded, reading its
 * offset from a file at every call; the monotonic clock is left alone, as a real step (NTP, an
 * operator) leaves it. The host's clock is never touched.
 */
import * as fs from 'node:fs';

/** Debian's multi-threaded libfaketime (package faketime). */
export const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1';

/** The environment that makes a process read its wall clock as real time plus the offset in `offsetFile`. */
export function steppableWallClock(offsetFile: string): NodeJS.ProcessEnv {
  fs.writeFileSync(offsetFile, '+0\n');
  return {
    LD_PRELOAD: LIBFAKETIME,
    FAKETIME_TIMESTAMP_FILE: offsetFile,
    FAKETIME_NO_CACHE: '1',
    FAKETIME_DONT_FAKE_MONOTONIC: '1',
  };
}

/** Steps that process's wall clock to real time plus `offsetSec` (negative: back). */
export function stepWallClock(offsetFile: string, offsetSec: number): void {
  fs.writeFileSync(offsetFile, `${offsetSec >= 0 ? '+' : ''}${offsetSec}\n`);
}
