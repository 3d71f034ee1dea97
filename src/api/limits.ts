/**
 * Every limit the daemon's network-facing surfaces (the API socket, the metrics listener, the
 * textfile) hold their clients to, stated once. docs/API.md and docs/METRICS.md document them;
 * the tests in test/kernel/api.test.ts and test/kernel/metrics.test.ts hold them.
 */

/** The API socket's limits (options of ApiServer, so tests may lower them). */
export const DEFAULT_API_LIMITS = {
  /** Connections at once... */
  maxClients: 64,
  /** ...of which this many only root and the admin group may take. */
  reservedAdminClients: 8,
  /** Connections one uid other than root may hold at once. */
  maxClientsPerUid: 8,
  /** One request line, newline excluded. */
  maxRequestBytes: 64 * 1024,
  /**
   * A request line must be complete this long after its first byte, and the first one this long
   * after accept: a connection cannot be held by sending nothing, or a byte at a time.
   */
  requestLineDeadlineMs: 10_000,
  /** A connection with nothing to do (no request pending, no answer unsent) is closed after this; watchers excepted. */
  idleTimeoutMs: 60_000,
  /**
   * Unread output per connection, for every answer and every `watch` event: above it the
   * connection's requests are not read, and a long answer is produced only as fast as the client
   * reads it; a `watch` client that stays above it is disconnected.
   */
  maxUnreadOutputBytes: 1024 * 1024,
  /** Requests handled from one connection before the daemon turns to other work (pipelining). */
  maxRequestsPerRead: 16,
  /**
   * Ledger reads (`drift.list`) running at once, over all clients; more wait their turn. Each
   * holds its records in memory until they are sent (100,000 records: about 25 MiB).
   */
  maxConcurrentLedgerQueries: 2,
  /** A client must take a ledger answer within this, or is disconnected: its turn is for others too. */
  ledgerAnswerDeadlineMs: 10_000,
};

export type ApiLimits = typeof DEFAULT_API_LIMITS;

/** After answering an over-long or late request, how long to drain the client before cutting it. */
export const DRAIN_BEFORE_DESTROY_MS = 1000;

/** When accept() fails for want of descriptors or memory, the listener pauses this long before trying again. */
export const ACCEPT_BACKOFF_MS = 1000;

/** Refused connections and failed accepts are logged at most once per interval, as a count. */
export const REFUSAL_LOG_INTERVAL_MS = 10_000;
/** A refused connection is destroyed when its client closes, or after this at the latest... */
export const REFUSAL_LINGER_MS = 1000;
/** ...and at once when this many refused connections linger already. */
export const MAX_LINGERING_REFUSALS = 256;

/** Prometheus scrapes with one connection per target; a few more leave room for curl and a second server. */
export const MAX_METRICS_CONNECTIONS = 8;
/** A metrics connection's first request must be complete (headers received) this long after accept. */
export const METRICS_REQUEST_TIMEOUT_MS = 5000;
/**
 * After each answer, the next request on a kept-alive connection must be complete within this
 * (Prometheus scrapes every 15 s by default); not extended by bytes that trickle in.
 */
export const METRICS_KEEP_ALIVE_TIMEOUT_MS = 30_000;
/** Request line and headers; Prometheus sends about 300 bytes. */
export const METRICS_MAX_HEADER_BYTES = 8 * 1024;

/** The textfile is rewritten on change at most this often (node-exporter's contract)... */
export const MIN_TEXTFILE_INTERVAL_MS = 1000;
/** ...and at least this often, so its mtime shows the daemon is alive. */
export const TEXTFILE_HEARTBEAT_MS = 60_000;
