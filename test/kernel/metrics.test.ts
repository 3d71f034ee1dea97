/**
 * Prometheus metrics against a real daemon in its own namespace: a real Prometheus scrapes
 * --metrics-listen, promtool checks the HTTP answer and the --metrics-textfile, and settings that
 * cannot work stop the daemon at start (exit 2) before it changes anything.
 */
import { strict as assert } from 'node:assert';
import { execFile, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type DaemonProcess, eachTestInItsOwnNetns, type Netns, REPO_ROOT, waitFor } from '../helpers/netns';
import { Prometheus } from '../helpers/prometheus';
import { listPromqlExpressions, RULES_FILE } from '../helpers/promql';
import { waitForAsync } from '../helpers/wait';

const OFFLOADD = path.join(REPO_ROOT, 'bin', 'offloadd');
const METRICS_ADDRESS = '127.0.0.1:9747';
/** The kernel takes any byte in a name but '/', ':', whitespace and NUL: quotes and backslashes included. */
const ODD_NAME = 'up"q\\z';
/** As every output shows it: a backslash escaped, so no two names are shown alike (src/events/link-name.ts). */
const ODD_NAME_SHOWN = 'up"q\\\\z';
/** The shown name as the text format writes it inside a label value. */
const ODD_NAME_ESCAPED = 'up\\"q\\\\\\\\z';

const POLICY = `
flapping: { max_corrections: 100, window: 60, max_backoff: 8 }
rules:
  - name: uplinks
    match: { name: "up*", kind: veth }
    features: { gro: off, gso: off }
`;

/** A safety net for an offloadd run expected to exit by itself. */
const BRIEF_RUN_TIMEOUT_MS = 20_000;

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

/** GET http://ADDRESS/PATH from inside the namespace: status, content type and body. */
function httpGet(
  ns: Netns,
  urlPath = '/metrics',
  method = 'GET',
): Promise<{ status: number; contentType: string; body: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      'ip',
      [
        'netns',
        'exec',
        ns.name,
        'curl',
        '-sS',
        '--max-time',
        '10',
        ...(method === 'HEAD' ? ['-I', '-o', '/dev/null'] : ['-X', method]),
        '-w',
        '\n%{http_code} %{content_type}',
        `http://${METRICS_ADDRESS}${urlPath}`,
      ],
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) return reject(new Error(`curl: ${stderr.trim() || error.message}`));
        const cut = stdout.lastIndexOf('\n');
        const [status, ...type] = stdout.slice(cut + 1).split(' ');
        resolve({ status: Number(status), contentType: type.join(' '), body: stdout.slice(0, cut) });
      },
    );
  });
}

/** `promtool check metrics` on `text`: its complaints ('' when clean). */
function promtoolProblems(text: string): string {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return `${result.stdout}${result.stderr}`.trim() + (result.status === 0 ? '' : ` (exit ${result.status})`);
}

/** The value of the sample `name{labels}` in an exposition, or null. */
function sampleValue(text: string, series: string): number | null {
  for (const line of text.split('\n')) if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  return null;
}

/** Runs offloadd in `ns` expecting it to refuse to start; never hangs the suite if it does start. */
function offloaddRefuses(ns: Netns, args: string[], prefix: string[] = []): Run {
  const [command, ...prefixArgs] = [...prefix, 'ip'];
  const result = spawnSync(
    command,
    [
      ...prefixArgs,
      'netns',
      'exec',
      ns.name,
      process.execPath,
      OFFLOADD,
      '--policy',
      path.join(ns.tmp, 'policy.yaml'),
      '--state-dir',
      path.join(ns.tmp, 'state-refused'),
      '--socket',
      path.join(ns.tmp, 'refused.sock'),
      '--log-target',
      'console',
      ...args,
    ],
    { encoding: 'utf8', timeout: BRIEF_RUN_TIMEOUT_MS, killSignal: 'SIGKILL' },
  );
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Hostile metrics clients as a script run inside the namespace: `node -e HOSTILE MODE ADDRESS N`.
 *   pipeline: one connection sends N pipelined GETs at once, prints "sent", starts reading when
 *             stdin gives a line, and prints the complete 200s it got and whether it was cut off.
 *   trickle:  N connections each send a byte every 200 ms, also after the server's 408 or FIN
 *             (allowHalfOpen), until stdin ends.
 *   hold:     N connections that send nothing and never close, until stdin ends; prints "held"
 *             once each has connected and, for those refused, got its 503.
 */
const HOSTILE = `const net = require('net');
const [mode, address, count] = [process.argv[1], process.argv[2], Number(process.argv[3])];
const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
const open = () => { const s = net.connect({ host, port, allowHalfOpen: true }); s.on('error', () => {}); return s; };
process.stdin.on('end', () => process.exit(0)); process.stdin.resume();
if (mode === 'pipeline') {
  const s = open(); let text = ''; let answers = 0; s.pause();
  s.on('connect', () => s.write('GET /metrics HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n'.repeat(count), () => console.log('sent')));
  process.stdin.once('data', () => s.resume());
  s.on('data', (d) => { text += d.toString('latin1'); let i; while ((i = text.indexOf('HTTP/1.1 200 OK')) >= 0) { answers++; text = text.slice(i + 15); }
    if (answers === count) { console.log(JSON.stringify({ answers, closed: false })); process.exit(0); } });
  s.on('close', () => { console.log(JSON.stringify({ answers, closed: true })); process.exit(0); });
} else if (mode === 'trickle') {
  for (let i = 0; i < count; i++) { const s = open(); s.on('connect', () => { s.write('G'); const t = setInterval(() => s.destroyed ? clearInterval(t) : s.write('E'), 200); }); }
} else {
  let ready = 0; const done = () => { if (++ready === count) console.log('held'); };
  for (let i = 0; i < count; i++) { const s = open(); let counted = false; const once = () => { if (!counted) { counted = true; done(); } };
    s.on('connect', () => setTimeout(once, 300)); s.on('data', once); }
}`;

/** Runs HOSTILE in the namespace; its stdin held open until `stop()`. */
interface HostileClients {
  output(): string;
  /** Sends a line to the script's stdin (pipeline: start reading). */
  tell(): void;
  stop(): void;
}

function hostile(ns: Netns, mode: 'pipeline' | 'trickle' | 'hold', count: number): HostileClients {
  const child = spawn(
    'ip',
    ['netns', 'exec', ns.name, process.execPath, '-e', HOSTILE, mode, METRICS_ADDRESS, String(count)],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return {
    output: () => output,
    tell: () => {
      child.stdin.write('go\n');
    },
    stop: () => {
      child.stdin.end();
      child.kill();
    },
  };
}

/** The daemon's open descriptors. */
function descriptors(daemon: DaemonProcess): number {
  return fs.readdirSync(`/proc/${daemon.pid}/fd`).length;
}

describe('Prometheus metrics (real daemon, real Prometheus, own namespace)', function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => {
    ns = created;
  });

  function startWithMetrics(textfile: string): DaemonProcess {
    return ns.startDaemon([
      '--policy',
      ns.file('policy.yaml', POLICY),
      '--metrics-listen',
      METRICS_ADDRESS,
      '--metrics-textfile',
      textfile,
    ]);
  }

  it('is scraped by Prometheus, which sees a drift counted and the interface compliant again; promtool finds both outputs clean', async function () {
    this.timeout(120_000);
    ns.addVeth('up1');
    ns.addVeth(ODD_NAME, 'peer-odd');
    const textDir = path.join(ns.tmp, 'textfile');
    fs.mkdirSync(textDir);
    const textfile = path.join(textDir, 'offloadd.prom');
    const daemon = startWithMetrics(textfile);
    await daemon.ready();

    const first = await httpGet(ns);
    assert.equal(first.status, 200);
    assert.match(first.contentType, /^text\/plain; version=0\.0\.4/);
    assert.equal(promtoolProblems(first.body), '');
    assert.ok(
      first.body.includes(
        `offloadd_interface_compliant{interface="${ODD_NAME_ESCAPED}",driver="veth",pci="",rule="uplinks"} 1`,
      ),
      first.body,
    );

    const prometheus = await Prometheus.start(ns, { targets: [METRICS_ADDRESS] });
    try {
      await prometheus.waitForQuery('up{job="offloadd"}', (vector) => vector[0]?.value === 1);
      await prometheus.waitForQuery(
        'offloadd_interface_compliant{interface="up1"}',
        (vector) => vector.length === 1 && vector[0]?.value === 1,
      );
      // Prometheus parsed the label back into the name every output shows.
      const odd = await prometheus.query(`offloadd_interface_compliant{interface=${JSON.stringify(ODD_NAME_SHOWN)}}`);
      assert.equal(odd.length, 1, JSON.stringify(odd));
      assert.equal(odd[0]?.metric['interface'], ODD_NAME_SHOWN);
      const driftsBefore = (await prometheus.query('offloadd_drifts_total'))[0]?.value ?? NaN;
      assert.equal(driftsBefore, 0);

      ns.setFeatures('up1', 'gro', 'on');
      await daemon.waitForLine(/up1: rx-gro drifted off → on/);
      assert.equal(ns.features('up1')['generic-receive-offload'], false, 'corrected');

      await prometheus.waitForQuery('offloadd_drifts_total', (vector) => (vector[0]?.value ?? 0) > driftsBefore);
      await prometheus.waitForQuery(
        'offloadd_interface_drifts_total{interface="up1"}',
        (vector) => vector[0]?.value === 1,
      );
      await prometheus.waitForQuery(
        'offloadd_interface_compliant{interface="up1"}',
        (vector) => vector.length === 1 && vector[0]?.value === 1,
      );
      // The drift came from a link event: its correction latency was observed.
      await prometheus.waitForQuery('offloadd_correction_duration_seconds_count', (vector) => vector[0]?.value === 1);
    } finally {
      await prometheus.stop();
    }

    // The textfile followed the drift, was replaced atomically (no temporary left) and parses.
    const refreshed = await waitFor(() => {
      const text = fs.readFileSync(textfile, 'utf8');
      return sampleValue(text, 'offloadd_drifts_total') === 1 ? text : null;
    }, 'the textfile to show the drift');
    assert.equal(promtoolProblems(refreshed), '');
    assert.deepEqual(fs.readdirSync(textDir), ['offloadd.prom']);
    assert.equal(fs.statSync(textfile).mode & 0o777, 0o644, 'node-exporter (another user) can read it');
    assert.ok(!refreshed.includes('process_resident_memory_bytes'), 'no process_* (node-exporter has its own)');
    assert.ok(refreshed.includes(`interface="${ODD_NAME_ESCAPED}"`));

    const http = await httpGet(ns);
    assert.equal(promtoolProblems(http.body), '');
    assert.equal(sampleValue(http.body, 'offloadd_drifts_total'), 1);

    // A clean stop removes the textfile: stale values must not outlive the daemon.
    assert.equal(await daemon.stop(), 0);
    assert.deepEqual(fs.readdirSync(textDir), []);
  });

  it('answers every PromQL expression of the dashboard, the alert rules and HARVESTER.md from a real daemon; loads the rules', async function () {
    this.timeout(180_000);
    ns.addVeth('up1');
    const daemon = ns.startDaemon(['--policy', ns.file('policy.yaml', POLICY), '--metrics-listen', METRICS_ADDRESS]);
    await daemon.ready();
    // The `node` label, as the PodMonitor's relabelling adds it on Kubernetes.
    const prometheus = await Prometheus.start(ns, {
      targets: [METRICS_ADDRESS],
      ruleFiles: [RULES_FILE],
      targetLabels: { node: 'node-1' },
    });
    try {
      // A drift, so the correction histogram and the drift counters have something to say; then
      // enough scrapes for rate() and increase() to have two samples in their windows.
      await prometheus.waitForQuery('up{job="offloadd"}', (vector) => vector[0]?.value === 1);
      ns.setFeatures('up1', 'gro', 'on');
      await daemon.waitForLine(/up1: rx-gro drifted off → on/);
      await prometheus.waitForQuery('offloadd_correction_duration_seconds_count', (vector) => vector[0]?.value === 1);
      await prometheus.waitForQuery(
        'count_over_time(offloadd_drifts_total[5m])',
        (vector) => (vector[0]?.value ?? 0) >= 3,
      );

      const expressions = listPromqlExpressions().filter((expression) => !expression.needsKubeStateMetrics);
      assert.ok(expressions.length >= 20, `${expressions.length} expressions`);
      const problems: string[] = [];
      for (const expression of expressions) {
        try {
          if (expression.returnsDataWhenHealthy) {
            await prometheus.waitForQuery(expression.query, (vector) => vector.length > 0, 10_000);
          } else {
            await prometheus.query(expression.query); // parses and runs; empty on a healthy node
          }
        } catch (error) {
          problems.push(`${expression.origin} ${expression.name}: ${expression.query}: ${(error as Error).message}`);
        }
      }
      assert.deepEqual(problems, []);
      // The healthy node fires nothing (alerts only; kube-state-metrics alerts have no input here).
      const firing = await prometheus.query('ALERTS{alertstate="firing"}');
      assert.deepEqual(
        firing.map((sample) => sample.metric['alertname']),
        [],
      );
    } finally {
      await prometheus.stop();
    }
  });

  it('drops the label sets of an interface that is deleted; answers 404 and 405 off the one route', async function () {
    ns.addVeth('up1');
    ns.addVeth('up2');
    const textfile = path.join(ns.tmp, 'offloadd.prom');
    const daemon = startWithMetrics(textfile);
    await daemon.ready();
    const before = await httpGet(ns);
    assert.match(before.body, /offloadd_interface_compliant\{interface="up2",[^}]*\} 1/);
    assert.equal(sampleValue(before.body, 'offloadd_interfaces_managed'), 2);

    // A link that appears now: its time to compliance is observed once.
    ns.addVeth('up3');
    // (Per-interface lines may lag by up to a second: the block is rebuilt at most once a second.)
    await waitForAsync(async () => {
      const answer = await httpGet(ns);
      return (
        sampleValue(answer.body, 'offloadd_exposure_window_seconds_count') === 1 &&
        /offloadd_interface_compliant\{interface="up3",[^}]*\} 1/.test(answer.body)
      );
    }, 'the exposure window of up3 to be observed, and up3 compliant');

    ns.ip('link', 'del', 'up2');
    const after = await waitForAsync(async () => {
      const answer = await httpGet(ns);
      return answer.body.includes('interface="up2"') ? null : answer.body;
    }, 'up2 to leave the metrics');
    assert.equal(sampleValue(after, 'offloadd_interfaces_managed'), 2);
    assert.match(after, /offloadd_interface_compliant\{interface="up1",[^}]*\} 1/);
    await waitFor(() => !fs.readFileSync(textfile, 'utf8').includes('interface="up2"'), 'up2 to leave the textfile');

    assert.equal((await httpGet(ns, '/')).status, 404);
    assert.equal((await httpGet(ns, '/metricsx')).status, 404);
    assert.equal((await httpGet(ns, '/metrics', 'POST')).status, 405);
    assert.equal((await httpGet(ns, '/metrics?x=1')).status, 200);
    const head = await httpGet(ns, '/metrics', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '', 'HEAD: headers only');
    // Two requests over one kept-alive connection, as Prometheus scrapes; then headers too large.
    const twice = ns.exec(
      'curl',
      '-sS',
      '-o',
      '/dev/null',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{num_connects}\n',
      `http://${METRICS_ADDRESS}/metrics`,
      `http://${METRICS_ADDRESS}/metrics`,
    );
    assert.deepEqual(twice.trim().split('\n'), ['200 1', '200 0'], 'the second request reused the connection');
    const huge = ns.exec(
      'curl',
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '-H',
      `X-Big: ${'x'.repeat(10_000)}`,
      `http://${METRICS_ADDRESS}/metrics`,
    );
    assert.equal(huge, '431');
    assert.equal((await httpGet(ns)).status, 200, 'still answering');
    assert.equal(daemon.exitCode, null, 'still running');
  });

  it('metrics: pipelined requests are answered one per response cycle, every one, without cutting the client (issue 20 #5)', async function () {
    this.timeout(120_000);
    ns.ipBatch(Array.from({ length: 20 }, (_, i) => `link add up-m${i} type veth peer name peer-m${i}`));
    const daemon = ns.startDaemon(['--policy', ns.file('policy.yaml', POLICY), '--metrics-listen', METRICS_ADDRESS]);
    await daemon.ready();
    // 1,500 requests in one write (tens of MB of answers), and nothing read for now.
    const client = hostile(ns, 'pipeline', 1500);
    try {
      await waitFor(() => client.output().includes('sent'), 'the requests to be sent');
      // Other scrapes are served meanwhile: the daemon has turned since it got the requests.
      assert.equal((await httpGet(ns)).status, 200);
      client.tell();
      const result = await waitFor(() => client.output().split('\n')[1], 'the pipelining client to finish', 60_000);
      assert.deepEqual(JSON.parse(result), { answers: 1500, closed: false }, 'every request answered, none cut off');
    } finally {
      client.stop();
    }
    assert.equal((await httpGet(ns)).status, 200);
    assert.equal(daemon.exitCode, null);
  });

  it('metrics: slots held by trickled bytes are freed at the request deadline, which bytes do not extend (issue 20 #6)', async function () {
    this.timeout(120_000);
    const daemon = ns.startDaemon(['--policy', ns.file('policy.yaml', POLICY), '--metrics-listen', METRICS_ADDRESS]);
    await daemon.ready();
    const trickle = hostile(ns, 'trickle', 8);
    try {
      // All 8 slots trickled into; within the 5 s deadline (and after) a scraper gets in again.
      await waitForAsync(async () => (await httpGet(ns)).status === 503, 'the trickling clients to hold every slot');
      await waitForAsync(async () => (await httpGet(ns)).status === 200, 'a slot to be freed', 30_000);
    } finally {
      trickle.stop();
    }
  });

  it('metrics: refused connections are closed at once and hold no descriptor (issue 20 #7)', async function () {
    this.timeout(120_000);
    const daemon = ns.startDaemon(['--policy', ns.file('policy.yaml', POLICY), '--metrics-listen', METRICS_ADDRESS]);
    await daemon.ready();
    const before = descriptors(daemon);
    const clients = hostile(ns, 'hold', 8 + 300);
    try {
      await waitFor(() => clients.output().includes('held'), 'every client to connect', 60_000);
      await waitFor(
        () => descriptors(daemon) <= before + 8 + 8,
        `the refused connections to be closed (${descriptors(daemon)} descriptors, ${before} before)`,
      );
      const warnings = daemon.linesMatching(/refusing connections/);
      assert.ok(warnings.length <= 2, `${warnings.length} warnings:\n${warnings.slice(0, 5).join('\n')}`);
    } finally {
      clients.stop();
    }
  });

  describe('settings that cannot work: exit 2 before any change', function () {
    beforeEach(() => {
      ns.file('policy.yaml', POLICY);
      ns.addVeth('up1');
      ns.setFeatures('up1', 'gro', 'on', 'gso', 'on');
    });

    function assertNothingChanged(): void {
      const features = ns.features('up1');
      assert.equal(features['generic-receive-offload'], true, 'gro left as it was');
      assert.equal(features['generic-segmentation-offload'], true, 'gso left as it was');
    }

    it('a metrics port already in use', async function () {
      const holder = spawn(
        'ip',
        [
          'netns',
          'exec',
          ns.name,
          process.execPath,
          '-e',
          `require('net').createServer().listen(9747, '127.0.0.1', () => console.log('listening'))`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      try {
        await new Promise<void>((resolve, reject) => {
          holder.stdout.once('data', () => resolve());
          holder.once('exit', (code) => reject(new Error(`port holder exited with ${code}`)));
        });
        const result = offloaddRefuses(ns, ['--metrics-listen', METRICS_ADDRESS]);
        assert.equal(result.status, 2, result.stderr);
        assert.match(result.stderr, /--metrics-listen 127\.0\.0\.1:9747: cannot listen \(EADDRINUSE\)/);
        assert.match(result.stderr, /hint: another process listens on that port/);
        assertNothingChanged();
      } finally {
        holder.kill('SIGKILL');
      }
    });

    it('listen addresses that are not ADDR:PORT, or not on this host', function () {
      for (const [address, message] of [
        ['localhost:9747', /"localhost" is not an IPv4 address/],
        ['127.0.0.1', /"127\.0\.0\.1" is not ADDR:PORT/],
        ['127.0.0.1:0', /port 0 is not from 1 to 65535/],
        ['127.0.0.1:65536', /port 65536 is not from 1 to 65535/],
        ['[zz::1]:9747', /"zz::1" is not an IPv6 address/],
        ['::1:9747', /is not ADDR:PORT/],
        ['', /is not ADDR:PORT/],
        ['192.0.2.1:9747', /cannot listen \(EADDRNOTAVAIL\)/],
      ] as const) {
        const result = offloaddRefuses(ns, ['--metrics-listen', address]);
        assert.equal(result.status, 2, `${address}: ${result.stderr}`);
        assert.match(result.stderr, message, address);
      }
      assertNothingChanged();
    });

    it('a textfile not ending in .prom, in a missing directory, or in one that cannot be written', function () {
      const cases: [string, RegExp, string[]?][] = [
        [path.join(ns.tmp, 'offloadd.txt'), /does not end in \.prom/],
        [path.join(ns.tmp, 'missing', 'offloadd.prom'), /directory .*missing is not there \(ENOENT\)/],
        [ns.tmp, /does not end in \.prom/],
      ];
      const readOnly = path.join(ns.tmp, 'read-only');
      fs.mkdirSync(readOnly);
      // Root writes through permission bits: a read-only mount (private to that run) is what stops it.
      cases.push([
        path.join(readOnly, 'offloadd.prom'),
        /cannot create files in .*read-only \(EROFS\)/,
        [
          'unshare',
          '--mount',
          '--propagation',
          'private',
          'sh',
          '-c',
          'mount -t tmpfs -o ro ro "$0" && exec "$@"',
          readOnly,
        ],
      ]);
      for (const [file, message, prefix] of cases) {
        const result = offloaddRefuses(ns, ['--metrics-textfile', file], prefix);
        assert.equal(result.status, 2, `${file}: ${result.stderr}`);
        assert.match(result.stderr, message, file);
      }
      assert.deepEqual(fs.readdirSync(readOnly), [], 'the private read-only mount left nothing behind');
      assertNothingChanged();
    });
  });
});
