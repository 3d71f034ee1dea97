/**
 * The API server: newline-delimited JSON-RPC 2.0 on a Unix socket. Hardened against its
 * clients: a bounded request size, an absolute deadline per request line, bounded clients with
 * a cap per user and slots only root and the admin group may take, idle timeouts, parse errors
 * answered without dropping the connection, and `watch` clients that cannot keep up dropped
 * rather than buffered without limit. Callers are identified by SO_PEERCRED.
 *
 * The socket path is only ever replaced when it holds a stale socket (nobody answers on it),
 * and on exit only the socket this process bound is removed.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { addon, errnoName, type NativeUnixListener, type PeerCredentials } from '../addon/binding';
import { KernelError, OffloaddError, PolicyError } from '../errors';
import type { Log } from '../observe/log';
import { isMemberOf, resolveGroup } from './identity';
import { readLines } from './ndjson';
import {
  errorName,
  METHOD_NAMES,
  PARAM_SPECS,
  paramsProblem,
  PRIVILEGED_METHODS,
  RpcCode,
  type MethodName,
  type Methods,
  type RpcErrorObject,
  type WatchEvent,
} from './protocol';

export interface ApiServerOptions {
  socketPath: string;
  /** Group owning the socket (mode 0660); null keeps the daemon's group. */
  socketGroup: string | null;
  /** Group whose members may call privileged methods besides uid 0. */
  adminGroup: string | null;
  maxClients: number;
  /** Of maxClients, how many only root and the admin group may take. */
  reservedAdminClients: number;
  /** Connections one uid other than root may hold at once. */
  maxClientsPerUid: number;
  maxRequestBytes: number;
  /** From the first byte of a request line to its newline, however slowly the bytes come. */
  requestLineDeadlineMs: number;
  idleTimeoutMs: number;
  /** A watch client whose unsent output exceeds this is disconnected. */
  maxWatchBacklogBytes: number;
}

export const DEFAULT_API_LIMITS = {
  maxClients: 64,
  reservedAdminClients: 8,
  maxClientsPerUid: 8,
  maxRequestBytes: 64 * 1024,
  requestLineDeadlineMs: 10_000,
  idleTimeoutMs: 60_000,
  maxWatchBacklogBytes: 1024 * 1024,
};

/** After answering an over-long or late request, how long to drain the client before cutting it. */
const DRAIN_BEFORE_DESTROY_MS = 1000;

/** Device and inode of a socket file: what tells our socket from one bound later at the same path. */
interface SocketIdentity {
  dev: number;
  ino: number;
}

export interface Caller extends PeerCredentials {
  admin: boolean;
}

export type Handlers = {
  [M in MethodName]: (
    params: Methods[M]['params'],
    caller: Caller,
    connection: Connection,
  ) => Methods[M]['result'] | Promise<Methods[M]['result']>;
};

/** Raised by a handler for an error the client should see with a specific code. */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: RpcErrorObject['data'],
  ) {
    super(message);
  }
}

export class Connection {
  watching = false;
  constructor(
    readonly socket: net.Socket,
    readonly caller: Caller,
  ) {}

  send(message: object): boolean {
    if (this.socket.destroyed) return false;
    return this.socket.write(`${JSON.stringify(message)}\n`);
  }
}

/** As Node's net.Server default: connections the kernel queues before they are accepted. */
const LISTEN_BACKLOG = 511;

export class ApiServer {
  private listener: NativeUnixListener | null = null;
  private readonly connections = new Set<Connection>();
  private readonly connectionsByUid = new Map<number, number>();
  /** Limits already logged as reached; cleared when a connection closes (one line per episode). */
  private readonly limitsLogged = new Set<string>();
  private adminGid: number | null = null;
  /** The socket file this process bound, once listening. */
  private bound: SocketIdentity | null = null;

  constructor(
    private readonly options: ApiServerOptions,
    private readonly handlers: Handlers,
    private readonly log: Log,
  ) {}

  get watchers(): Connection[] {
    return [...this.connections].filter((connection) => connection.watching);
  }

  /**
   * Everything listen() needs that can be wrong, checked before the daemon changes anything:
   * the groups exist and the socket path is free or holds a stale socket. Throws OffloaddError.
   */
  async preflight(): Promise<void> {
    if (this.options.adminGroup !== null) resolveGroup(this.options.adminGroup);
    if (this.options.socketGroup !== null) resolveGroup(this.options.socketGroup);
    await checkSocketPath(this.options.socketPath);
  }

  async listen(): Promise<void> {
    const { socketPath } = this.options;
    this.adminGid = this.options.adminGroup === null ? null : resolveGroup(this.options.adminGroup);
    const socketGid = this.options.socketGroup === null ? null : resolveGroup(this.options.socketGroup);
    // Again, since the path may have changed during the start-up reconcile.
    const stale = await checkSocketPath(socketPath);
    makeSocketDirectory(socketPath);
    if (stale !== null) removeIfSame(socketPath, stale);
    const oldMask = process.umask(0o117); // the socket is born 0660, never briefly world-writable
    try {
      // Accepted natively, so each client's SO_PEERCRED is read on its own descriptor. No limit
      // here: accept() answers the clients over the limits with an error instead of dropping them.
      this.listener = addon.listenUnix(socketPath, LISTEN_BACKLOG, (fd, errno, credentials) =>
        this.accept(fd, errno, credentials),
      );
    } finally {
      process.umask(oldMask);
    }
    const stats = fs.lstatSync(socketPath);
    this.bound = { dev: stats.dev, ino: stats.ino };
    fs.chmodSync(socketPath, 0o660);
    if (socketGid !== null) fs.chownSync(socketPath, process.getuid?.() ?? 0, socketGid);
  }

  /** Sends to every watch client; drops those that do not read. */
  broadcast(params: WatchEvent): void {
    for (const connection of this.watchers) {
      connection.send({ jsonrpc: '2.0', method: 'watch.event', params });
      if (connection.socket.writableLength > this.options.maxWatchBacklogBytes) {
        this.log.log(
          'warning',
          `API: dropping a watch client (pid ${connection.caller.pid}, uid ${connection.caller.uid}) that stopped reading`,
        );
        connection.socket.destroy();
      }
    }
  }

  close(): Promise<void> {
    for (const connection of this.connections) connection.socket.destroy();
    this.listener?.close();
    this.listener = null;
    // Only the socket this process bound is removed: a newer daemon's stays.
    if (this.stillOwnsSocketPath()) fs.rmSync(this.options.socketPath, { force: true });
    return Promise.resolve();
  }

  /** Whether the socket path is still the socket this process bound (compared by dev and inode). */
  private stillOwnsSocketPath(): boolean {
    const { socketPath } = this.options;
    if (this.bound === null) return false;
    try {
      const stats = fs.lstatSync(socketPath);
      if (stats.isSocket() && stats.dev === this.bound.dev && stats.ino === this.bound.ino) return true;
      this.log.log(
        'info',
        `API: ${socketPath} is no longer the socket this daemon created (replaced by another process); left in place`,
      );
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      this.log.log(
        code === 'ENOENT' ? 'info' : 'warning',
        `API: cannot check ${socketPath} before removing it (${code ?? (error as Error).message}); left as it is`,
      );
    }
    return false;
  }

  private accept(fd: number, errno: number, credentials: PeerCredentials): void {
    if (fd < 0) {
      this.log.log('warning', `API: accept() failed (${errnoName(errno)}); that client is lost, the socket goes on`);
      return;
    }
    if (errno !== 0) {
      // Without credentials the caller cannot be authorised or counted: refuse, but say so.
      this.log.log('warning', `API: could not identify a client (SO_PEERCRED: ${errnoName(errno)}); connection closed`);
      fs.closeSync(fd);
      return;
    }
    const socket = new net.Socket({ fd, readable: true, writable: true });
    const caller: Caller = { ...credentials, admin: this.isAdmin(credentials) };
    const connection = new Connection(socket, caller);
    const refusal = this.admission(caller);
    if (refusal !== null) {
      connection.send(errorResponse(null, RpcCode.tooManyClients, refusal.message, { hint: refusal.hint }));
      if (!this.limitsLogged.has(refusal.limit)) {
        this.limitsLogged.add(refusal.limit);
        this.log.log('warning', `API: refusing connections: ${refusal.message} (uid ${caller.uid}, pid ${caller.pid})`);
      }
      socket.on('error', () => socket.destroy()); // the refused client may be gone already
      socket.end();
      return;
    }
    this.connections.add(connection);
    this.connectionsByUid.set(caller.uid, (this.connectionsByUid.get(caller.uid) ?? 0) + 1);
    let lineTimer: NodeJS.Timeout | null = null;
    const stopLineTimer = (): void => {
      if (lineTimer !== null) clearTimeout(lineTimer);
      lineTimer = null;
    };
    socket.on('close', () => {
      stopLineTimer();
      this.connections.delete(connection);
      const left = (this.connectionsByUid.get(caller.uid) ?? 1) - 1;
      if (left > 0) this.connectionsByUid.set(caller.uid, left);
      else this.connectionsByUid.delete(caller.uid);
      this.limitsLogged.clear();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // A client that vanishes mid-answer (EPIPE, ECONNRESET) is routine.
      this.log.log(
        'debug',
        `API: connection of uid ${caller.uid} (pid ${caller.pid}) failed: ${error.code ?? error.message}`,
      );
      socket.destroy();
    });
    socket.setTimeout(this.options.idleTimeoutMs, () => {
      if (connection.watching) return;
      this.log.log('debug', `API: closing an idle connection of uid ${caller.uid} (pid ${caller.pid})`);
      socket.end();
    });

    readLines(
      socket,
      {
        onLine: (line) => this.handleLine(connection, line),
        onTooLong: () => {
          stopLineTimer();
          this.refuseRequest(
            connection,
            RpcCode.requestTooLarge,
            `request larger than ${this.options.maxRequestBytes} bytes`,
          );
        },
        onPending: (newLineBegun) => {
          if (!newLineBegun) return stopLineTimer();
          stopLineTimer();
          lineTimer = setTimeout(() => {
            lineTimer = null;
            this.log.log(
              'notice',
              `API: closing the connection of uid ${caller.uid} (pid ${caller.pid}): its request line took longer than ${this.options.requestLineDeadlineMs} ms`,
            );
            this.refuseRequest(
              connection,
              RpcCode.requestTimeout,
              `request line not completed within ${this.options.requestLineDeadlineMs} ms`,
            );
          }, this.options.requestLineDeadlineMs);
        },
      },
      this.options.maxRequestBytes,
    );
  }

  private isAdmin(credentials: PeerCredentials): boolean {
    if (credentials.uid === 0) return true;
    if (this.adminGid === null) return false;
    try {
      return isMemberOf(credentials.uid, credentials.gid, this.adminGid);
    } catch (error) {
      this.log.log(
        'warning',
        `API: cannot tell whether uid ${credentials.uid} is in the admin group (${(error as Error).message}); treated as a reader`,
      );
      return false;
    }
  }

  /**
   * Null when the caller may connect now, else why not. Readers cannot take the slots kept for
   * root and the admin group, and no uid but root can hold more than its share.
   */
  private admission(caller: Caller): { limit: string; message: string; hint: string } | null {
    const { maxClients, reservedAdminClients, maxClientsPerUid } = this.options;
    const total = this.connections.size;
    if (total >= maxClients) {
      return { limit: 'total', message: `too many clients (${maxClients} connected)`, hint: 'try again shortly' };
    }
    if (!caller.admin && total >= maxClients - reservedAdminClients) {
      return {
        limit: 'readers',
        message: `too many clients: the last ${reservedAdminClients} of ${maxClients} connections are kept for root and the admin group`,
        hint: 'try again shortly; close idle watch sessions',
      };
    }
    if (caller.uid !== 0 && (this.connectionsByUid.get(caller.uid) ?? 0) >= maxClientsPerUid) {
      return {
        limit: `uid ${caller.uid}`,
        message: `too many connections from uid ${caller.uid} (at most ${maxClientsPerUid} at once)`,
        hint: 'close other offloadctl sessions of this user (e.g. idle watch), then try again',
      };
    }
    return null;
  }

  /** Answers with an error and closes: a request that was too large or too slow. */
  private refuseRequest(connection: Connection, code: number, message: string): void {
    connection.send(errorResponse(null, code, message));
    // Close our side but drain (and drop) what the client is still sending for a moment: a
    // client that gets EPIPE mid-write would never read the error above.
    connection.socket.end();
    setTimeout(() => connection.socket.destroy(), DRAIN_BEFORE_DESTROY_MS).unref();
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
      connection.send(
        errorResponse(
          null,
          RpcCode.invalidRequest,
          'invalid request: expected a JSON-RPC 2.0 object (batches are not supported)',
        ),
      );
      return;
    }
    const { jsonrpc, id = null, method, params = {} } = request as Record<string, unknown>;
    if (id !== null && typeof id !== 'string' && typeof id !== 'number') {
      // JSON-RPC 2.0: an id is a string, a number or null; anything else is not a request.
      connection.send(
        errorResponse(
          null,
          RpcCode.invalidRequest,
          `invalid request: "id" must be a string, a number or null, found ${Array.isArray(id) ? 'an array' : typeof id}`,
        ),
      );
      return;
    }
    const requestId = id;
    if (jsonrpc !== '2.0' || typeof method !== 'string') {
      connection.send(
        errorResponse(requestId, RpcCode.invalidRequest, 'invalid request: needs "jsonrpc": "2.0" and a "method"'),
      );
      return;
    }
    if (!(METHOD_NAMES as readonly string[]).includes(method)) {
      connection.send(
        errorResponse(requestId, RpcCode.methodNotFound, `no method "${method}"`, {
          hint: `methods: ${METHOD_NAMES.join(', ')}`,
        }),
      );
      return;
    }
    if (typeof params !== 'object' || params === null || Array.isArray(params)) {
      connection.send(errorResponse(requestId, RpcCode.invalidParams, 'params must be an object'));
      return;
    }
    const name = method as MethodName;
    const problem = paramsProblem(params as Record<string, unknown>, PARAM_SPECS[name]);
    if (problem !== null) {
      connection.send(errorResponse(requestId, RpcCode.invalidParams, problem));
      return;
    }
    if (PRIVILEGED_METHODS.has(name) && !connection.caller.admin) {
      this.log.event(
        'accessDenied',
        'warning',
        `API: refused ${name} for uid ${connection.caller.uid} (pid ${connection.caller.pid})`,
        {
          OFFLOADD_UID: connection.caller.uid,
          OFFLOADD_PID: connection.caller.pid,
          OFFLOADD_METHOD: name,
        },
      );
      connection.send(
        errorResponse(requestId, RpcCode.notAuthorized, `${name} needs root or membership in the admin group`, {
          hint: 'run offloadctl as root (prefix sudo), or ask for membership in the group given by --admin-group',
        }),
      );
      return;
    }
    const failed = (error: unknown): void => {
      connection.send(toErrorResponse(requestId, error));
      // RpcErrors are the caller's (bad params, unknown interface); a policy rejected on reload is
      // logged by the daemon. Anything else failed on our side and is logged here.
      if (error instanceof OffloaddError && !(error instanceof PolicyError)) {
        this.log.log('warning', `API: ${name} failed: ${error.message}${error.hint ? ` (${error.hint})` : ''}`);
      } else if (!(error instanceof RpcError) && !(error instanceof OffloaddError)) {
        this.log.log('error', `API: ${name} failed: ${(error as Error).stack ?? String(error)}`);
      }
    };
    try {
      const handler = this.handlers[name] as (params: unknown, caller: Caller, connection: Connection) => unknown;
      const result = handler(params, connection.caller, connection);
      // Long answers (deep drift queries) come as promises: the event loop keeps serving meanwhile.
      if (result instanceof Promise)
        result.then((value: unknown) => connection.send({ jsonrpc: '2.0', id: requestId, result: value }), failed);
      else connection.send({ jsonrpc: '2.0', id: requestId, result });
    } catch (error) {
      failed(error);
    }
  }
}

function errorResponse(
  id: string | number | null,
  code: number,
  message: string,
  data?: RpcErrorObject['data'],
): object {
  return { jsonrpc: '2.0', id, error: { code, message, data: { code: errorName(code), ...data } } };
}

function toErrorResponse(id: string | number | null, error: unknown): object {
  if (error instanceof RpcError) return errorResponse(id, error.code, error.message, error.data);
  if (error instanceof PolicyError) {
    return errorResponse(id, RpcCode.policyInvalid, error.toString(), {
      file: error.file,
      line: error.position?.line,
      column: error.position?.column,
      key: error.key,
      hint: error.hint,
    });
  }
  if (error instanceof KernelError) {
    return errorResponse(id, RpcCode.internalError, error.message, {
      code: 'ERR_KERNEL',
      errno: error.code,
      hint: error.hint,
    });
  }
  if (error instanceof OffloaddError)
    return errorResponse(id, RpcCode.internalError, error.message, { code: error.code, hint: error.hint });
  return errorResponse(id, RpcCode.internalError, `internal error: ${(error as Error).message}`);
}

const SOCKET_PATH_HINT =
  'give --socket a path where nothing but an old offloadd socket is (default /run/offloadd/offloadd.sock)';

/** Whether something accepts connections on the socket at `socketPath`. */
function socketAnswers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    // Only "refused" proves nobody listens; EAGAIN (a full backlog) or EACCES mean someone may.
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code !== 'ECONNREFUSED'));
  });
}

function describeFileType(stats: fs.Stats): string {
  if (stats.isFile()) return 'a regular file';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isSymbolicLink()) return 'a symbolic link';
  if (stats.isFIFO()) return 'a FIFO';
  return 'a device';
}

/**
 * Pre-flight for --socket, run before the daemon changes anything: the path must be free or
 * hold a stale socket (a socket nobody answers on, left by a crash). Anything else — a regular
 * file (even the policy), a directory, a symbolic link (dangling or not), a socket another
 * process answers on — is an OffloaddError that names it. Returns the stale socket's stats (to
 * be replaced by listen()), or null when the path is free.
 */
export async function checkSocketPath(socketPath: string): Promise<fs.Stats | null> {
  const parent = path.dirname(socketPath);
  if (!isDirectoryOrAbsent(parent)) {
    throw new OffloaddError(
      'ERR_SOCKET_PATH',
      `cannot create the API socket ${socketPath}: ${parent} is not a directory`,
      { hint: SOCKET_PATH_HINT },
    );
  }
  const stats = lstatOrNull(socketPath);
  if (stats === null) return null;
  if (!stats.isSocket()) {
    throw new OffloaddError(
      'ERR_SOCKET_PATH',
      `refusing to replace ${socketPath} with the API socket: it is ${describeFileType(stats)}`,
      { hint: SOCKET_PATH_HINT },
    );
  }
  if (await socketAnswers(socketPath)) {
    throw new OffloaddError('ERR_SOCKET_IN_USE', `another process (offloadd?) is already listening on ${socketPath}`, {
      hint: 'stop it first (systemctl stop offloadd), or give this one another --socket',
    });
  }
  return stats;
}

/** False when `dir` exists (after links) and is not a directory; an absent one is created later. */
function isDirectoryOrAbsent(dir: string): boolean {
  try {
    return fs.statSync(dir).isDirectory();
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

function lstatOrNull(file: string): fs.Stats | null {
  try {
    return fs.lstatSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new OffloaddError(
      'ERR_SOCKET_PATH',
      `cannot check ${file} for the API socket: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      { hint: SOCKET_PATH_HINT, cause: error },
    );
  }
}

function makeSocketDirectory(socketPath: string): void {
  try {
    fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o755 });
  } catch (error) {
    throw new OffloaddError(
      'ERR_SOCKET_PATH',
      `cannot create the directory of ${socketPath}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      { hint: SOCKET_PATH_HINT, cause: error },
    );
  }
}

/** Unlinks the stale socket found by checkSocketPath, unless something else took its place since. */
function removeIfSame(socketPath: string, stale: fs.Stats): void {
  const now = lstatOrNull(socketPath);
  if (now === null) return;
  if (!now.isSocket() || now.dev !== stale.dev || now.ino !== stale.ino) {
    throw new OffloaddError('ERR_SOCKET_PATH', `${socketPath} changed while offloadd was starting`, {
      hint: SOCKET_PATH_HINT,
    });
  }
  fs.unlinkSync(socketPath);
}
