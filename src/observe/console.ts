/**
 * The console sink: readable lines on stderr, with `<N>` syslog prefixes when stderr is a journal
 * stream (so priorities survive even without the native socket).
 */
import type winston from 'winston';
import Transport from 'winston-transport';
import { escapeControl } from './escape';
import { PRIORITY, type Level } from './levels';

/**
 * Lines for stderr, gathered through the current synchronous stretch of work and written with
 * one write: a start-up logs a line per corrected interface, and a write system call per line
 * was most of what logging cost. Bounded (STDERR_BATCH_BYTES), written before the process exits,
 * and flushStderr() lets whoever writes to stderr directly keep the order.
 */
const STDERR_BATCH_BYTES = 64 * 1024;
let stderrPending = '';
let stderrFlushQueued = false;
let stderrFlushOnExit = false;

export function flushStderr(): void {
  stderrFlushQueued = false;
  if (stderrPending === '') return;
  const text = stderrPending;
  stderrPending = '';
  process.stderr.write(text);
}

export function writeStderr(text: string): void {
  stderrPending += text;
  if (stderrPending.length >= STDERR_BATCH_BYTES) {
    flushStderr();
    return;
  }
  if (!stderrFlushQueued) {
    stderrFlushQueued = true;
    queueMicrotask(flushStderr);
  }
  if (!stderrFlushOnExit) {
    stderrFlushOnExit = true;
    process.on('exit', flushStderr);
  }
}

/**
 * Readable lines on stderr. A transport of its own rather than winston's Stream transport with a
 * printf format: that one copies every entry for the format and schedules a setImmediate per
 * line (to emit 'logged', which nothing here listens to), together more than writing the line.
 */
export class ConsoleTransport extends Transport {
  constructor(private readonly prefixPriority: boolean) {
    super();
  }

  override log(info: winston.Logform.TransformableInfo, next: () => void): void {
    const level = info.level as Level;
    const text = escapeControl(String(info.message), { keepLineBreaks: true });
    writeStderr(this.prefixPriority ? `<${PRIORITY[level] ?? 6}>${text}\n` : `${level}: ${text}\n`);
    next();
  }
}
