/**
 * The API server: newline-delimited JSON-RPC 2.0 on a Unix socket. Hardened against its
 * clients: a bounded request size, bounded clients, idle timeouts, parse errors answered
 * without dropping the connection, and `watch` clients that cannot keep up dropped rather
 * than buffered without limit. Callers are identified by SO_PEERCRED.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { addon, type PeerCredentials } from '../addon/binding';
import { OffloaddError, PolicyError } from '../errors';
import type { Log } from '../observe/log';
import { isMemberOf, resolveGroup } from './identity';
import { readLines } from './ndjson';
import { METHOD_NAMES, PRIVILEGED_METHODS, RpcCode, type MethodName, type Methods, type RpcErrorObject } from './protocol';

export interface ApiServerOptions {
  socketPath: string;
  /** Group owning the socket (mode 0660); null keeps the daemon's group. */
  socketGroup: string | null;
  /** Group whose members may call privileged methods besides uid 0. */
  adminGroup: string | null;
  maxClients: number;
  maxRequestBytes: number;
  idleTimeoutMs: number;
  /** A watch client whose unsent output exceeds this is disconnected. */
  maxWatchBacklogBytes: number;
}

export const DEFAULT_API_LIMITS = {
  maxClients: 64,
  maxRequestBytes: 64 * 1024,
  idleTimeoutMs: 60_000,
  maxWatchBacklogBytes: 1024 * 1024,
};

export interface Caller extends PeerCredentials {
  admin: boolean;
}

export type Handlers = {
  [M in MethodName]: (params: Methods[M]['params'], caller: Caller, connection: Connection) => Methods[M]['result'] | Promise<Methods[M]['result']>;
};

/** Raised by a handler for an error the client should see with a specific code. */
export class RpcError extends Error {
  constructor(readonly code: number, message: string, readonly data?: RpcErrorObject['data']) {
    super(message);
  }
}

export class Connection {
  watching = false;
  constructor(readonly socket: net.Socket, readonly caller: Caller) {}

  send(message: object): boolean {
    if (this.socket.destroyed) return false;
    return this.socket.write(`${JSON.stringify(message)}\n`);
  }
}

export class ApiServer {
  private readonly server: net.Server;
  private readonly connections = new Set<Connection>();
  private adminGid: number | null = null;

  constructor(private readonly options: ApiServerOptions, private readonly handlers: Handlers, private readonly log: Log) {
    // No net.Server maxConnections: it drops extra clients silently; accept() answers them.
    this.server = net.createServer((socket) => this.accept(socket));
  }

  get watchers(): Connection[] {
    return [...this.connections].filter((connection) => connection.watching);
  }

  async listen(): Promise<void> {
    const { socketPath } = this.options;
    this.adminGid = this.options.adminGroup === null ? null : resolveGroup(this.options.adminGroup);
    const socketGid = this.options.socketGroup === null ? null : resolveGroup(this.options.socketGroup);
    fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o755 });
    await removeStaleSocket(socketPath);
    const oldMask = process.umask(0o117); // the socket is born 0660, never briefly world-writable
    try {
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen(socketPath, () => {
          this.server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    fs.chmodSync(socketPath, 0o660);
    if (socketGid !== null) fs.chownSync(socketPath, process.getuid?.() ?? 0, socketGid);
  }

  /** Sends to every watch client; drops those that do not read. */
  broadcast(params: object): void {
    for (const connection of this.watchers) {
      connection.send({ jsonrpc: '2.0', method: 'watch.event', params });
      if (connection.socket.writableLength > this.options.maxWatchBacklogBytes) {
        this.log.log('warning', `API: dropping a watch client (pid ${connection.caller.pid}, uid ${connection.caller.uid}) that stopped reading`);
        connection.socket.destroy();
      }
    }
  }

  async close(): Promise<void> {
    for (const connection of this.connections) connection.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(this.options.socketPath, { force: true });
  }

  private accept(socket: net.Socket): void {
    let credentials: PeerCredentials;
    try {
      const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
      credentials = addon.peerCredentials(fd);
    } catch {
      socket.destroy();
      return;
    }
    const caller: Caller = {
      ...credentials,
      admin: credentials.uid === 0 || (this.adminGid !== null && isMemberOf(credentials.uid, credentials.gid, this.adminGid)),
    };
    const connection = new Connection(socket, caller);
    if (this.connections.size >= this.options.maxClients) {
      connection.send(errorResponse(null, RpcCode.tooManyClients, 'too many clients', { hint: 'try again shortly' }));
      socket.end();
      return;
    }
    this.connections.add(connection);
    socket.on('close', () => this.connections.delete(connection));
    socket.on('error', () => socket.destroy());
    socket.setTimeout(this.options.idleTimeoutMs, () => {
      if (!connection.watching) socket.end();
    });

    readLines(socket, {
      onLine: (line) => this.handleLine(connection, line),
      onTooLong: () => this.tooLarge(connection),
    }, this.options.maxRequestBytes);
  }

  private tooLarge(connection: Connection): void {
    connection.send(errorResponse(null, RpcCode.requestTooLarge, `request larger than ${this.options.maxRequestBytes} bytes`));
    // Close our side but drain (and drop) what the client is still sending for a moment: a
    // client that gets EPIPE mid-write would never read the error above.
    connection.socket.end();
    setTimeout(() => connection.socket.destroy(), 1000).unref();
  }

  private handleLine(connection: Connection, line: string): void {
    let request: unknown;
    try {
      request = JSON.parse(line);
    } catch {
      connection.send(errorResponse(null, RpcCode.parseError, 'parse error: not JSON'));
      return;
    }
    if (typeof request !== 'object' || request === null || Array.isArray(request)) {
      connection.send(errorResponse(null, RpcCode.invalidRequest, 'invalid request: expected a JSON-RPC 2.0 object (batches are not supported)'));
      return;
    }
    const { jsonrpc, id = null, method, params = {} } = request as Record<string, unknown>;
    const requestId = typeof id === 'string' || typeof id === 'number' ? id : null;
    if (jsonrpc !== '2.0' || typeof method !== 'string') {
      connection.send(errorResponse(requestId, RpcCode.invalidRequest, 'invalid request: needs "jsonrpc": "2.0" and a "method"'));
      return;
    }
    if (!(METHOD_NAMES as readonly string[]).includes(method)) {
      connection.send(errorResponse(requestId, RpcCode.methodNotFound, `no method "${method}"`, { hint: `methods: ${METHOD_NAMES.join(', ')}` }));
      return;
    }
    if (typeof params !== 'object' || params === null || Array.isArray(params)) {
      connection.send(errorResponse(requestId, RpcCode.invalidParams, 'params must be an object'));
      return;
    }
    const name = method as MethodName;
    if (PRIVILEGED_METHODS.has(name) && !connection.caller.admin) {
      this.log.event('accessDenied', 'warning', `API: refused ${name} for uid ${connection.caller.uid} (pid ${connection.caller.pid})`, {
        OFFLOADD_UID: connection.caller.uid, OFFLOADD_PID: connection.caller.pid, OFFLOADD_METHOD: name,
      });
      connection.send(errorResponse(requestId, RpcCode.notAuthorized, `${name} needs root or membership in the admin group`, {
        hint: 'run offloadctl as root (prefix sudo), or ask for membership in the group given by --admin-group',
      }));
      return;
    }
    const failed = (error: unknown): void => {
      connection.send(toErrorResponse(requestId, error));
      if (!(error instanceof RpcError) && !(error instanceof OffloaddError)) {
        this.log.log('error', `API: ${name} failed: ${(error as Error).stack ?? String(error)}`);
      }
    };
    try {
      const handler = this.handlers[name] as (params: unknown, caller: Caller, connection: Connection) => unknown;
      const result = handler(params, connection.caller, connection);
      // Long answers (deep drift queries) come as promises: the event loop keeps serving meanwhile.
      if (result instanceof Promise) result.then((value) => connection.send({ jsonrpc: '2.0', id: requestId, result: value }), failed);
      else connection.send({ jsonrpc: '2.0', id: requestId, result });
    } catch (error) {
      failed(error);
    }
  }
}

function errorResponse(id: string | number | null, code: number, message: string, data?: RpcErrorObject['data']): object {
  return { jsonrpc: '2.0', id, error: data ? { code, message, data } : { code, message } };
}

function toErrorResponse(id: string | number | null, error: unknown): object {
  if (error instanceof RpcError) return errorResponse(id, error.code, error.message, error.data);
  if (error instanceof PolicyError) {
    return errorResponse(id, RpcCode.policyInvalid, error.toString(), {
      file: error.file, line: error.position?.line, column: error.position?.column, key: error.key, hint: error.hint,
    });
  }
  if (error instanceof OffloaddError) return errorResponse(id, RpcCode.internalError, error.message, { code: error.code, hint: error.hint });
  return errorResponse(id, RpcCode.internalError, `internal error: ${(error as Error).message}`);
}

/** A socket file left by a crash is removed; a live daemon behind it is an error. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  if (!fs.existsSync(socketPath)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (alive) {
    throw new OffloaddError('ERR_SOCKET_IN_USE', `another offloadd is already listening on ${socketPath}`, {
      hint: 'stop it first (systemctl stop offloadd), or give this one another --socket',
    });
  }
  fs.rmSync(socketPath, { force: true });
}
