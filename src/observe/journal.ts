/**
 * The journal sink: journald's native protocol (structured fields kept) over its datagram socket,
 * chosen when running under systemd with stderr connected to the journal, or in a container that
 * has the host's journal socket mounted, or asked for (see chooseLogSink in log.ts).
 */
import * as fs from 'node:fs';
import type winston from 'winston';
import Transport from 'winston-transport';
import { addon } from '../addon/binding';
import { writeStderr } from './console';
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

export class JournalTransport extends Transport {
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
