/**
 * The journal sink: journald's native protocol (structured fields kept) over its datagram socket,
 * chosen when running under systemd with stderr connected to the journal, or in a container that
 * has the host's journal socket mounted, or asked for (see chooseLogSink in log.ts).
 */
import * as fs from 'node:fs';
import type winston from 'winston';
import Transport from 'winston-transport';
import { addon } from '../addon/binding';
import { flushStderr, writeStderr } from './console';
import { PRIORITY, type Level, type LogFields } from './levels';

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

/**
 * Entries queued for the journal before they go in one sendmmsg: at most this many (the addon's
 * per-call count, UIO_MAXIOV), so a long synchronous loop neither holds its whole log in memory
 * nor needs a second system call for one batch.
 */
const JOURNAL_BATCH_ENTRIES = 1024;

/**
 * Transports that have logged and are not closed: what they hold queued is sent synchronously
 * when the process exits. Joined once per transport, not per batch (a Set add and delete per
 * entry were a measurable share of a lone entry's cost).
 */
const openTransports = new Set<JournalTransport>();
let flushOnExitRegistered = false;

function flushAllOnExit(): void {
  for (const transport of openTransports) transport.flush();
  // The stderr lines of entries the journal refused just now: console.ts's own exit flush may
  // already have run.
  flushStderr();
}

/** The end of the current synchronous stretch: a reaction on it runs as a microtask (queueMicrotask allocates an AsyncResource per call). */
const RESOLVED = Promise.resolve();

/**
 * Entries logged within one synchronous stretch of work (a start-up pass, a hot-plug burst) are
 * queued and sent at its end, in order, with one sendmmsg: a system call per entry was most of
 * what an entry cost. Queued entries are sent before the process exits and when the transport
 * closes (the logger ends). An entry the journal did not take goes to stderr, as before.
 */
export class JournalTransport extends Transport {
  private readonly queuedEntries: Buffer[] = [];
  /** Each queued entry's MESSAGE, for the stderr line should the journal not take it. */
  private readonly queuedMessages: string[] = [];
  private readonly flushBound = (): void => this.flush();
  private flushedAtExit = false;

  constructor(private readonly socketPath: string) {
    super();
  }

  override log(info: winston.Logform.TransformableInfo, next: () => void): void {
    const { level } = info;
    const message = String(info.message);
    const entry: LogFields = {
      MESSAGE: message,
      PRIORITY: PRIORITY[level as Level] ?? 6,
      SYSLOG_IDENTIFIER: IDENTIFIER,
    };
    // for…in over the entry's own string keys (winston's are symbols): no rest/spread copies.
    const fields = info as unknown as LogFields;
    for (const key in fields) if (!NOT_FIELDS.has(key)) entry[key] = fields[key];
    const queued = this.queuedEntries.push(encodeJournalEntry(entry));
    this.queuedMessages.push(message);
    if (queued === 1) {
      void RESOLVED.then(this.flushBound);
      if (!this.flushedAtExit) this.flushAtExit();
    } else if (queued >= JOURNAL_BATCH_ENTRIES) {
      this.flush();
    }
    next();
  }

  /** Sends every queued entry now, in order (synchronous). */
  flush(): void {
    const entries = this.queuedEntries;
    if (entries.length === 0) return;
    const messages = this.queuedMessages;
    if (entries.length === 1) {
      // A lone entry (most outside a burst) goes as before batching. pop(), not length = 0:
      // that would free the arrays' storage, to be allocated again by the next entry.
      this.sendOne(entries.pop()!, messages.pop()!);
      return;
    }
    try {
      let first = 0;
      try {
        const { sent, error } = addon.sendDatagrams(this.socketPath, entries, true);
        if (!error) return;
        first = sent;
      } catch {
        // The addon could not be asked at all (ERR_ADDON): each entry below says so on stderr.
      }
      // The rest of the batch from the one that failed: each on its own, as before batching, so
      // every entry is either delivered or on stderr with its own reason.
      for (let index = first; index < entries.length; index++) this.sendOne(entries[index]!, messages[index]!);
    } finally {
      // Emptied whatever happened: an entry is tried once, never sent twice.
      entries.length = 0;
      messages.length = 0;
    }
  }

  private sendOne(encoded: Buffer, message: string): void {
    try {
      // Large entries go as a sealed memfd, as libsystemd does: never silently dropped.
      addon.sendDatagram(this.socketPath, encoded, true);
    } catch (error) {
      writeStderr(`<3>offloadd: journal write failed (${(error as Error).message}): ${message}\n`);
    }
  }

  private flushAtExit(): void {
    this.flushedAtExit = true;
    openTransports.add(this);
    if (!flushOnExitRegistered) {
      flushOnExitRegistered = true;
      process.on('exit', flushAllOnExit);
    }
  }

  /** The logger ended (winston calls this when it unpipes the transport): nothing stays queued. */
  override close(): void {
    this.flush();
    openTransports.delete(this);
    this.flushedAtExit = false;
  }
}

/** True when stderr is the journal stream systemd set up for us ($JOURNAL_STREAM = dev:ino). */
export function stderrIsJournal(): boolean {
  const stream = process.env['JOURNAL_STREAM'];
  if (!stream) return false;
  try {
    const stat = fs.fstatSync(2);
    return stream === `${stat.dev}:${stat.ino}`;
  } catch {
    return false;
  }
}
