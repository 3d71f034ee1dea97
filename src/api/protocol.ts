/**
 * The local API: newline-delimited JSON-RPC 2.0 over a Unix stream socket. Each method is typed
 * once here ({ params, result }) for both the server and offloadctl. docs/API.md documents it.
 */
import type { AttributionStatus } from '../attribution/attribution';
import type { RecordActor } from '../attribution/actor';
import type { LedgerRecord, RecordEvent, Trigger } from '../ledger/record';
import type { EventCounts } from '../observe/counters';
import type { RuleEvaluation } from '../policy/match';
import type { Mode, PolicyWarning } from '../policy/types';
import type { FeatureInterface } from '../reconcile/feature-state';
import type { InterfaceStatusView, InterfaceView, PlanView } from './views';

export type { FeatureView, InterfaceStatusView, InterfaceView, OnOff, PlanView } from './views';

/** Bumped on an incompatible change; additions keep it. */
export const API_VERSION = 1;
export const DEFAULT_SOCKET_PATH = '/run/offloadd/offloadd.sock';
/** drift.list answers this many records unless asked for more... */
export const DRIFT_DEFAULT_LIMIT = 100;
/** ...and never more than this many in one answer (one JSON line of tens of MB at most). */
export const DRIFT_MAX_LIMIT = 100_000;

/** JSON-RPC 2.0's own codes. */
export const RpcCode = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
  // offloadd's own, outside the reserved -32768..-32000 range
  notFound: 1001,
  policyInvalid: 1002,
  notAuthorized: 1003,
  requestTooLarge: 1004,
  tooManyClients: 1005,
  requestTimeout: 1006,
} as const;

/**
 * The one error-code scheme: every error object carries `data.code`, an ERR_* name, next to
 * JSON-RPC's number; offloadctl --json prints that name as `code`. Kernel errors add `data.errno`.
 */
export const ERROR_NAMES: Readonly<Record<number, string>> = {
  [RpcCode.parseError]: 'ERR_PARSE',
  [RpcCode.invalidRequest]: 'ERR_INVALID_REQUEST',
  [RpcCode.methodNotFound]: 'ERR_NO_SUCH_METHOD',
  [RpcCode.invalidParams]: 'ERR_INVALID_PARAMS',
  [RpcCode.internalError]: 'ERR_INTERNAL',
  [RpcCode.notFound]: 'ERR_NOT_FOUND',
  [RpcCode.policyInvalid]: 'ERR_POLICY',
  [RpcCode.notAuthorized]: 'ERR_NOT_AUTHORIZED',
  [RpcCode.requestTooLarge]: 'ERR_REQUEST_TOO_LARGE',
  [RpcCode.tooManyClients]: 'ERR_TOO_MANY_CLIENTS',
  [RpcCode.requestTimeout]: 'ERR_REQUEST_TIMEOUT',
};

export function errorName(rpcCode: number): string {
  return ERROR_NAMES[rpcCode] ?? 'ERR_INTERNAL';
}

export interface RpcErrorObject {
  code: number;
  message: string;
  data?: { code?: string; hint?: string; errno?: string; [key: string]: unknown };
}

export interface StatusResult {
  apiVersion: number;
  version: string;
  pid: number;
  mode: Mode;
  startedAt: string;
  uptimeSec: number;
  /** How features are read and set: by ifindex over ethtool netlink, or by name over the ioctls. */
  featureInterface: FeatureInterface;
  policy: { path: string; sha256: string; rules: number; warnings: PolicyWarning[] };
  interfaces: { managed: number; compliant: number; notCompliant: number };
  /** Since start; `drifts` equals the drift records (and MESSAGE_ID=<drift> entries) since then. */
  counters: EventCounts;
  /** `writable: false` with `unwritableSince`: records are held in memory, enforcement goes on. */
  ledger: {
    path: string;
    lastSeq: number;
    writable: boolean;
    unwritableSince: string | null;
    problem: string | null;
    heldRecords: number;
  };
  /** Whether drifts name their actor; `reason` says why not (once, also in the journal). */
  attribution: AttributionStatus;
}

export interface ExplainResult extends InterfaceView {
  rules: RuleEvaluation[];
  /** The rule that applies, or null. */
  rule: string | null;
  mode: Mode | null;
  plan: PlanView[];
  /** The actor of the interface's last drift or flapping record in this run, when one was named. */
  lastActor?: RecordActor;
}

/** The `watch.event` notifications' params, one per event. */
export type WatchEvent =
  | { type: 'record'; record: LedgerRecord }
  | { type: 'checked'; status: InterfaceStatusView; trigger: Trigger }
  | { type: 'released'; interface: string; ifindex: number; why: 'deleted' | 'unmatched' };

export interface Methods {
  status: { params: Record<string, never>; result: StatusResult };
  'interfaces.list': { params: Record<string, never>; result: { interfaces: InterfaceStatusView[] } };
  'interfaces.get': { params: { interface: string }; result: { interface: InterfaceStatusView } };
  'drift.list': {
    params: { since?: string; interface?: string; feature?: string; event?: RecordEvent; limit?: number };
    /** `warnings`: ledger files that could not be read, so older records may be missing. */
    result: { records: LedgerRecord[]; warnings?: string[] };
  };
  explain: { params: { interface: string }; result: ExplainResult };
  'policy.reload': {
    params: Record<string, never>;
    result: { path: string; sha256: string; rules: number; warnings: PolicyWarning[] };
  };
  enforce: { params: { interface?: string }; result: { interfaces: InterfaceStatusView[] } };
  /** Streams `watch.event` notifications until the client disconnects. */
  watch: { params: Record<string, never>; result: { watching: true } };
}

export type MethodName = keyof Methods;

/** One parameter as the server checks it before the method's handler sees it. */
export type ParamSpec =
  | { type: 'string'; required?: true; oneOf?: readonly string[] }
  | { type: 'integer'; required?: true; min: number; max: number };

const RECORD_EVENT_NAMES: readonly RecordEvent[] = ['initial', 'drift', 'unenforceable', 'flapping', 'resync'];

/** Every method's parameters: unknown ones, wrong types and values out of range are -32602. */
export const PARAM_SPECS: { readonly [M in MethodName]: { readonly [P in keyof Methods[M]['params']]-?: ParamSpec } } =
  {
    status: {},
    'interfaces.list': {},
    'interfaces.get': { interface: { type: 'string', required: true } },
    'drift.list': {
      since: { type: 'string' },
      interface: { type: 'string' },
      feature: { type: 'string' },
      event: { type: 'string', oneOf: RECORD_EVENT_NAMES },
      limit: { type: 'integer', min: 1, max: DRIFT_MAX_LIMIT },
    },
    explain: { interface: { type: 'string', required: true } },
    'policy.reload': {},
    enforce: { interface: { type: 'string' } },
    watch: {},
  };

/** Why `params` do not fit `specs`, or null when they do. */
export function paramsProblem(
  params: Record<string, unknown>,
  specs: Readonly<Record<string, ParamSpec>>,
): string | null {
  for (const name of Object.keys(params)) {
    if (!(name in specs)) {
      const known = Object.keys(specs);
      return `unknown param "${name}"${known.length > 0 ? ` (this method takes ${known.join(', ')})` : ' (this method takes none)'}`;
    }
  }
  for (const [name, spec] of Object.entries(specs)) {
    const value = params[name];
    if (value === undefined) {
      if (spec.required) return `param "${name}" is required`;
      continue;
    }
    if (spec.type === 'string') {
      if (typeof value !== 'string' || value === '') return `param "${name}" must be a non-empty string`;
      if (spec.oneOf && !spec.oneOf.includes(value)) return `param "${name}" must be one of ${spec.oneOf.join(', ')}`;
    } else if (typeof value !== 'number' || !Number.isInteger(value) || value < spec.min || value > spec.max) {
      return `param "${name}" must be an integer from ${spec.min} to ${spec.max}`;
    }
  }
  return null;
}
export const METHOD_NAMES: readonly MethodName[] = [
  'status',
  'interfaces.list',
  'interfaces.get',
  'drift.list',
  'explain',
  'policy.reload',
  'enforce',
  'watch',
];
/** Methods that read the ledger's files: a few at a time over all clients (limits.ts). */
export const LEDGER_METHODS: ReadonlySet<MethodName> = new Set(['drift.list']);
/** Methods that change the host: uid 0 or members of the admin group only. */
export const PRIVILEGED_METHODS: ReadonlySet<MethodName> = new Set(['policy.reload', 'enforce']);
