/** A client for the API socket: one request → one response, or a `watch` stream. */
import * as net from 'node:net';
import { OffloaddError } from '../errors';
import { readLines } from './ndjson';
import type { MethodName, Methods, RpcErrorObject, WatchEvent } from './protocol';

/** The daemon could not be reached (not running, wrong socket, no permission). */
export class UnreachableError extends OffloaddError {
  constructor(socketPath: string, cause: NodeJS.ErrnoException) {
    const reason =
      cause.code === 'ENOENT'
        ? 'no such socket'
        : cause.code === 'ECONNREFUSED'
          ? 'nothing is listening'
          : cause.code === 'EACCES'
            ? 'permission denied'
            : cause.message;
    super('ERR_UNREACHABLE', `cannot reach offloadd at ${socketPath}: ${reason}`, {
      hint:
        cause.code === 'EACCES'
          ? "run as root (prefix sudo) or as a member of the socket's group (offloadd --socket-group)"
          : 'is it running? (systemctl status offloadd) — or point --socket at the right path',
      cause,
    });
  }
}

/** The daemon answered with a JSON-RPC error. */
export class RemoteError extends OffloaddError {
  constructor(readonly rpc: RpcErrorObject) {
    super(`RPC_${rpc.code}`, rpc.message, { hint: rpc.data?.hint });
  }
}

function connect(socketPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    socket.once('connect', () => resolve(socket));
    socket.once('error', (error: NodeJS.ErrnoException) => reject(new UnreachableError(socketPath, error)));
  });
}

/** Calls `onMessage` for each JSON line until it returns true or the socket closes. */
function readMessages(socket: net.Socket, onMessage: (message: Record<string, unknown>) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    readLines(socket, {
      onLine: (line) => {
        try {
          if (!onMessage(JSON.parse(line) as Record<string, unknown>)) return false;
          resolve();
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error))); // a garbled answer, or an error answer to watch
        }
        socket.destroy();
        return true;
      },
    });
    socket.once('close', () => resolve());
    socket.once('error', reject);
  });
}

export async function call<M extends MethodName>(
  socketPath: string,
  method: M,
  params: Methods[M]['params'],
): Promise<Methods[M]['result']> {
  const socket = await connect(socketPath);
  socket.write(`${JSON.stringify({ jsonrpc: '2.0', id: 1, method, params })}\n`);
  let response: Record<string, unknown> | null = null;
  await readMessages(socket, (message) => {
    response = message;
    return true;
  });
  const answer = response as Record<string, unknown> | null;
  if (!answer)
    throw new OffloaddError('ERR_NO_RESPONSE', `offloadd closed the connection on ${socketPath} without answering`);
  if (answer['error']) throw new RemoteError(answer['error'] as RpcErrorObject);
  return answer['result'] as Methods[M]['result'];
}

/** Streams watch events to `onEvent` until the connection ends. */
export async function watch(socketPath: string, onEvent: (event: WatchEvent) => void): Promise<void> {
  const socket = await connect(socketPath);
  socket.write(`${JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'watch', params: {} })}\n`);
  await readMessages(socket, (message) => {
    if (message['error']) throw new RemoteError(message['error'] as RpcErrorObject);
    if (message['method'] === 'watch.event') onEvent(message['params'] as WatchEvent);
    return false;
  });
}
