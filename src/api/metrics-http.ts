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
 */
import * as net from 'node:net';
import { UsageError } from '../errors';
import type { Log } from '../observe/log';
import { EXPOSITION_CONTENT_TYPE, type Exposition } from '../observe/metrics';

/** Prometheus scrapes with one connection per target; a few more leave room for curl and a second server. */
export const MAX_METRICS_CONNECTIONS = 8;
/** From the first byte of a request to its last header, and for the whole request. */
export const METRICS_REQUEST_TIMEOUT_MS = 5000;
/** Prometheus keeps its connection open between scrapes (15 s by default); an idle one is closed after this. */
const KEEP_ALIVE_TIMEOUT_MS = 30_000;
/** Request line and headers; Prometheus sends about 300 bytes. */
const MAX_HEADER_BYTES = 8 * 1024;
/** A client that does not read its answers is cut off once this much waits for it. */
const MAX_UNSENT_BYTES = 4 * 1024 * 1024;
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

/** Node's legacy name for the step of listen() that binds; present from Node 0.x to 24. */
interface LegacyListen {
  _listen2?: (
    address: string | null,
    port: number,
    addressType: 4 | 6,
    backlog: number,
    fd?: number,
    flags?: number,
  ) => void;
}

/** As net.Server's default. */
const LISTEN_BACKLOG = 511;

/**
 * server.listen() always loads Node's `cluster` module (to ask whether this is a worker), and
 * with it child_process, dgram and dns: 1.3 MiB of resident memory measured, most of the metrics
 * budget, for a daemon that is never a cluster worker. `_listen2` is the step listen() ends in
 * for a primary (bind, listen, then 'listening' or 'error' as usual; for no address it tries
 * `::`, then `0.0.0.0`); listen() stays the fallback should a future Node drop the name.
 */
function bindWithoutCluster(server: net.Server, address: ListenAddress): void {
  const legacy = (server as unknown as LegacyListen)._listen2;
  const host = address.host ?? null;
  if (typeof legacy === 'function')
    legacy.call(server, host, address.port, host !== null && net.isIPv6(host) ? 6 : 4, LISTEN_BACKLOG, undefined, 0);
  else server.listen({ host: address.host, port: address.port, ipv6Only: false, backlog: LISTEN_BACKLOG });
}

export class MetricsHttpServer {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private refusalLogged = false;

  constructor(
    private readonly address: ListenAddress,
    private readonly render: () => Exposition,
    private readonly log: Log,
  ) {}

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
      bindWithoutCluster(server, this.address);
    });
  }

  close(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const socket of this.sockets) socket.destroy();
    if (!server) return Promise.resolve();
    return new Promise((resolve) => server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    if (this.sockets.size >= MAX_METRICS_CONNECTIONS) {
      if (!this.refusalLogged)
        this.log.log('warning', `Metrics: refusing connections beyond ${MAX_METRICS_CONNECTIONS} at once`);
      this.refusalLogged = true;
      socket.on('error', () => socket.destroy());
      socket.end(response(503, 'Too many connections\n', { close: true }));
      return;
    }
    this.sockets.add(socket);
    let pending = '';
    let deadline: NodeJS.Timeout | null = null;
    const stopDeadline = (): void => {
      if (deadline !== null) clearTimeout(deadline);
      deadline = null;
    };
    socket.on('close', () => {
      stopDeadline();
      this.sockets.delete(socket);
      this.refusalLogged = false;
    });
    socket.on('error', () => socket.destroy()); // a scraper that goes away mid-answer is routine
    socket.setTimeout(KEEP_ALIVE_TIMEOUT_MS, () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      // Request lines and headers are ASCII; latin1 maps every byte to one character.
      pending += chunk.toString('latin1');
      for (;;) {
        const end = headerEnd(pending);
        if (end === null || end.start > MAX_HEADER_BYTES) break;
        stopDeadline();
        const head = pending.slice(0, end.start);
        pending = pending.slice(end.after);
        const keepOpen = this.answer(socket, head);
        if (!keepOpen) {
          pending = '';
          socket.end();
          socket.pause();
          return;
        }
      }
      if (pending.length > MAX_HEADER_BYTES) {
        socket.end(response(431, 'Request header too large\n', { close: true }));
        socket.pause();
        return;
      }
      // The deadline runs from a request's first byte to the end of its headers.
      if (pending.length > 0 && deadline === null)
        deadline = setTimeout(() => {
          socket.end(response(408, 'Request timeout\n', { close: true }));
        }, METRICS_REQUEST_TIMEOUT_MS);
      if (socket.writableLength > MAX_UNSENT_BYTES) socket.destroy();
    });
  }

  /** Answers one request; false when the connection is to be closed after it. */
  private answer(socket: net.Socket, head: string): boolean {
    const lines = head.split(/\r?\n/);
    const requestLine = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/.exec(lines[0] ?? '');
    if (!requestLine) {
      socket.write(response(400, 'Bad request\n', { close: true }));
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
      socket.write(response(404, `Not found; try ${METRICS_PATH}\n`, { close }));
      return !close;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      socket.write(response(405, 'Use GET\n', { close, extra: 'Allow: GET, HEAD\r\n' }));
      return !close;
    }
    let body: Exposition;
    try {
      body = this.render();
    } catch (error) {
      this.log.log('error', `Metrics: could not build the exposition: ${(error as Error).stack ?? String(error)}`);
      socket.write(response(500, 'Internal error\n', { close: true }));
      return false;
    }
    const { parts } = body;
    let length = 0;
    for (const part of parts) length += typeof part === 'string' ? Buffer.byteLength(part) : part.length;
    socket.cork();
    socket.write(head200(length, close));
    if (method === 'GET') {
      // The last write's callback runs once the kernel has every byte, or the write failed (a
      // destroyed socket calls it too): only then may the block's memory be written over.
      parts.forEach((part, index) => socket.write(part, index === parts.length - 1 ? () => body.done() : undefined));
    } else body.done();
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
