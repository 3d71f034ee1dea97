/** Newline-delimited JSON framing on a stream socket, shared by the API server and client. */
import type * as net from 'node:net';

export interface LineHandlers {
  /** A complete non-blank line; return true to stop reading. */
  onLine(line: string): boolean | void;
  /** A line (or unterminated data) longer than `maxLineBytes`: reading stops. */
  onTooLong?(): void;
}

export function readLines(socket: net.Socket, handlers: LineHandlers, maxLineBytes = Infinity): void {
  let buffered = '';
  let stopped = false;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    if (stopped) return;
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line.length > maxLineBytes) return tooLong();
      if (line.trim() !== '' && handlers.onLine(line) === true) {
        stopped = true;
        return;
      }
    }
    if (buffered.length > maxLineBytes) tooLong();
  });

  function tooLong(): void {
    stopped = true;
    buffered = '';
    handlers.onTooLong?.();
  }
}
