/**
 * One API client connection: request lines in, answers out, each side bounded.
 *
 * In: a line at most `maxRequestBytes`, complete within `requestLineDeadlineMs` of its first
 * byte (the first line: of accept); requests are handed over one at a time (an async answer is
 * awaited before the next), at most `maxRequestsPerRead` before other work gets a turn, and the
 * socket is not read while complete lines wait, so what a client pipelines stays in the kernel.
 *
 * Out: answers are serialised in pieces only while the client's unread output is below
 * `maxUnreadOutputBytes`; above it, nothing more is produced and no request is read until the
 * client catches up. A client that half-closes after sending (`echo … | socat`) still gets every
 * answer, then the connection is closed.
 */
import type * as net from 'node:net';
import type { PeerCredentials } from '../addon/binding';
import { jsonLinePieces } from './jsonrpc';
import type { ApiLimits } from './limits';

export interface Caller extends PeerCredentials {
  admin: boolean;
}

export interface ConnectionHandlers {
  /** One request line; the next is not handed over before the returned promise settles. */
  onRequest(connection: Connection, line: string): void | Promise<void>;
  /** A request line longer than the limit: reading has stopped. */
  onTooLong(connection: Connection): void;
  /** A request line not complete by its deadline: reading has stopped. */
  onLineDeadline(connection: Connection): void;
  /** No request, answer or watch for `idleTimeoutMs`. */
  onIdle(connection: Connection): void;
}

type Limits = Pick<
  ApiLimits,
  'maxRequestBytes' | 'requestLineDeadlineMs' | 'idleTimeoutMs' | 'maxUnreadOutputBytes' | 'maxRequestsPerRead'
>;

/** Pieces of output are joined into writes of about this size. */
const WRITE_BATCH_BYTES = 64 * 1024;

interface Outgoing {
  pieces: Iterator<string, void>;
  /** Bytes of a message serialised in advance (watch events), 0 for one streamed in pieces. */
  bytes: number;
}

export class Connection {
  watching = false;
  private readonly outbox: Outgoing[] = [];
  /** Bytes of the outbox's messages serialised in advance. */
  private queuedBytes = 0;
  private waitingForDrain = false;
  /** Received and not yet handed over: complete lines, then at most one partial line. */
  private input = '';
  private inputEnded = false;
  private reading = true;
  /** A request is being answered (an async handler has not settled). */
  private busy = false;
  private processScheduled = false;
  private stopped = false;
  private lineTimer: NodeJS.Timeout | null = null;
  /** Waiting for every queued message to be handed to the socket. */
  private readonly outboxWaiters: Array<() => void> = [];

  constructor(
    readonly socket: net.Socket,
    readonly caller: Caller,
    private readonly limits: Limits,
    private readonly handlers: ConnectionHandlers,
  ) {
    socket.setEncoding('utf8');
    // The first request line's deadline runs from accept: a connection that sends nothing, or a
    // byte at a time, cannot hold a slot past it.
    this.startLineDeadline();
    socket.on('data', (chunk: string) => this.received(chunk));
    socket.on('end', () => {
      this.inputEnded = true;
      this.process();
    });
    socket.on('close', () => {
      this.stopReading();
      this.outbox.length = 0;
      this.queuedBytes = 0;
      this.outboxEmptied();
    });
    socket.setTimeout(limits.idleTimeoutMs, () => {
      if (this.watching || this.busy) return;
      this.handlers.onIdle(this);
    });
  }

  /** Output the client has not read yet, as far as it is known in bytes. */
  get unreadOutputBytes(): number {
    return this.socket.writableLength + this.queuedBytes;
  }

  /** Whether output waits for the client (answers unsent or unread). */
  get outputPending(): boolean {
    return this.outbox.length > 0 || this.socket.writableLength > 0;
  }

  /** Sends one message as a JSON line, produced as fast as the client reads it. */
  send(message: object): void {
    if (this.socket.destroyed) return;
    this.outbox.push({ pieces: jsonLinePieces(message), bytes: 0 });
    this.flush();
  }

  /** Sends a small message serialised now, so its size counts in unreadOutputBytes (watch events). */
  sendSerialized(message: object): void {
    if (this.socket.destroyed) return;
    const text = `${JSON.stringify(message)}\n`;
    this.outbox.push({ pieces: [text][Symbol.iterator](), bytes: text.length });
    this.queuedBytes += text.length;
    this.flush();
  }

  /**
   * Resolves once every message queued so far has been handed to the socket (at most the
   * unread-output limit is left in its buffer), or the connection closed.
   */
  outboxDrained(): Promise<void> {
    if (this.outbox.length === 0 || this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.outboxWaiters.push(resolve));
  }

  /** Reads nothing more; what was received and not handled is dropped. */
  stopReading(): void {
    this.stopped = true;
    this.input = '';
    this.stopLineDeadline();
    this.socket.pause();
  }

  private received(chunk: string): void {
    if (this.stopped) return;
    const continuing = this.input.length > 0;
    this.input += chunk;
    if (this.input.includes('\n')) this.stopLineDeadline();
    else if (!continuing && this.lineTimer === null) this.startLineDeadline();
    this.process();
  }

  /** Hands over complete lines while the output is below its limit, a bounded number per turn. */
  private process(): void {
    let handled = 0;
    while (!this.stopped && !this.busy) {
      if (this.outbox.length > 0) {
        this.pauseReading(); // resumed once flush() has emptied the outbox
        return;
      }
      if (this.socket.writableLength >= this.limits.maxUnreadOutputBytes) {
        this.pauseReading();
        this.waitForDrain(); // then flush() finds the outbox empty and processes again
        return;
      }
      const newline = this.input.indexOf('\n');
      if (newline < 0) break;
      if (handled >= this.limits.maxRequestsPerRead) {
        this.pauseReading();
        this.scheduleProcess();
        return;
      }
      const line = this.input.slice(0, newline);
      this.input = this.input.slice(newline + 1);
      if (line.length > this.limits.maxRequestBytes) return this.tooLong();
      if (line.trim() === '') continue;
      handled++;
      const answered = this.handlers.onRequest(this, line);
      if (answered instanceof Promise) {
        this.busy = true;
        void answered.finally(() => {
          this.busy = false;
          this.scheduleProcess();
        });
      }
    }
    if (this.stopped || this.busy) {
      if (this.busy) this.pauseReading();
      return;
    }
    // No complete line left.
    if (this.input.length > this.limits.maxRequestBytes) return this.tooLong();
    if (this.inputEnded) {
      // The client sent all it will: a last line without its newline is a request too.
      if (this.input.trim() !== '') {
        this.input += '\n';
        return this.process();
      }
      this.stopLineDeadline();
      // end() sends what is buffered first; the connection closes once both sides have ended.
      if (!this.watching) this.socket.end();
      return;
    }
    if (this.input.length > 0 && this.lineTimer === null) this.startLineDeadline();
    this.resumeReading();
  }

  private scheduleProcess(): void {
    if (this.processScheduled) return;
    this.processScheduled = true;
    setImmediate(() => {
      this.processScheduled = false;
      this.process();
    });
  }

  /**
   * Writes pieces while the client's unread output is below the limit, then waits for 'drain'.
   * Pieces are joined into writes of up to WRITE_BATCH_BYTES: a small answer leaves in one write.
   */
  private flush(): void {
    let batch = '';
    while (this.outbox.length > 0 && !this.socket.destroyed) {
      if (this.socket.writableLength + batch.length >= this.limits.maxUnreadOutputBytes) break;
      const head = this.outbox[0] as Outgoing;
      const next = head.pieces.next();
      if (next.done === true) {
        this.outbox.shift();
        this.queuedBytes -= head.bytes;
        continue;
      }
      batch += next.value;
      if (batch.length >= WRITE_BATCH_BYTES) {
        this.socket.write(batch);
        batch = '';
      }
    }
    if (batch.length > 0 && !this.socket.destroyed) this.socket.write(batch);
    if (this.outbox.length > 0) {
      if (!this.socket.destroyed) this.waitForDrain();
      return;
    }
    this.outboxEmptied();
    this.scheduleProcess();
  }

  private outboxEmptied(): void {
    for (const resolve of this.outboxWaiters.splice(0)) resolve();
  }

  /** Above the limit, a write has returned false: 'drain' comes once the client has read it all. */
  private waitForDrain(): void {
    if (this.waitingForDrain) return;
    this.waitingForDrain = true;
    this.socket.once('drain', () => {
      this.waitingForDrain = false;
      this.flush();
    });
  }

  private pauseReading(): void {
    if (!this.reading) return;
    this.reading = false;
    this.socket.pause();
  }

  private resumeReading(): void {
    if (this.reading || this.stopped) return;
    this.reading = true;
    this.socket.resume();
  }

  private tooLong(): void {
    this.stopReading();
    this.handlers.onTooLong(this);
  }

  private startLineDeadline(): void {
    this.stopLineDeadline();
    this.lineTimer = setTimeout(() => {
      this.lineTimer = null;
      this.stopReading();
      this.handlers.onLineDeadline(this);
    }, this.limits.requestLineDeadlineMs);
  }

  private stopLineDeadline(): void {
    if (this.lineTimer !== null) clearTimeout(this.lineTimer);
    this.lineTimer = null;
  }
}
