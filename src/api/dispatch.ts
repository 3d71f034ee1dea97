/**
 * From a request line to its answer: parse (JSON-RPC 2.0), check the caller may call the method,
 * run its handler, answer (or not, for a notification), and log what failed on our side. Ledger
 * queries take turns, a bounded number at once (inLedgerTurn). The socket side is server.ts's.
 */
import { OffloaddError, PolicyError } from '../errors';
import type { Log } from '../observe/log';
import type { Caller, Connection } from './connection';
import { errorResponse, parseRequest, resultResponse, RpcError, toErrorResponse } from './jsonrpc';
import type { ApiLimits } from './limits';
import { LEDGER_METHODS, PRIVILEGED_METHODS, RpcCode, type MethodName, type Methods } from './protocol';

export type Handlers = {
  [M in MethodName]: (
    params: Methods[M]['params'],
    caller: Caller,
    connection: Connection,
  ) => Methods[M]['result'] | Promise<Methods[M]['result']>;
};

export class RequestDispatcher {
  /** Ledger queries running, and those waiting for a turn. */
  private ledgerQueries = 0;
  private readonly ledgerQueue: Array<() => void> = [];

  constructor(
    private readonly handlers: Handlers,
    private readonly limits: Pick<ApiLimits, 'maxConcurrentLedgerQueries' | 'ledgerAnswerDeadlineMs'>,
    private readonly log: Log,
  ) {}

  /**
   * One request line: answered (synchronously, or when the returned promise settles), unless it
   * is a notification, which is run and never answered (JSON-RPC 2.0).
   */
  handleLine(connection: Connection, line: string): void | Promise<void> {
    const request = parseRequest(line);
    if (request.kind === 'invalid') {
      if (request.response !== null) connection.send(request.response);
      return;
    }
    const { id, notification, method: name, params } = request;
    const answer = (response: object): void => {
      if (!notification) connection.send(response);
    };
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
      answer(
        errorResponse(id, RpcCode.notAuthorized, `${name} needs root or membership in the admin group`, {
          hint: 'run offloadctl as root (prefix sudo), or ask for membership in the group given by --admin-group',
        }),
      );
      return;
    }
    const failed = (error: unknown): void => {
      answer(toErrorResponse(id, error));
      this.logFailure(name, error);
    };
    const succeeded = (value: unknown): void => answer(resultResponse(id, value));
    const run = (): void | Promise<void> => {
      try {
        const handler = this.handlers[name] as (params: unknown, caller: Caller, connection: Connection) => unknown;
        const result = handler(params, connection.caller, connection);
        // Long answers (deep drift queries) come as promises: the event loop keeps serving meanwhile.
        if (result instanceof Promise) return result.then(succeeded, failed);
        succeeded(result);
      } catch (error) {
        failed(error);
      }
    };
    return LEDGER_METHODS.has(name) ? this.inLedgerTurn(connection, run) : run();
  }

  /**
   * Runs `query` when fewer than maxConcurrentLedgerQueries run. The turn ends once its answer
   * has been handed to the socket (the records are then freed): a client that does not take it
   * within ledgerAnswerDeadlineMs is disconnected, so a reader that stalls cannot keep the
   * records in memory or the turn from others.
   */
  private async inLedgerTurn(connection: Connection, query: () => void | Promise<void>): Promise<void> {
    if (this.ledgerQueries >= this.limits.maxConcurrentLedgerQueries)
      await new Promise<void>((resolve) => this.ledgerQueue.push(resolve));
    else this.ledgerQueries++;
    try {
      if (connection.socket.destroyed) return;
      await query();
      let deadline: NodeJS.Timeout | null = null;
      const late = new Promise<boolean>((resolve) => {
        deadline = setTimeout(() => resolve(true), this.limits.ledgerAnswerDeadlineMs);
      });
      const tooLate = await Promise.race([connection.outboxDrained().then(() => false), late]);
      if (deadline !== null) clearTimeout(deadline);
      if (tooLate) {
        this.log.log(
          'notice',
          `API: closing the connection of uid ${connection.caller.uid} (pid ${connection.caller.pid}): it did not read its drift answer within ${this.limits.ledgerAnswerDeadlineMs} ms`,
        );
        connection.socket.destroy();
      }
    } finally {
      const next = this.ledgerQueue.shift();
      if (next !== undefined)
        next(); // the turn passes on: the count stays
      else this.ledgerQueries--;
    }
  }

  /**
   * RpcErrors are the caller's (bad params, unknown interface); a policy rejected on reload is
   * logged by the daemon. Anything else failed on our side and is logged here.
   */
  private logFailure(name: MethodName, error: unknown): void {
    if (error instanceof OffloaddError && !(error instanceof PolicyError)) {
      this.log.log('warning', `API: ${name} failed: ${error.message}${error.hint ? ` (${error.hint})` : ''}`);
    } else if (!(error instanceof RpcError) && !(error instanceof OffloaddError)) {
      this.log.log('error', `API: ${name} failed: ${(error as Error).stack ?? String(error)}`);
    }
  }
}
