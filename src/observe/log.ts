/**
 * Logging through winston, with journald structured fields. Every call carries fields in
 * journald's naming (INTERFACE=, as systemd-networkd uses; MESSAGE_ID= per event kind;
 * OFFLOADD_* for the rest). Two sinks:
 *  - journal: journald's native protocol (structured fields kept), chosen when running under
 *    systemd with stderr connected to the journal, or in a container that has the host's journal
 *    socket mounted, or asked for (chooseLogSink);
 *  - console: readable lines on stderr, with `<N>` syslog prefixes when stderr is a journal
 *    stream (so priorities survive even without the native socket).
 */
import * as fs from 'node:fs';
import winston from 'winston';
import Transport from 'winston-transport';
import { addon } from '../addon/binding';
import { vendorDevice } from '../facts/pci';
import { escapeControl } from './escape';
import type { InterfaceFacts } from '../facts/types';
import { MessageId, type JournalMessage } from './message-ids';

export const LEVELS = ['emerg', 'alert', 'crit', 'error', 'warning', 'notice', 'info', 'debug'] as const;
export type Level = (typeof LEVELS)[number];
const PRIORITY: Record<Level, number> = {
  emerg: 0,
  alert: 1,
  crit: 2,
  error: 3,
  warning: 4,
  notice: 5,
  info: 6,
  debug: 7,
};

export type LogFields = Record<string, string | number | boolean | null | undefined>;
export type LogTarget = 'auto' | 'journal' | 'console';

export const JOURNAL_SOCKET = '/run/systemd/journal/socket';
const IDENTIFIER = 'offloadd';

/** journald's native protocol: KEY=value lines, or KEY\n<u64 LE length><bytes>\n for multi-line values. */
export function encodeJournalEntry(fields: LogFields): Buffer {
  // Single-line values (nearly all) are gathered in one string and encoded once: a Buffer per
  // field and a concat cost more than the rest of a log call (issue 13's start-up profile).
  let text = '';
  let multiLine: Buffer[] | null = null;
  for (const key in fields) {
    const value = fields[key];
    if (value === undefined || value === null) continue;
    const valueText = String(value);
    if (!valueText.includes('\n')) {
      text += `${key}=${valueText}\n`;
      continue;
    }
    const bytes = Buffer.from(valueText);
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(bytes.length));
    multiLine ??= [];
    multiLine.push(Buffer.from(`${key}\n`), length, bytes, NEWLINE);
  }
  const head = Buffer.from(text);
  return multiLine ? Buffer.concat([head, ...multiLine]) : head;
}

const NEWLINE = Buffer.from('\n');

/** The fields winston adds to an entry that are not journal fields (message and level have their own). */
const NOT_FIELDS = new Set(['level', 'message']);

class JournalTransport extends Transport {
  constructor(private readonly socketPath: string) {
    super();
  }

  override log(info: winston.Logform.TransformableInfo, next: () => void): void {
    const { level, message } = info;
    const entry: LogFields = {
      MESSAGE: String(message),
      PRIORITY: PRIORITY[level as Level] ?? 6,
      SYSLOG_IDENTIFIER: IDENTIFIER,
    };
    // for…in over the entry's own string keys (winston's are symbols): no rest/spread copies.
    const fields = info as unknown as LogFields;
    for (const key in fields) if (!NOT_FIELDS.has(key)) entry[key] = fields[key];
    const encoded = encodeJournalEntry(entry);
    try {
      // Large entries go as a sealed memfd, as libsystemd does: never silently dropped.
      addon.sendDatagram(this.socketPath, encoded, true);
    } catch (error) {
      writeStderr(`<3>offloadd: journal write failed (${(error as Error).message}): ${String(message)}\n`);
    }
    next();
  }
}

/** True when stderr is the journal stream systemd set up for us ($JOURNAL_STREAM = dev:ino). */
function stderrIsJournal(): boolean {
  const stream = process.env['JOURNAL_STREAM'];
  if (!stream) return false;
  try {
    const stat = fs.fstatSync(2);
    return stream === `${stat.dev}:${stat.ino}`;
  } catch {
    return false;
  }
}

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

function writeStderr(text: string): void {
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
class ConsoleTransport extends Transport {
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

export class Log {
  /** The least urgent priority logged (winston's level is fixed when the logger is made). */
  private readonly maxPriority: number;

  constructor(private readonly logger: winston.Logger) {
    this.maxPriority = PRIORITY[logger.level as Level] ?? PRIORITY.info;
  }

  log(level: Level, message: string, fields: LogFields = {}): void {
    if (this.isEnabled(level)) this.logger.log(entry(level, message, undefined, fields));
  }

  /** An event operators filter on: tagged with its MESSAGE_ID. */
  event(name: JournalMessage, level: Level, message: string, fields: LogFields = {}): void {
    if (this.isEnabled(level)) this.logger.log(entry(level, message, MessageId[name], fields));
  }

  /**
   * Decided here, before anything is built: winston decides only in each transport, after the
   * entry went through its streams, and its isLevelEnabled() allocates on every call.
   */
  isEnabled(level: Level): boolean {
    return PRIORITY[level] <= this.maxPriority;
  }

  close(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.logger.on('finish', () => resolve());
      this.logger.end();
      setTimeout(resolve, 200).unref();
    }).finally(flushStderr);
  }
}

/**
 * The entry as winston's one-argument `log(info)` takes it: its fast path, which skips the
 * three-argument form's search for %-tokens in the message and its Object.assign of the fields.
 */
function entry(level: Level, message: string, messageId: string | undefined, fields: LogFields): winston.LogEntry {
  const info: winston.LogEntry & LogFields = { level, message };
  if (messageId !== undefined) info['MESSAGE_ID'] = messageId;
  for (const key in fields) info[key] = fields[key];
  return info;
}

/** journald fields identifying an interface (systemd's log_link_* convention). */
export function linkFields(facts: Partial<InterfaceFacts>): LogFields {
  return {
    INTERFACE: facts.name,
    IFINDEX: facts.ifindex,
    OFFLOADD_DRIVER: facts.driver ?? undefined,
    OFFLOADD_PCI: facts.pci ? vendorDevice(facts.pci) : undefined,
  };
}

/**
 * Marks of a container, as systemd's detect_container() reads them: `$container` (set by
 * systemd-nspawn, podman, LXC, and by the offloadd image itself, as Fedora's base images do, so
 * that containerd and CRI-O, which set nothing, are covered too), podman's /run/.containerenv,
 * Docker's /.dockerenv, and /run/systemd/container (written by systemd inside nspawn).
 */
export const CONTAINER_MARK_FILES = ['/run/.containerenv', '/.dockerenv', '/run/systemd/container'] as const;

/** True when this process runs in a container (see CONTAINER_MARK_FILES). */
export function inContainer(env: NodeJS.ProcessEnv = process.env, exists = fs.existsSync): boolean {
  return Boolean(env['container']) || CONTAINER_MARK_FILES.some((file) => exists(file));
}

export type LogSink = 'journal' | 'console';

/**
 * Where `target` sends the log. `auto` means the journal when there is one to reach and it is
 * where the operator looks: under systemd with stderr connected to the journal, or in a container
 * with the host's journal socket mounted; otherwise stderr (a container runtime collects it). A
 * person at a terminal (`kubectl exec -it`, a shell on a host that is itself a container) reads
 * the terminal, so a terminal on stderr keeps the console even in a container.
 */
export function chooseLogSink(
  target: LogTarget,
  facts: { stderrIsJournal: boolean; stderrIsTerminal: boolean; inContainer: boolean; journalSocketExists: boolean },
): LogSink {
  if (target !== 'auto') return target;
  if (!facts.journalSocketExists) return 'console';
  if (facts.stderrIsJournal) return 'journal';
  return facts.inContainer && !facts.stderrIsTerminal ? 'journal' : 'console';
}

export function createLog(options: { level: Level; target: LogTarget; journalSocket?: string }): Log {
  const journalSocket = options.journalSocket ?? JOURNAL_SOCKET;
  const underJournal = stderrIsJournal();
  const sink = chooseLogSink(options.target, {
    stderrIsJournal: underJournal,
    stderrIsTerminal: process.stderr.isTTY,
    inContainer: inContainer(),
    journalSocketExists: fs.existsSync(journalSocket),
  });
  const transport = sink === 'journal' ? new JournalTransport(journalSocket) : new ConsoleTransport(underJournal);
  // No logger-level format: winston's default (json) would serialise every entry that no
  // transport here reads; each transport formats (or encodes) for itself.
  const passThrough = winston.format((info) => info)();
  return new Log(
    winston.createLogger({
      levels: winston.config.syslog.levels,
      level: options.level,
      format: passThrough,
      transports: [transport],
    }),
  );
}
