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
    buffered += chunk;
    let completedLine = false;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      completedLine = true;
      if (line.length > maxLineBytes) return tooLong();
      if (line.trim() !== '' && handlers.onLine(line) === true) {
        stopped = true;
        return;
      }
    }
    if (buffered.length > maxLineBytes) return tooLong();
    if (buffered.length === 0) handlers.onPending?.(false);
    else if (completedLine || !continuing) handlers.onPending?.(true);
  });

  function tooLong(): void {
    stopped = true;
    buffered = '';
    handlers.onTooLong?.();
  }
}
