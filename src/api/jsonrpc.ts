/**
 * JSON-RPC 2.0 framing for the API: one request line in, a checked call (or the error to answer)
 * out; responses and errors built one way; and a response serialised in pieces, so an answer of
 * any size is produced only as fast as its client reads it (see Connection).
 */
import { KernelError, OffloaddError, PolicyError } from '../errors';
import {
  errorName,
  METHOD_NAMES,
  PARAM_SPECS,
  paramsProblem,
  RpcCode,
  type MethodName,
  type RpcErrorObject,
} from './protocol';

export type RequestId = string | number | null;

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

/**
 * A request line, read: a call of a known method with checked params, or the error response to
 * send instead (null: nothing is sent, as for a notification whose method or params are wrong).
 * A notification (no "id" member) is run like any call but never answered (JSON-RPC 2.0 §4.1).
 */
export type ParsedRequest =
  | { kind: 'call'; id: RequestId; notification: boolean; method: MethodName; params: Record<string, unknown> }
  | { kind: 'invalid'; response: object | null };

export function parseRequest(line: string): ParsedRequest {
  let request: unknown;
  try {
    request = JSON.parse(line);
  } catch {
    return invalid(null, RpcCode.parseError, 'parse error: not JSON');
  }
  if (typeof request !== 'object' || request === null || Array.isArray(request)) {
    return invalid(
      null,
      RpcCode.invalidRequest,
      'invalid request: expected a JSON-RPC 2.0 object (batches are not supported)',
    );
  }
  const fields = request as Record<string, unknown>;
  const { jsonrpc, id = null, method, params = {} } = fields;
  if (id !== null && typeof id !== 'string' && typeof id !== 'number') {
    // JSON-RPC 2.0: an id is a string, a number or null; anything else is not a request.
    return invalid(
      null,
      RpcCode.invalidRequest,
      `invalid request: "id" must be a string, a number or null, found ${Array.isArray(id) ? 'an array' : typeof id}`,
    );
  }
  const notification = !('id' in fields);
  if (jsonrpc !== '2.0' || typeof method !== 'string') {
    // Not a Request object at all, so not a notification either: answered with its id (or null).
    return invalid(id, RpcCode.invalidRequest, 'invalid request: needs "jsonrpc": "2.0" and a "method"');
  }
  const answer = (code: number, message: string, data?: RpcErrorObject['data']): ParsedRequest =>
    notification ? { kind: 'invalid', response: null } : invalid(id, code, message, data);
  if (!(METHOD_NAMES as readonly string[]).includes(method)) {
    return answer(RpcCode.methodNotFound, `no method "${method}"`, { hint: `methods: ${METHOD_NAMES.join(', ')}` });
  }
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    return answer(RpcCode.invalidParams, 'params must be an object');
  }
  const name = method as MethodName;
  const problem = paramsProblem(params as Record<string, unknown>, PARAM_SPECS[name]);
  if (problem !== null) return answer(RpcCode.invalidParams, problem);
  return { kind: 'call', id, notification, method: name, params: params as Record<string, unknown> };
}

function invalid(id: RequestId, code: number, message: string, data?: RpcErrorObject['data']): ParsedRequest {
  return { kind: 'invalid', response: errorResponse(id, code, message, data) };
}

export function resultResponse(id: RequestId, result: unknown): object {
  return { jsonrpc: '2.0', id, result };
}

export function errorResponse(id: RequestId, code: number, message: string, data?: RpcErrorObject['data']): object {
  return { jsonrpc: '2.0', id, error: { code, message, data: { code: errorName(code), ...data } } };
}

export function toErrorResponse(id: RequestId, error: unknown): object {
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

/** Elements of a long array serialised per piece: small enough to stay well under the output limit. */
const ELEMENTS_PER_PIECE = 64;

/**
 * `message` as one JSON line, in pieces: the same text as JSON.stringify(message) + '\n', but an
 * array's elements are serialised a few at a time as the reader takes them, so a 100,000-record
 * answer never exists as one string.
 */
export function* jsonLinePieces(message: unknown): Generator<string, void, undefined> {
  yield* jsonPieces(message);
  yield '\n';
}

function* jsonPieces(value: unknown): Generator<string, void, undefined> {
  if (Array.isArray(value)) {
    if (value.length <= ELEMENTS_PER_PIECE) {
      yield JSON.stringify(value);
      return;
    }
    yield '[';
    for (let start = 0; start < value.length; start += ELEMENTS_PER_PIECE) {
      // As JSON.stringify: an element that serialises to nothing (undefined, a function) is null.
      const texts = value
        .slice(start, start + ELEMENTS_PER_PIECE)
        .map((element: unknown) => JSON.stringify(element) ?? 'null');
      yield (start === 0 ? '' : ',') + texts.join(',');
    }
    yield ']';
    return;
  }
  if (typeof value === 'object' && value !== null && typeof (value as { toJSON?: unknown }).toJSON !== 'function') {
    yield '{';
    let first = true;
    for (const [key, member] of Object.entries(value)) {
      if (member === undefined || typeof member === 'function' || typeof member === 'symbol') continue;
      yield `${first ? '' : ','}${JSON.stringify(key)}:`;
      first = false;
      yield* jsonPieces(member);
    }
    yield '}';
    return;
  }
  yield JSON.stringify(value) ?? 'null';
}
