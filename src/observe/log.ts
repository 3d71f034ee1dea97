/**
 * Logging through winston, with journald structured fields. Every call carries fields in
 * journald's naming (INTERFACE=, as systemd-networkd uses; MESSAGE_ID= per event kind;
 * OFFLOADD_* for the rest). Two sinks, each in its own file: journal.ts (journald's native
 * protocol) and console.ts (lines on stderr); this file chooses between them and is the Log the
 * daemon writes to.
 */
import * as fs from 'node:fs';
import winston from 'winston';
import { vendorDevice } from '../facts/pci';
import type { InterfaceFacts } from '../facts/types';
import { ConsoleTransport, flushStderr } from './console';
import { JOURNAL_SOCKET, JournalTransport, stderrIsJournal } from './journal';
import { PRIORITY, type Level, type LogFields } from './levels';
import { MessageId, type JournalMessage } from './message-ids';

export { flushStderr } from './console';
export { LEVELS, type Level, type LogFields } from './levels';

export type LogTarget = 'auto' | 'journal' | 'console';

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
   * A line about one interface, as systemd's log_link_*() write it: prefixed with its name and
   * carrying its fields (linkFields) by construction, plus any `fields` of the caller's.
   */
  link(level: Level, facts: Partial<InterfaceFacts>, message: string, fields?: LogFields): void {
    if (this.isEnabled(level))
      this.logger.log(entry(level, `${facts.name ?? '?'}: ${message}`, undefined, withLink(facts, fields)));
  }

  /** As link(), for an event operators filter on (tagged with its MESSAGE_ID). */
  linkEvent(
    name: JournalMessage,
    level: Level,
    facts: Partial<InterfaceFacts>,
    message: string,
    fields?: LogFields,
  ): void {
    if (this.isEnabled(level))
      this.logger.log(entry(level, `${facts.name ?? '?'}: ${message}`, MessageId[name], withLink(facts, fields)));
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
 * Fields without a value are left out (neither sink writes them; a record's description has
 * several): each one copied would grow the entry's property storage again.
 */
function entry(level: Level, message: string, messageId: string | undefined, fields: LogFields): winston.LogEntry {
  const info: winston.LogEntry & LogFields = { level, message };
  if (messageId !== undefined) info['MESSAGE_ID'] = messageId;
  for (const key in fields) {
    const value = fields[key];
    if (value !== undefined) info[key] = value;
  }
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

function withLink(facts: Partial<InterfaceFacts>, fields: LogFields | undefined): LogFields {
  const all = linkFields(facts);
  for (const key in fields) all[key] = fields[key];
  return all;
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
