/**
 * The API server: newline-delimited JSON-RPC 2.0 on a Unix socket. Hardened against its
 * clients: bounded clients with a cap per user and slots only root and the admin group may take,
 * refusals closed at once and logged as a count per interval, accept() paused rather than spun
 * when descriptors run out, and per connection (connection.ts) bounded requests, deadlines and
 * unread output. Callers are identified by SO_PEERCRED. What a request line gets for an answer
 * is dispatch.ts's.
 *
 * The socket path is only ever replaced when it holds a stale socket (nobody answers on it),
 * and on exit only the socket this process bound is removed (socket-file.ts).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { addon, type NativeUnixListener, type PeerCredentials } from '../addon/binding';
import { errnoName } from '../addon/errno';
import type { Log } from '../observe/log';
import { Connection, type Caller } from './connection';
import { RequestDispatcher, type Handlers } from './dispatch';
import { isMemberOf, resolveGroup } from './identity';
import { errorResponse } from './jsonrpc';
import { ACCEPT_BACKOFF_MS, DRAIN_BEFORE_DESTROY_MS, type ApiLimits } from './limits';
import { RpcCode, type WatchEvent } from './protocol';
import { Refusals } from './refusals';
import { checkSocketPath, makeSocketDirectory, removeIfSame, type SocketIdentity } from './socket-file';

export { Connection, type Caller } from './connection';
export { RpcError } from './jsonrpc';
export { DEFAULT_API_LIMITS } from './limits';

export interface ApiServerOptions extends ApiLimits {
  socketPath: string;
  /** Group owning the socket (mode 0660); null keeps the daemon's group. */
  socketGroup: string | null;
  /** Group whose members may call privileged methods besides uid 0. */
  adminGroup: string | null;
}

/** As Node's net.Server default: connections the kernel queues before they are accepted. */
const LISTEN_BACKLOG = 511;

/** accept() errors that leave the connection queued: retrying at once would spin. */
const ACCEPT_RESOURCE_ERRORS: ReadonlySet<string> = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);

export class ApiServer {
  private listener: NativeUnixListener | null = null;
  private readonly connections = new Set<Connection>();
  private readonly connectionsByUid = new Map<number, number>();
  private readonly refusals: Refusals;
  private readonly dispatcher: RequestDispatcher;
  private acceptBackoff: NodeJS.Timeout | null = null;
  private adminGid: number | null = null;
  /** The socket file this process bound, once listening. */
  private bound: SocketIdentity | null = null;

  constructor(
    private readonly options: ApiServerOptions,
    handlers: Handlers,
    private readonly log: Log,
  ) {
    this.refusals = new Refusals(log, 'API: ');
    this.dispatcher = new RequestDispatcher(handlers, options, log);
  }

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
      connection.sendSerialized({ jsonrpc: '2.0', method: 'watch.event', params });
      if (connection.unreadOutputBytes > this.options.maxUnreadOutputBytes) {
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
    if (this.acceptBackoff !== null) clearTimeout(this.acceptBackoff);
    this.acceptBackoff = null;
    this.refusals.close();
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
    if (fd < 0) return this.acceptFailed(errno);
    if (errno !== 0) {
      // Without credentials the caller cannot be authorised or counted: refuse, but say so.
      this.refusals.note(
        'credentials',
        `could not identify a client (SO_PEERCRED: ${errnoName(errno)}); connection closed`,
      );
      fs.closeSync(fd);
      return;
    }
    // allowHalfOpen: a client that shuts down its sending side still gets every answer.
    const socket = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
    const caller: Caller = { ...credentials, admin: this.isAdmin(credentials) };
    const refusal = this.admission(caller);
    if (refusal !== null) {
      this.refusals.note(
        refusal.limit,
        `refusing connections: ${refusal.message} (uid ${caller.uid}, pid ${caller.pid})`,
      );
      const answer = errorResponse(null, RpcCode.tooManyClients, refusal.message, { hint: refusal.hint });
      this.refusals.closeRefused(socket, `${JSON.stringify(answer)}\n`);
      return;
    }
    const connection = new Connection(socket, caller, this.options, {
      onRequest: (client, line) => this.dispatcher.handleLine(client, line),
      onTooLong: (client) =>
        this.refuseRequest(
          client,
          RpcCode.requestTooLarge,
          `request larger than ${this.options.maxRequestBytes} bytes`,
        ),
      onLineDeadline: (client) => {
        this.log.log(
          'notice',
          `API: closing the connection of uid ${caller.uid} (pid ${caller.pid}): its request line took longer than ${this.options.requestLineDeadlineMs} ms`,
        );
        this.refuseRequest(
          client,
          RpcCode.requestTimeout,
          `request line not completed within ${this.options.requestLineDeadlineMs} ms`,
        );
      },
      onIdle: (client) => {
        // A client that leaves its answers unread that long is gone for all purposes.
        const unread = client.outputPending;
        this.log.log(
          'debug',
          `API: closing ${unread ? 'a connection that does not read its answers' : 'an idle connection'} of uid ${caller.uid} (pid ${caller.pid})`,
        );
        if (unread) socket.destroy();
        else socket.end();
      },
    });
    this.connections.add(connection);
    this.connectionsByUid.set(caller.uid, (this.connectionsByUid.get(caller.uid) ?? 0) + 1);
    socket.on('close', () => {
      this.connections.delete(connection);
      const left = (this.connectionsByUid.get(caller.uid) ?? 1) - 1;
      if (left > 0) this.connectionsByUid.set(caller.uid, left);
      else this.connectionsByUid.delete(caller.uid);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // A client that vanishes mid-answer (EPIPE, ECONNRESET) is routine.
      this.log.log(
        'debug',
        `API: connection of uid ${caller.uid} (pid ${caller.pid}) failed: ${error.code ?? error.message}`,
      );
      socket.destroy();
    });
  }

  /**
   * accept() failed. Out of descriptors or memory, the connection stays queued and the socket
   * readable: accepting pauses for a while instead of spinning, and the failure is logged as a
   * count per interval.
   */
  private acceptFailed(errno: number): void {
    const name = errnoName(errno);
    if (!ACCEPT_RESOURCE_ERRORS.has(name)) {
      this.refusals.note(`accept ${name}`, `accept() failed (${name}); that client is lost, the socket goes on`);
      return;
    }
    this.refusals.note(
      `accept ${name}`,
      `accept() failed (${name}): not accepting connections for ${ACCEPT_BACKOFF_MS} ms; clients wait in the backlog`,
    );
    if (this.acceptBackoff !== null || this.listener === null) return;
    this.listener.pause();
    this.acceptBackoff = setTimeout(() => {
      this.acceptBackoff = null;
      this.listener?.resume();
    }, ACCEPT_BACKOFF_MS);
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
    connection.socket.resume();
    connection.socket.end();
    setTimeout(() => connection.socket.destroy(), DRAIN_BEFORE_DESTROY_MS).unref();
  }
}
