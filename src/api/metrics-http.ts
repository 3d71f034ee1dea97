/**
 * `--metrics-listen ADDR:PORT`: Prometheus scrapes `GET /metrics`. A scrape must never hold up
 * enforcement, so the answer is built synchronously from what the daemon already keeps (a few
 * hundred microseconds for 1,000 interfaces), and the server is bounded against its clients: a
 * few connections at once, a deadline for each request, small headers, no request bodies read.
 *
 * HTTP/1.1 is spoken by hand over `net` (which the daemon has loaded anyway for its API): one
 * route, GET and HEAD, no bodies, keep-alive as Prometheus uses it. Node's `http` module alone
 * costs about 3 MiB of resident memory once loaded, more than the whole 2 MiB metrics budget
 * (docs/METRICS.md).
 *
 * Each connection answers one request at a time: the next pipelined request is read only once
 * the previous answer is in the kernel's hands, so a client that pipelines without reading gets
 * one render, not thousands. A request must be complete within a deadline from accept (the
 * first) or from the previous answer (the next), however the bytes trickle; at the deadline,
 * and when a connection is refused, the socket is destroyed, so its slot and descriptor are
 * free at once.
 */
import * as net from 'node:net';
import { UsageError } from '../errors';
import type { Log } from '../observe/log';
import { EXPOSITION_CONTENT_TYPE } from '../observe/exposition';
import type { Exposition } from '../observe/metrics';
import {
  MAX_METRICS_CONNECTIONS,
  METRICS_KEEP_ALIVE_TIMEOUT_MS,
  METRICS_MAX_HEADER_BYTES,
  METRICS_REQUEST_TIMEOUT_MS,
} from './limits';
import { Refusals } from './refusals';

export { MAX_METRICS_CONNECTIONS, METRICS_REQUEST_TIMEOUT_MS } from './limits';
export const METRICS_PATH = '/metrics';

export interface ListenAddress {
  /** Undefined: every address (IPv6 and IPv4 where the host has them). */
  host: string | undefined;
  port: number;
}

const LISTEN_HINT = 'give ADDR:PORT with an IP address: 127.0.0.1:9747, [::1]:9747, 0.0.0.0:9747 or :9747 for all';

/** `127.0.0.1:9747`, `[::1]:9747`, `0.0.0.0:9747`, `:9747`; throws UsageError for anything else. */
export function parseListenAddress(text: string): ListenAddress {
  const match = /^(?:\[([^\]]*)\]|([^[\]:]*)):(\d{1,5})$/.exec(text);
  if (!match) throw new UsageError(`--metrics-listen: ${JSON.stringify(text)} is not ADDR:PORT`, { hint: LISTEN_HINT });
  const [, v6, v4, portText] = match;
  const port = Number(portText);
  if (port < 1 || port > 65535)
    throw new UsageError(`--metrics-listen: port ${portText ?? ''} is not from 1 to 65535`, { hint: LISTEN_HINT });
  if (v6 !== undefined) {
    if (!net.isIPv6(v6))
      throw new UsageError(`--metrics-listen: ${JSON.stringify(v6)} is not an IPv6 address`, { hint: LISTEN_HINT });
    return { host: v6, port };
  }
  if (v4 === '' || v4 === undefined) return { host: undefined, port };
  if (!net.isIPv4(v4))
    throw new UsageError(`--metrics-listen: ${JSON.stringify(v4)} is not an IPv4 address (names are not resolved)`, {
      hint: LISTEN_HINT,
    });
  return { host: v4, port };
}

export function formatListenAddress(address: ListenAddress): string {
  if (address.host === undefined) return `:${address.port}`;
  return net.isIPv6(address.host) ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** As net.Server's default. */
const LISTEN_BACKLOG = 511;

export class MetricsHttpServer {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private readonly refusals: Refusals;

  constructor(
    private readonly address: ListenAddress,
    private readonly render: () => Exposition,
    private readonly log: Log,
  ) {
    this.refusals = new Refusals(log, 'Metrics: ');
  }

  /**
   * Binds now, before the daemon changes anything: a port in use or an address this host does
   * not have is a UsageError (exit 2), not a daemon running without the metrics asked for.
   */
  listen(): Promise<void> {
    const server = net.createServer((socket) => this.accept(socket));
    const where = formatListenAddress(this.address);
    return new Promise((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => {
        reject(
          new UsageError(`--metrics-listen ${where}: cannot listen (${error.code ?? error.message})`, {
            hint:
              error.code === 'EADDRINUSE'
                ? 'another process listens on that port (ss -ltnp shows which); choose another port'
                : error.code === 'EADDRNOTAVAIL'
                  ? 'that address is not configured on this host (ip address shows them)'
                  : error.code === 'EAFNOSUPPORT' || error.code === 'EPERM' || error.code === 'EACCES'
                    ? 'IP sockets may be forbidden here: with systemd, add the metrics drop-in (RestrictAddressFamilies=)'
                    : undefined,
          }),
        );
      });
      server.once('listening', () => {
        server.removeAllListeners('error');
        server.on('error', (error) => this.log.log('warning', `Metrics: ${where}: ${error.message}`));
        this.server = server;
        this.log.log('info', `Metrics: serving http://${where}${METRICS_PATH}`);
        resolve();
      });
      // The public listen(), which loads node:cluster (about 1.3 MiB resident, docs/METRICS.md).
      server.listen({ host: this.address.host, port: this.address.port, ipv6Only: false, backlog: LISTEN_BACKLOG });
    });
  }

  close(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const socket of this.sockets) socket.destroy();
    this.refusals.close();
    if (!server) return Promise.resolve();
    return new Promise((resolve) => server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    socket.on('error', () => socket.destroy()); // a scraper that goes away mid-answer is routine
    if (this.sockets.size >= MAX_METRICS_CONNECTIONS) {
      this.refusals.note('slots', `refusing connections beyond ${MAX_METRICS_CONNECTIONS} at once`);
      this.refusals.closeRefused(socket, response(503, 'Too many connections\n', { close: true }));
      return;
    }
    this.sockets.add(socket);
    let pending = '';
    /** An answer is being written: the next request waits (in the kernel) until it is flushed. */
    let answering = false;
    let closing = false;
    let deadline: NodeJS.Timeout | null = null;
    /** The next request must be complete `ms` from now; bytes that trickle in do not extend it. */
    const armDeadline = (ms: number): void => {
      if (deadline !== null) clearTimeout(deadline);
      deadline = setTimeout(() => {
        deadline = null;
        // Nothing of a request yet (an idle keep-alive connection): just close.
        if (pending.length === 0) return socket.destroy();
        finish(response(408, 'Request timeout\n', { close: true }));
      }, ms);
    };
    /** Writes a last answer, then frees the slot for real (destroy, not a half-close). */
    const finish = (text: string | null): void => {
      closing = true;
      pending = '';
      socket.pause();
      if (deadline !== null) clearTimeout(deadline);
      deadline = null;
      if (text === null) socket.end(() => socket.destroy());
      else socket.end(text, () => socket.destroy());
      // A client that does not read its last answer does not keep the slot either.
      setTimeout(() => socket.destroy(), METRICS_REQUEST_TIMEOUT_MS).unref();
    };
    socket.on('close', () => {
      if (deadline !== null) clearTimeout(deadline);
      deadline = null;
      this.sockets.delete(socket);
    });
    armDeadline(METRICS_REQUEST_TIMEOUT_MS);
    const serveNext = (): void => {
      if (answering || closing || socket.destroyed) return;
      const end = headerEnd(pending);
      if (end === null || end.start > METRICS_MAX_HEADER_BYTES) {
        if (pending.length > METRICS_MAX_HEADER_BYTES)
          return finish(response(431, 'Request header too large\n', { close: true }));
        socket.resume();
        return;
      }
      const head = pending.slice(0, end.start);
      pending = pending.slice(end.after);
      // One request per cycle: read nothing more until this answer has been handed to the kernel.
      answering = true;
      socket.pause();
      const keepOpen = this.answer(socket, head, () => {
        answering = false;
        if (closing || socket.destroyed) return;
        armDeadline(METRICS_KEEP_ALIVE_TIMEOUT_MS);
        serveNext();
      });
      if (!keepOpen) finish(null);
    };
    socket.on('data', (chunk: Buffer) => {
      if (closing) return;
      // Request lines and headers are ASCII; latin1 maps every byte to one character.
      pending += chunk.toString('latin1');
      serveNext();
    });
  }

  /**
   * Answers one request; false when the connection is to be closed after it. `written` is called
   * once the answer is in the kernel's hands (or the socket failed).
   */
  private answer(socket: net.Socket, head: string, written: () => void): boolean {
    const lines = head.split(/\r?\n/);
    const requestLine = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/.exec(lines[0] ?? '');
    if (!requestLine) {
      socket.write(response(400, 'Bad request\n', { close: true }), written);
      return false;
    }
    const [, method, target, minor] = requestLine;
    let close = minor === '0';
    let hasBody = false;
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line
        .slice(colon + 1)
        .trim()
        .toLowerCase();
      if (name === 'connection') close = value.includes('close') || (minor === '0' && !value.includes('keep-alive'));
      if ((name === 'content-length' && value !== '0') || name === 'transfer-encoding') hasBody = true;
    }
    // No request here has a meaning with a body, and skipping one safely needs a full parser: answer, then close.
    close ||= hasBody;
    const path = (target ?? '').split('?', 1)[0];
    if (path !== METRICS_PATH) {
      socket.write(response(404, `Not found; try ${METRICS_PATH}\n`, { close }), written);
      return !close;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      socket.write(response(405, 'Use GET\n', { close, extra: 'Allow: GET, HEAD\r\n' }), written);
      return !close;
    }
    let body: Exposition;
    try {
      body = this.render();
    } catch (error) {
      this.log.log('error', `Metrics: could not build the exposition: ${(error as Error).stack ?? String(error)}`);
      socket.write(response(500, 'Internal error\n', { close: true }), written);
      return false;
    }
    const { parts } = body;
    let length = 0;
    for (const part of parts) length += typeof part === 'string' ? Buffer.byteLength(part) : part.length;
    socket.cork();
    const sent = method === 'GET' ? parts : [];
    // `written` goes with the last write: its callback runs once the kernel has every byte, or the write failed.
    socket.write(head200(length, close), sent.length === 0 ? written : undefined);
    sent.forEach((part, index) => socket.write(part, index === sent.length - 1 ? written : undefined));
    socket.uncork();
    return !close;
  }
}

/** Where a request's headers end (the blank line), or null while incomplete. */
function headerEnd(text: string): { start: number; after: number } | null {
  const crlf = text.indexOf('\r\n\r\n');
  const lf = text.indexOf('\n\n');
  if (crlf < 0 && lf < 0) return null;
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return { start: crlf, after: crlf + 4 };
  return { start: lf, after: lf + 2 };
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

function response(status: number, text: string, options: { close: boolean; extra?: string }): string {
  return (
    `HTTP/1.1 ${status} ${REASONS[status] ?? ''}\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\n` +
    (options.extra ?? '') +
    (options.close ? 'Connection: close\r\n' : '') +
    `\r\n${text}`
  );
}

function head200(length: number, close: boolean): string {
  return (
    `HTTP/1.1 200 OK\r\nContent-Type: ${EXPOSITION_CONTENT_TYPE}\r\nContent-Length: ${length}\r\n` +
    `Cache-Control: no-store\r\n${close ? 'Connection: close\r\n' : ''}\r\n`
  );
}
