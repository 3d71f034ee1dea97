/**
 * `--metrics-listen ADDR:PORT`: Prometheus scrapes `GET /metrics`. A scrape must never hold up
 * enforcement, so the answer is built synchronously from what the daemon already keeps (a few
 * hundred microseconds for 1,000 interfaces), and the server is bounded against its clients: a
 * few connections at once, a deadline for each request, small headers, no request bodies read.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import { UsageError } from '../errors';
import type { Log } from '../observe/log';
import { EXPOSITION_CONTENT_TYPE } from '../observe/metrics';

/** Prometheus scrapes with one connection per target; a few more leave room for curl and a second server. */
export const MAX_METRICS_CONNECTIONS = 8;
/** From the first byte of a request to its last header, and for the whole request. */
export const METRICS_REQUEST_TIMEOUT_MS = 5000;
/** Prometheus keeps its connection open between scrapes (15 s by default); an idle one is closed after this. */
const KEEP_ALIVE_TIMEOUT_MS = 30_000;
const MAX_HEADER_BYTES = 8 * 1024;
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

export class MetricsHttpServer {
  private server: http.Server | null = null;

  constructor(
    private readonly address: ListenAddress,
    private readonly render: () => string,
    private readonly log: Log,
  ) {}

  /**
   * Binds now, before the daemon changes anything: a port in use or an address this host does
   * not have is a UsageError (exit 2), not a daemon running without the metrics asked for.
   */
  listen(): Promise<void> {
    const server = http.createServer(
      {
        maxHeaderSize: MAX_HEADER_BYTES,
        requestTimeout: METRICS_REQUEST_TIMEOUT_MS,
        keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      },
      (request, response) => this.answer(request, response),
    );
    server.headersTimeout = METRICS_REQUEST_TIMEOUT_MS;
    server.maxConnections = MAX_METRICS_CONNECTIONS; // the kernel queues, Node closes those over it
    server.on('clientError', (_error, socket) => socket.destroy());
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
                  : error.code === 'EAFNOSUPPORT' || error.code === 'EPERM'
                    ? 'IP sockets may be forbidden here: with systemd, add the metrics drop-in (RestrictAddressFamilies=)'
                    : undefined,
          }),
        );
      });
      server.listen({ host: this.address.host, port: this.address.port, ipv6Only: false }, () => {
        server.removeAllListeners('error');
        server.on('error', (error) => this.log.log('warning', `Metrics: ${where}: ${error.message}`));
        this.server = server;
        this.log.log('info', `Metrics: serving http://${where}${METRICS_PATH}`);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return Promise.resolve();
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  }

  private answer(request: http.IncomingMessage, response: http.ServerResponse): void {
    const path = (request.url ?? '').split('?', 1)[0];
    if (path !== METRICS_PATH) {
      response.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`Not found; try ${METRICS_PATH}\n`);
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('Use GET\n');
      return;
    }
    let body: string;
    try {
      body = this.render();
    } catch (error) {
      this.log.log('error', `Metrics: could not build the exposition: ${(error as Error).stack ?? String(error)}`);
      response.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Internal error\n');
      return;
    }
    response.writeHead(200, {
      'Content-Type': EXPOSITION_CONTENT_TYPE,
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
    });
    response.end(request.method === 'HEAD' ? undefined : body);
  }
}
