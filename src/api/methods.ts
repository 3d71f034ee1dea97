/**
 * The API's methods, over the daemon's state. Their params arrive checked against PARAM_SPECS
 * (protocol.ts) by the server, which also does transport, authorisation and error encoding;
 * here only what needs meaning is checked (a time's zone, an interface that exists).
 */
import type { AttributionStatus } from '../attribution/attribution';
import type { RecordActor } from '../attribution/actor';
import type { LinkMessage } from '../events/link-message';
import type { LedgerHealth, LedgerQuery, LedgerQueryResult } from '../ledger/ledger';
import type { EventCounts } from '../observe/counters';
import type { Sink } from '../observe/stream';
import type { Policy } from '../policy/types';
import type { FeatureInterface } from '../reconcile/feature-state';
import type { Explanation } from '../reconcile/reconciler';
import { VERSION } from '../version';
import type { InterfaceStatus } from '../reconcile/managed-interfaces';
import { API_VERSION, DRIFT_DEFAULT_LIMIT, RpcCode } from './protocol';
import { asShownName } from '../events/link-name';
import type { Handlers } from './dispatch';
import { RpcError, type ApiServer } from './server';
import { interfaceView, planView, statusView, type InterfaceStatusView } from './views';

/** ISO 8601 date and time with its zone: Z or ±hh:mm. */
const ZONED_TIMESTAMP = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:?\d{2})$/;
const SINCE_HINT = 'use ISO 8601 with Z or an offset, e.g. 2026-11-22T10:00:00Z or 2026-11-22T11:00:00+01:00';

/**
 * `since` must say its zone: a time without one would be read in the daemon's zone, which
 * need not be the caller's. (offloadctl turns a local time into UTC before asking.)
 */
function parseSince(text: string): Date {
  if (!ZONED_TIMESTAMP.test(text)) {
    const looksLocal = /^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$/.test(text);
    throw new RpcError(
      RpcCode.invalidParams,
      looksLocal ? `param "since" has no time zone: ${text}` : `param "since" is not a date and time: ${text}`,
      { hint: SINCE_HINT },
    );
  }
  const since = new Date(text);
  if (Number.isNaN(since.getTime()))
    throw new RpcError(RpcCode.invalidParams, `param "since" is not a valid date: ${text}`, { hint: SINCE_HINT });
  return since;
}

/** All the API reads and asks of the daemon (src/daemon.ts implements it). */
export interface DaemonForApi {
  readonly startedAt: Date;
  readonly policy: Policy;
  readonly featureInterface: FeatureInterface;
  counts(): { managed: number; compliant: number };
  eventCounts(): EventCounts;
  ledgerStatus(): LedgerHealth & { lastSeq: number };
  queryLedger(query: LedgerQuery): Promise<LedgerQueryResult>;
  statuses(): InterfaceStatus[];
  status(ifindex: number): InterfaceStatus | null;
  findLink(nameOrIndex: string): LinkMessage | null;
  explain(link: LinkMessage): Explanation;
  /** Throws PolicyError for an invalid policy (the running one stays). */
  reload(): Policy;
  enforce(ifindex: number | null): void;
  attributionStatus(): AttributionStatus;
  /** The actor of the interface's last drift or flapping record in this run, if one was named. */
  lastActor(ifindex: number): RecordActor | undefined;
}

export function createHandlers(daemon: DaemonForApi): Handlers {
  const view = (status: InterfaceStatus): InterfaceStatusView => statusView(status, daemon.lastActor(status.ifindex));
  const managedStatus = (name: string): InterfaceStatus => {
    const link = daemon.findLink(name);
    const status = link ? daemon.status(link.ifindex) : null;
    if (!link)
      throw new RpcError(RpcCode.notFound, `no interface "${name}"`, {
        hint: 'offloadctl list shows the managed interfaces',
      });
    if (!status)
      throw new RpcError(RpcCode.notFound, `interface "${name}" is not managed: no rule matches it`, {
        hint: `offloadctl explain ${name} shows why`,
      });
    return status;
  };

  return {
    status: () => {
      const { managed, compliant } = daemon.counts();
      const policy = daemon.policy;
      return {
        apiVersion: API_VERSION,
        version: VERSION,
        pid: process.pid,
        mode: policy.mode,
        startedAt: daemon.startedAt.toISOString(),
        uptimeSec: Math.round((Date.now() - daemon.startedAt.getTime()) / 1000),
        featureInterface: daemon.featureInterface,
        policy: { path: policy.path, sha256: policy.checksum, rules: policy.rules.length, warnings: policy.warnings },
        interfaces: { managed, compliant, notCompliant: managed - compliant },
        counters: daemon.eventCounts(),
        ledger: daemon.ledgerStatus(),
        attribution: daemon.attributionStatus(),
      };
    },

    'interfaces.list': () => ({
      interfaces: daemon
        .statuses()
        .sort((a, b) => a.name.localeCompare(b.name))
        .map(view),
    }),

    'interfaces.get': (params) => ({ interface: view(managedStatus(params.interface)) }),

    'drift.list': async (params) => {
      const { records, warnings } = await daemon.queryLedger({
        since: params.since === undefined ? undefined : parseSince(params.since),
        limit: params.limit ?? DRIFT_DEFAULT_LIMIT,
        interface: params.interface === undefined ? undefined : asShownName(params.interface),
        feature: params.feature,
        event: params.event,
      });
      return warnings.length > 0 ? { records, warnings } : { records };
    },

    explain: (params) => {
      const name = params.interface;
      const link = daemon.findLink(name);
      if (!link)
        throw new RpcError(RpcCode.notFound, `no interface "${name}"`, {
          hint: 'ip link shows the interfaces of this namespace',
        });
      const explanation = daemon.explain(link);
      const lastActor = daemon.lastActor(link.ifindex);
      return {
        ...interfaceView(explanation.facts),
        rules: explanation.evaluations,
        rule: explanation.rule,
        mode: explanation.mode,
        plan: explanation.plan.map(planView),
        ...(lastActor ? { lastActor } : {}),
      };
    },

    'policy.reload': () => {
      const policy = daemon.reload();
      return { path: policy.path, sha256: policy.checksum, rules: policy.rules.length, warnings: policy.warnings };
    },

    enforce: (params) => {
      const name = params.interface;
      if (name === undefined) {
        daemon.enforce(null);
        return { interfaces: daemon.statuses().map(view) };
      }
      const status = managedStatus(name);
      daemon.enforce(status.ifindex);
      return { interfaces: [view(daemon.status(status.ifindex) ?? status)] };
    },

    watch: (_params, _caller, connection) => {
      connection.watching = true;
      return { watching: true };
    },
  };
}

/** Streams the daemon's records and checks to `watch` clients, as WatchEvents. */
/** The API's watch clients as a sink of the daemon's stream (src/observe/stream.ts). */
export function watchSink(server: ApiServer): Sink {
  return {
    durable: (records) => {
      for (const record of records) server.broadcast({ type: 'record', record });
    },
    checked: ({ status, trigger }) => {
      if (server.watchers.length > 0) server.broadcast({ type: 'checked', status: statusView(status), trigger });
    },
    released: ({ ifindex, name, why }) => server.broadcast({ type: 'released', ifindex, interface: name, why }),
  };
}
