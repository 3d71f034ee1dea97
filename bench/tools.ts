/**
 * The C programs (floor.c, floor_nl.c, observer.c), compiled on the fly with `cc` into a temporary
 * directory, so the floor is always built for this machine and kernel headers.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT, run } from './system';

const SOURCES = ['floor', 'floor_nl', 'observer'] as const;
export type ToolName = (typeof SOURCES)[number];

export class CTools {
  private constructor(readonly dir: string) {}

  static build(): CTools {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-bench-tools-'));
    const sourceDir = path.join(REPO_ROOT, 'bench');
    for (const name of SOURCES) {
      try {
        run('cc', [
          '-O2',
          '-Wall',
          '-Wextra',
          '-pthread',
          '-o',
          path.join(dir, name),
          path.join(sourceDir, `${name}.c`),
        ]);
      } catch (error) {
        fs.rmSync(dir, { recursive: true, force: true });
        const stderr = (error as { stderr?: string }).stderr ?? String(error);
        throw new Error(`cannot compile bench/${name}.c with cc (install gcc or clang):\n${stderr}`);
      }
    }
    // Also when the run ends by a signal (process.exit skips the caller's finally).
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    return new CTools(dir);
  }

  path(name: ToolName): string {
    return path.join(this.dir, name);
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
