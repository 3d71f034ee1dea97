/** Processes as /proc shows them, and waiting without an event loop (exit handlers). */
import * as fs from 'node:fs';

/** Blocks the thread (for cleanup in process 'exit' handlers, where nothing async runs). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Exited, but not yet reaped by its parent. */
export function isZombie(pid: number): boolean {
  try {
    return /^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * A process among the descendants of `ancestor`, at most `depth` levels down: named `match`, or
 * whose /proc/PID/status text `match` accepts.
 */
export function findDescendant(
  ancestor: number,
  match: string | ((status: string) => boolean),
  depth: number,
): number | null {
  const children = new Map<number, number[]>();
  const statuses = new Map<number, string>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = fs.readFileSync(`/proc/${entry}/status`, 'utf8');
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]);
      statuses.set(Number(entry), status);
      const siblings = children.get(ppid) ?? [];
      siblings.push(Number(entry));
      children.set(ppid, siblings);
    } catch {
      // exited meanwhile
    }
  }
  const accepts =
    typeof match === 'string' ? (status: string): boolean => /^Name:\s+(.*)$/m.exec(status)?.[1] === match : match;
  let level = [ancestor];
  for (let i = 0; i < depth; i++) {
    const next = level.flatMap((pid) => children.get(pid) ?? []);
    const found = next.find((pid) => accepts(statuses.get(pid) ?? ''));
    if (found) return found;
    level = next;
  }
  return null;
}

/** /proc/PID/status text of a process that is PID 1 of a PID namespace below the host's. */
export function isNamespaceInit(status: string): boolean {
  return /^NSpid:\s+\d+(\s+\d+)*\s+1$/m.test(status);
}
