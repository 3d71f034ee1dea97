/** Newline-delimited JSON framing on a stream socket, shared by the API server and client. */
import type * as net from 'node:net';

export interface LineHandlers {
  /** A complete non-blank line; return true to stop reading. */
  onLine(line: string): boolean | void;
  /** A line (or unterminated data) longer than `maxLineBytes`: reading stops. */
  onTooLong?(): void;
  /**
   * After each chunk: `true` when a new line has begun (bytes without their newline yet),
   * `false` when no line is pending. A line still pending from an earlier chunk reports nothing,
   * so a deadline started on `true` runs from the line's first byte.
   */
  onPending?(newLineBegun: boolean): void;
}

export function readLines(socket: net.Socket, handlers: LineHandlers, maxLineBytes = Infinity): void {
  let buffered = '';
  let stopped = false;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    if (stopped) return;
    const continuing = buffered.length > 0;
    // Only the new chunk is searched for a newline: a line of tens of MB (a deep drift.list)
    // arriving in 64 KiB chunks is read in linear time.
    let newline = chunk.indexOf('\n');
    if (newline < 0) {
      buffered += chunk;
      if (buffered.length > maxLineBytes) return tooLong();
      if (!continuing) handlers.onPending?.(true);
      return;
    }
    let rest = buffered + chunk;
    newline += buffered.length;
    buffered = '';
    while (newline >= 0) {
      const line = rest.slice(0, newline);
      rest = rest.slice(newline + 1);
      if (line.length > maxLineBytes) return tooLong();
      if (line.trim() !== '' && handlers.onLine(line) === true) {
        stopped = true;
        return;
      }
      newline = rest.indexOf('\n');
    }
    buffered = rest;
    if (buffered.length > maxLineBytes) return tooLong();
    handlers.onPending?.(buffered.length > 0);
  });

  function tooLong(): void {
    stopped = true;
    buffered = '';
    handlers.onTooLong?.();
  }
}
