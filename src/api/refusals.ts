/**
 * Refused clients, for the API and the metrics listener alike.
 *
 * Logged as a count per interval: the first refusal of a kind at once, the rest summed up when
 * the interval ends. A client storm costs at most one line per kind and interval, so journald's
 * rate limit never drops the daemon's drift and crit lines.
 *
 * Closed for real: the refusal is written, our side shut down, what the client still sends
 * read and dropped (a client whose write failed with EPIPE would never read the refusal), and
 * the socket destroyed when the client closes or after a short linger, whichever comes first.
 * Only so many refused sockets linger at once; beyond that they are destroyed at once.
 */
import type * as net from 'node:net';
import type { Log } from '../observe/log';
import { MAX_LINGERING_REFUSALS, REFUSAL_LINGER_MS, REFUSAL_LOG_INTERVAL_MS } from './limits';

interface Kind {
  /** Refusals since the last line logged. */
  unlogged: number;
  message: string;
  timer: NodeJS.Timeout | null;
}

export class Refusals {
  private readonly kinds = new Map<string, Kind>();
  private readonly lingering = new Set<net.Socket>();

  constructor(
    private readonly log: Log,
    private readonly prefix: string,
    private readonly intervalMs = REFUSAL_LOG_INTERVAL_MS,
  ) {}

  /** One refusal of `kind`, described by `message` (the latest description is the one logged). */
  note(kind: string, message: string): void {
    const known = this.kinds.get(kind);
    if (known !== undefined) {
      known.unlogged++;
      known.message = message;
      return;
    }
    this.log.log('warning', `${this.prefix}${message}`);
    const entry: Kind = { unlogged: 0, message, timer: null };
    this.kinds.set(kind, entry);
    entry.timer = setTimeout(() => this.endInterval(kind), this.intervalMs);
    entry.timer.unref();
  }

  /** Answers a refused client with `answer` and closes its connection (see the header). */
  closeRefused(socket: net.Socket, answer: string): void {
    socket.on('error', () => socket.destroy()); // the refused client may be gone already
    if (this.lingering.size >= MAX_LINGERING_REFUSALS) {
      socket.write(answer, () => socket.destroy());
      return;
    }
    this.lingering.add(socket);
    socket.on('close', () => this.lingering.delete(socket));
    socket.setTimeout(0);
    socket.end(answer);
    socket.resume(); // read and drop: the client's 'end' lets the socket close by itself
    setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref();
  }

  /** Stops the timers (counts not yet logged are logged now) and closes lingering sockets. */
  close(): void {
    for (const kind of [...this.kinds.keys()]) this.endInterval(kind, true);
    for (const socket of this.lingering) socket.destroy();
  }

  private endInterval(kind: string, closing = false): void {
    const entry = this.kinds.get(kind);
    if (entry === undefined) return;
    if (entry.timer !== null) clearTimeout(entry.timer);
    if (entry.unlogged === 0) {
      this.kinds.delete(kind);
      return;
    }
    const seconds = this.intervalMs / 1000;
    this.log.log('warning', `${this.prefix}${entry.message} (${entry.unlogged} more like it in the last ${seconds} s)`);
    entry.unlogged = 0;
    if (closing) {
      this.kinds.delete(kind);
      return;
    }
    // Still refusing: the next interval starts now and counts on.
    entry.timer = setTimeout(() => this.endInterval(kind), this.intervalMs);
    entry.timer.unref();
  }
}
