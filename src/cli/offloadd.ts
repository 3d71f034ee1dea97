/**
 * `offloadd`: the daemon's command line. Parses options, sets up logging, and starts the daemon
 * (its wiring is src/run-daemon.ts) until SIGTERM/SIGINT; reloads on SIGHUP. Exit status: 0 success (with --once: all compliant),
 * 1 not compliant (--once) or a runtime failure, 2 usage or policy error.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_STATE_DIR, type DaemonOptions } from '../daemon';
import { OffloaddError, PolicyError, UsageError } from '../errors';
import {
  checkReceiveBufferBytes,
  DEFAULT_RECEIVE_BUFFER_BYTES,
  LINK_EVENT_BUFFER_BYTES,
  MAX_RECEIVE_BUFFER_BYTES,
  MIN_RECEIVE_BUFFER_BYTES,
} from '../events/link-events';
import { DEFAULT_SYSFS_ROOT } from '../facts/sysfs';
import { DEFAULT_POLICY_PATH } from '../policy/load';
import { createLog, flushStderr, LEVELS, type Level, type LogTarget } from '../observe/log';
import { DEFAULT_SOCKET_PATH } from '../api/protocol';
import { statusView } from '../api/views';
import { parseListenAddress, type ListenAddress } from '../api/metrics-http';
import { checkTextfilePath } from '../api/metrics-textfile';
import { runOnce, startService } from '../run-daemon';
import { formatOnceReport } from './format';
import { VERSION, versionLine } from '../version';

export const EXIT = { ok: 0, notCompliant: 1, usage: 2 } as const;

const HELP = `offloadd ${VERSION} - keep NIC offload features in policy, detect and record drift

USAGE
  offloadd [OPTIONS]

  Runs in the foreground as a systemd service (Type=notify) or from a terminal. At start it
  reads every network interface, applies the first matching policy rule to each (for example
  GRO and GSO off on Broadcom BCM57508 ports), then follows rtnetlink link events so that an
  interface that appears, comes up, is renamed or is re-registered by its driver is brought
  into policy at once, and any later change (drift) is recorded and, in enforce mode, undone.

OPTIONS
  --policy FILE        Policy file (YAML). Default: ${DEFAULT_POLICY_PATH} if it exists,
                       otherwise the shipped default (policy/default.yaml).
  --watch-policy       Reload by itself when the --policy file's content changes: edited in
                       place, replaced by rename, or a Kubernetes ConfigMap update (kubelet
                       swaps a ..data symbolic link). A bad policy is rejected and the running
                       one stays, as on SIGHUP. Needs --policy.
  --state-dir DIR      Where the drift ledger is kept. Default: ${DEFAULT_STATE_DIR}
  --sysfs-root DIR     Read device facts (driver, PCI ids) from DIR instead of ${DEFAULT_SYSFS_ROOT};
                       same layout as /sys. For tests and containers.
  --log-level LEVEL    ${LEVELS.join(', ')}. Default: info
  --log-target TARGET  auto, journal, console. Default: auto: the journal under systemd, or in a
                       container with the host's /run/systemd/journal/socket mounted (and
                       stderr not a terminal); else stderr
  --socket PATH        API socket (offloadctl talks to it). Default: ${DEFAULT_SOCKET_PATH}
  --socket-group GROUP Group owning the socket (mode 0660): its members can query.
  --admin-group GROUP  Members may also reload and enforce (root always may).
  --netlink-rcvbuf N   Link event receive buffer in bytes, ${MIN_RECEIVE_BUFFER_BYTES} to ${MAX_RECEIVE_BUFFER_BYTES}.
                       Default: ${DEFAULT_RECEIVE_BUFFER_BYTES}; raised at start to ${LINK_EVENT_BUFFER_BYTES} per link
  --metrics-listen ADDR:PORT
                       Serve Prometheus metrics at http://ADDR:PORT/metrics: 127.0.0.1:9747,
                       [::1]:9747, 0.0.0.0:9747, or :9747 for every address. Default: off.
  --metrics-textfile PATH
                       Write the metrics to PATH (ending in .prom) for node-exporter's
                       textfile collector: atomically, on change, at most once a second;
                       removed on stop. Default: off.
  --attribution on|off Name the process behind every drift (BPF programs on the ioctl, sendto
                       and sendmsg system calls; needs CAP_BPF and CAP_PERFMON). Default: on;
                       off here or \`attribution: off\` in the policy turns it off. Where it
                       cannot run, the daemon enforces anyway and says why once.
  --once               Reconcile every interface once, print what was done, and exit:
                       0 if all managed interfaces are compliant, 1 if not. For boot scripts.
  --json               With --once: print the interface statuses as JSON (as offloadctl list --json).
  -h, --help           Show this help.
  -V, --version        Show the version.

SIGNALS
  SIGHUP               Reload the policy (a bad policy is rejected; the running one stays).
  SIGTERM, SIGINT      Stop.

EXIT STATUS
  0  stopped cleanly (--once: all compliant)
  1  --once: some interface is not compliant; or a runtime failure
  2  usage error or invalid policy (the message names file, line and column)

Needs CAP_NET_ADMIN (run as root; other users prefix sudo). See offloadctl(1) to query it.
`;

export function main(argv: string[]): void {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        policy: { type: 'string' },
        'state-dir': { type: 'string', default: DEFAULT_STATE_DIR },
        'sysfs-root': { type: 'string', default: DEFAULT_SYSFS_ROOT },
        'log-level': { type: 'string', default: 'info' },
        'log-target': { type: 'string', default: 'auto' },
        'netlink-rcvbuf': { type: 'string' },
        socket: { type: 'string', default: DEFAULT_SOCKET_PATH },
        'socket-group': { type: 'string' },
        'admin-group': { type: 'string' },
        'watch-policy': { type: 'boolean', default: false },
        'metrics-listen': { type: 'string' },
        'metrics-textfile': { type: 'string' },
        attribution: { type: 'string', default: 'on' },
        once: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', short: 'V', default: false },
      },
    }));
  } catch (error) {
    usageError((error as Error).message);
  }
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (values.version) {
    process.stdout.write(`${versionLine('offloadd')}\n`);
    return;
  }
  const level = values['log-level'] as Level;
  if (!LEVELS.includes(level)) usageError(`--log-level must be one of ${LEVELS.join(', ')}`);
  const target = values['log-target'] as LogTarget;
  if (!['auto', 'journal', 'console'].includes(target)) usageError('--log-target must be auto, journal or console');
  if (values['watch-policy'] && values.policy === undefined) usageError('--watch-policy needs --policy FILE');
  if (values['watch-policy'] && values.once) usageError('--watch-policy and --once exclude each other');
  if (values.attribution !== 'on' && values.attribution !== 'off') usageError('--attribution must be on or off');
  const rcvbufText = values['netlink-rcvbuf'];
  // Number('') is 0 and Number('0x10') is 16: accept plain decimal digits only.
  const rcvbuf = rcvbufText === undefined ? undefined : /^\d+$/.test(rcvbufText) ? Number(rcvbufText) : Number.NaN;
  if (rcvbuf !== undefined) {
    try {
      checkReceiveBufferBytes(rcvbuf);
    } catch {
      usageError(
        `--netlink-rcvbuf: ${JSON.stringify(rcvbufText)} is not a whole number of bytes from ${MIN_RECEIVE_BUFFER_BYTES} to ${MAX_RECEIVE_BUFFER_BYTES}`,
      );
    }
  }

  // Metrics settings are checked before anything else happens: a wrong one is exit 2 at once.
  const metricsListenText = values['metrics-listen'];
  const metricsTextfile = values['metrics-textfile'];
  if (values.once && (metricsListenText !== undefined || metricsTextfile !== undefined))
    usageError('--metrics-listen and --metrics-textfile are for the daemon, not --once');
  let metricsListen: ListenAddress | null = null;
  try {
    if (metricsListenText !== undefined) metricsListen = parseListenAddress(metricsListenText);
    if (metricsTextfile !== undefined) checkTextfilePath(metricsTextfile);
  } catch (error) {
    fail(error);
  }

  const log = createLog({ level, target });
  const options: DaemonOptions = {
    policyPath: values.policy ?? null,
    sysfsRoot: values['sysfs-root'],
    stateDir: values['state-dir'],
    receiveBufferBytes: rcvbuf,
  };

  if (values.once) {
    // As for the daemon: a stop during the pass waits for its end (moments), so every change is
    // recorded; the process exits right after it anyway.
    const finishFirst = (): void => undefined;
    process.once('SIGTERM', finishFirst);
    process.once('SIGINT', finishFirst);
    try {
      const statuses = runOnce(options, log).map((status) => statusView(status));
      process.stdout.write(
        values.json ? `${JSON.stringify({ interfaces: statuses }, null, 2)}\n` : formatOnceReport(statuses),
      );
      process.exitCode = statuses.every((status) => status.compliant) ? EXIT.ok : EXIT.notCompliant;
    } catch (error) {
      fail(error);
    }
    return;
  }

  let running: ReturnType<typeof startService>;
  try {
    running = startService(
      options,
      {
        socketPath: values.socket,
        socketGroup: values['socket-group'] ?? null,
        adminGroup: values['admin-group'] ?? null,
        watchPolicy: values['watch-policy'] && values.policy !== undefined ? values.policy : null,
        metricsListen,
        metricsTextfile: metricsTextfile ?? null,
        attribution: values.attribution === 'on',
      },
      log,
    );
  } catch (error) {
    fail(error);
  }
  const { service, started } = running;
  // Before anything changes: a stop asked for during the initial reconcile is handled once it
  // ends (the pass is synchronous), so every change it made is in the ledger; never the default
  // action.
  const stop = (signal: string): void => {
    log.log('info', `Received ${signal}`);
    void service
      .stop()
      .then(() => log.close())
      .then(() => process.exit(EXIT.ok));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  started.catch((error: unknown) => fail(error));
  process.on('SIGHUP', () => service.reload());
}

function usageError(message: string): never {
  process.stderr.write(`offloadd: ${message}\nTry 'offloadd --help'.\n`);
  process.exit(EXIT.usage);
}

function fail(error: unknown): never {
  flushStderr(); // the log lines before the error come first
  if (error instanceof PolicyError) {
    process.stderr.write(`offloadd: invalid policy: ${error.toString()}\n`);
    process.exit(EXIT.usage);
  }
  if (error instanceof UsageError) {
    process.stderr.write(`offloadd: ${error.message}${error.hint ? `\n  hint: ${error.hint}` : ''}\n`);
    process.exit(EXIT.usage);
  }
  if (error instanceof OffloaddError) {
    process.stderr.write(`offloadd: ${error.message}${error.hint ? `\n  hint: ${error.hint}` : ''}\n`);
    process.exit(1);
  }
  process.stderr.write(`offloadd: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
}
