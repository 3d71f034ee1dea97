/**
 * The API socket and offloadctl against a real daemon in its own namespace.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { canConnect, type DaemonProcess, Netns, REPO_ROOT, skipUnlessRoot, waitFor } from '../helpers/netns';

const OFFLOADCTL = path.join(REPO_ROOT, 'bin', 'offloadctl');
const OFFLOADD = path.join(REPO_ROOT, 'bin', 'offloadd');

/** Users with no passwd entry, for clients that must count as distinct readers. */
const READER_UIDS = Array.from({ length: 8 }, (_, i) => 62001 + i);

/**
 * A reader holding `watch` connections as a script: `node -e HOLD_WATCHES SOCKET N` opens N, one
 * after the other, prints {accepted, refused} as one JSON line, and holds them until stdin ends.
 */
const HOLD_WATCHES = `const net = require('net');
const [socket, wanted] = [process.argv[1], Number(process.argv[2])];
const held = []; const refused = []; let accepted = 0;
function open(i) {
  if (i >= wanted) { process.stdout.write(JSON.stringify({ accepted, refused }) + '\\n'); return; }
  const s = net.connect(socket); let buffered = ''; let settled = false;
  const next = (outcome) => { if (settled) return; settled = true; outcome(); open(i + 1); };
  s.on('connect', () => s.write('{"jsonrpc":"2.0","id":1,"method":"watch"}\\n'));
  s.on('data', (d) => {
    buffered += d; const end = buffered.indexOf('\\n'); if (end < 0) return;
    const line = buffered.slice(0, end);
    next(() => { if (line.includes('"watching":true')) { accepted++; held.push(s); } else { refused.push(line); s.destroy(); } });
  });
  s.on('error', (e) => next(() => refused.push(String(e.code))));
}
open(0);
process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`;

const POLICY = `
flapping: { max_corrections: 100, window: 60, max_backoff: 8 }
rules:
  - name: uplinks
    match: { name: "up*", kind: veth }
    features: { gro: off, gso: off }
  - name: watched
    mode: report
    match: { name: "rep*" }
    features: { gro: off }
`;

/** A one-request JSON-RPC client as a script: `node -e RAW_CALL SOCKET METHOD` prints the answer line. */
const RAW_CALL = `const s = require('net').connect(process.argv[1]);
s.on('connect', () => s.write(JSON.stringify({ jsonrpc: '2.0', id: 1, method: process.argv[2] }) + '\\n'));
s.on('data', (d) => { process.stdout.write(d); s.destroy(); });`;

interface CtlResult {
  status: number;
  stdout: string;
  stderr: string;
}

function ctl(socket: string, args: string[], asUser?: string[]): CtlResult {
  const command = asUser ? 'setpriv' : process.execPath;
  const fullArgs = asUser
    ? [...asUser, process.execPath, OFFLOADCTL, ...args, '--socket', socket]
    : [OFFLOADCTL, ...args, '--socket', socket];
  const result = spawnSync(command, fullArgs, { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

function json<T>(result: CtlResult): T {
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as T;
}

/** A safety net for an offloadd run expected to exit by itself: a daemon that runs on fails the test. */
const BRIEF_RUN_TIMEOUT_MS = 20_000;

/** Runs offloadd in `ns` expecting it to refuse to start; never hangs the suite if it does start. */
function offloaddRefuses(ns: Netns, args: string[]): CtlResult {
  const result = spawnSync(
    'ip',
    [
      'netns',
      'exec',
      ns.name,
      process.execPath,
      OFFLOADD,
      '--state-dir',
      path.join(ns.tmp, 'state-refused'),
      '--log-target',
      'console',
      ...args,
    ],
    {
      encoding: 'utf8',
      timeout: BRIEF_RUN_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    },
  );
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** Raw socket: send bytes, collect response lines until `count` or close. */
function rawExchange(
  socket: string,
  payload: string | Buffer,
  count = 1,
): Promise<{ lines: string[]; closed: boolean }> {
  return new Promise((resolve) => {
    const client = net.connect(socket);
    const lines: string[] = [];
    let buffered = '';
    let closed = false;
    const finish = (): void => {
      client.destroy();
      resolve({ lines, closed });
    };
    client.on('data', (chunk: Buffer) => {
      // Only the new chunk is searched: a 30 MB answer line is read in linear time.
      if (!chunk.includes(10)) {
        buffered += chunk.toString();
        return;
      }
      buffered += chunk.toString();
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        lines.push(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
      }
      if (lines.length >= count) finish();
    });
    client.on('error', () => undefined);
    client.on('close', () => {
      closed = true;
      resolve({ lines, closed });
    });
    client.write(payload);
  });
}

/** The daemon's resident memory in MiB (it runs as a child of ip netns exec, which execs into node). */
function rssMiB(daemon: DaemonProcess): number {
  const status = fs.readFileSync(`/proc/${daemon.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

/** The daemon's open descriptors. */
function descriptors(daemon: DaemonProcess): number {
  return fs.readdirSync(`/proc/${daemon.pid}/fd`).length;
}

/** A connection that is open (accepted or not), for holding slots. */
function openConnection(socket: string, options: { allowHalfOpen?: boolean } = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const client = net.connect({ path: socket, allowHalfOpen: options.allowHalfOpen ?? false });
    client.on('error', () => undefined);
    client.once('connect', () => resolve(client));
    client.once('error', reject);
  });
}

/** One status call on a fresh connection: its first line, or the reason there was none. */
async function statusLine(socket: string): Promise<string> {
  const answer = await rawExchange(socket, '{"jsonrpc":"2.0","id":1,"method":"status"}\n');
  return answer.lines[0] ?? 'closed';
}

describe('API and offloadctl (real daemon, own namespace)', function () {
  before(function () {
    skipUnlessRoot(this);
  });
  let ns: Netns;
  let daemon: DaemonProcess;
  let socket: string;

  beforeEach(async () => {
    ns = new Netns();
    ns.addVeth('up0');
    ns.addVeth('rep0');
    ns.addVeth('other0');
    ns.setFeatures('up0', 'gro', 'on');
    // World-traversable scratch dir so an unprivileged client can reach the socket.
    fs.chmodSync(ns.tmp, 0o755);
    daemon = ns.startDaemon(['--policy', ns.file('policy.yaml', POLICY), '--socket-group', 'nogroup']);
    socket = daemon.socketPath;
    await daemon.ready();
    fs.chmodSync(daemon.stateDir, 0o755);
  });
  afterEach(async () => {
    await ns.destroy();
  });

  it('answers status, list, show, drift, explain, enforce, check with --json', () => {
    const status = json<{ apiVersion: number; interfaces: { managed: number }; policy: { rules: number } }>(
      ctl(socket, ['status', '--json']),
    );
    assert.equal(status.apiVersion, 1);
    assert.equal(status.policy.rules, 2);
    assert.equal(status.interfaces.managed, 2);

    const list = json<{ interfaces: Array<{ interface: string; compliant: boolean; rule: string }> }>(
      ctl(socket, ['list', '--json']),
    );
    assert.deepEqual(
      list.interfaces.map((entry) => [entry.interface, entry.rule, entry.compliant]),
      [
        ['rep0', 'watched', true],
        ['up0', 'uplinks', true],
      ],
    );
    assert.match(ctl(socket, ['list']).stdout, /^INTERFACE\s+DRIVER\s+PCI\s+RULE/);

    const show = json<{ interface: { interface: string; features: Array<{ feature: string; active: string }> } }>(
      ctl(socket, ['show', 'up0', '--json']),
    );
    assert.equal(show.interface.interface, 'up0');
    assert.deepEqual(
      show.interface.features.map((feature) => [feature.feature, feature.active]),
      [
        ['rx-gro', 'off'],
        ['tx-generic-segmentation', 'off'],
      ],
    );

    const drift = json<{ records: Array<{ event: string; interface: string; feature: string }> }>(
      ctl(socket, ['drift', '--interface', 'up0', '--json']),
    );
    assert.ok(drift.records.some((record) => record.event === 'initial' && record.feature === 'rx-gro'));

    const explain = json<{
      interface: string;
      rule: string | null;
      rules: Array<{ rule: string; matched: boolean }>;
      plan: unknown[];
    }>(ctl(socket, ['explain', 'other0', '--json']));
    assert.equal(explain.interface, 'other0');
    assert.equal(explain.rule, null);
    assert.deepEqual(
      explain.rules.map((rule) => rule.matched),
      [false, false],
    );
    assert.match(ctl(socket, ['explain', 'other0']).stdout, /No rule matches/);
    const missing = ctl(socket, ['show', 'nope0', '--json']);
    assert.equal(missing.status, 4);
    assert.equal(
      (JSON.parse(missing.stdout) as { error: { code: string } }).error.code,
      'ERR_NOT_FOUND',
      'one error-code scheme',
    );
    const explainUp = ctl(socket, ['explain', 'up0']);
    assert.match(explainUp.stdout, /MATCHES \(applied\)/);
    assert.match(explainUp.stdout, /✓ name: /);

    ns.setFeatures('up0', 'gro', 'on');
    const enforced = json<{ interfaces: Array<{ compliant: boolean }> }>(ctl(socket, ['enforce', 'up0', '--json']));
    assert.equal(enforced.interfaces[0]?.compliant, true);
    assert.equal(ctl(socket, ['check']).status, 0);
    assert.equal(ctl(socket, ['show', 'nonexistent']).status, 4);
  });

  it('check exits 1 when a managed interface is out of policy (report mode drift)', async () => {
    ns.setFeatures('rep0', 'gro', 'on');
    await waitFor(() => ctl(socket, ['check']).status === 1, 'check to report CRITICAL');
    const result = ctl(socket, ['check', '--json']);
    assert.equal(result.status, 1);
    assert.deepEqual((JSON.parse(result.stdout) as { outOfPolicy: string[] }).outOfPolicy, ['rep0']);
  });

  it('lets an unprivileged user read but not reload or enforce', async () => {
    const nobody = ['--reuid=nobody', '--regid=nogroup', '--clear-groups'];
    // The server's decision, from a client that needs nothing of this checkout.
    const asNobody = (method: string): string =>
      spawnSync('setpriv', [...nobody, process.execPath, '-e', RAW_CALL, socket, method], { encoding: 'utf8' }).stdout;
    assert.match(asNobody('status'), /"result":\{"apiVersion":1/);
    assert.match(asNobody('policy.reload'), /"code":1003,"message":"policy\.reload needs root/);
    assert.match(asNobody('enforce'), /"code":1003/);
    await daemon.waitForLine(/refused policy\.reload for uid \d+ \(pid \d+\)/);

    // offloadctl itself, when this checkout is readable by nobody (a clone in a private
    // directory is not; then only the server's side above is checked).
    if (spawnSync('setpriv', [...nobody, 'test', '-r', OFFLOADCTL]).status !== 0) {
      process.stdout.write('      (offloadctl as nobody not run: this checkout is not readable by nobody)\n');
      return;
    }
    assert.equal(ctl(socket, ['status', '--json'], nobody).status, 0);
    const refused = ctl(socket, ['reload'], nobody);
    assert.equal(refused.status, 4, refused.stderr);
    assert.match(refused.stderr, /needs root/);
    assert.equal(ctl(socket, ['enforce'], nobody).status, 4);
  });

  it('keeps the running policy when a reload finds errors, on request and on SIGHUP', async () => {
    const before = json<{ policy: { sha256: string } }>(ctl(socket, ['status', '--json'])).policy.sha256;
    fs.writeFileSync(
      path.join(ns.tmp, 'policy.yaml'),
      'rules:\n  - name: broken\n    match: { name: "x*" }\n    features: { grow: off }\n',
    );
    const reload = ctl(socket, ['reload']);
    assert.equal(reload.status, 2);
    assert.match(reload.stderr, /policy\.yaml:4:\d+: .*grow/);
    daemon.signal('SIGHUP');
    await daemon.waitForLine(/Policy rejected, keeping the running one/);
    assert.equal(json<{ policy: { sha256: string } }>(ctl(socket, ['status', '--json'])).policy.sha256, before);
    fs.writeFileSync(path.join(ns.tmp, 'policy.yaml'), POLICY.replace('up*', 'other*'));
    assert.equal(ctl(socket, ['reload']).status, 0);
    await waitFor(() => ns.features('other0')['generic-segmentation-offload'] === false, 'new policy applied');
  });

  it('refuses rules that can match every interface on reload and in check-policy, with file:line:column', () => {
    const policyFile = path.join(ns.tmp, 'policy.yaml');
    const blanket = [
      [
        'name: "*"',
        /policy\.yaml:9:12: rule "watched" can match every interface: name "\*" matches every interface name/,
      ],
      ['driver: "*"', /policy\.yaml:9:12: rule "watched" can match every interface: driver "\*" matches every driver/],
      [
        'mac: "??:*"',
        /policy\.yaml:9:12: rule "watched" can match every interface: mac "\?\?:\*" matches every MAC address/,
      ],
      ['name: ["rep*", "*"]', /policy\.yaml:9:12: .*name "rep\*", "\*" matches every interface name/],
    ] as const;
    for (const [match, message] of blanket) {
      fs.writeFileSync(policyFile, POLICY.replace('match: { name: "rep*" }', `match: { ${match} }`));
      const reload = ctl(socket, ['reload']);
      assert.equal(reload.status, 2, match);
      assert.match(reload.stderr, message);
      const check = ctl('/nonexistent', ['check-policy', policyFile]);
      assert.equal(check.status, 2, match);
      assert.match(check.stdout, message);
    }
    assert.deepEqual(
      json<{ interfaces: Array<{ interface: string }> }>(ctl(socket, ['list', '--json'])).interfaces.map(
        (entry) => entry.interface,
      ),
      ['rep0', 'up0'],
    );
    // The opt-in loads, and says so loudly.
    fs.writeFileSync(
      policyFile,
      POLICY.replace('match: { name: "rep*" }', 'broad: "test: every interface"\n    match: { name: "*" }'),
    );
    const broad = ctl(socket, ['reload']);
    assert.equal(broad.status, 0, broad.stderr);
    assert.match(broad.stdout, /warning: rule "watched" is broad and matches every interface/);
  });

  it('rejects a policy path that became a FIFO on SIGHUP and on reload, without freezing', async () => {
    const policyFile = path.join(ns.tmp, 'policy.yaml');
    fs.rmSync(policyFile);
    execFileSync('mkfifo', [policyFile]);
    daemon.signal('SIGHUP');
    await daemon.waitForLine(
      /Policy rejected, keeping the running one: .*policy\.yaml: the policy is a FIFO, not a regular file/,
    );
    const reload = ctl(socket, ['reload']);
    assert.equal(reload.status, 2);
    assert.match(reload.stderr, /the policy is a FIFO, not a regular file/);
    assert.equal(ctl(socket, ['status']).status, 0);
  });

  it('survives garbage, oversized lines, many clients and a stalled watcher', async function () {
    this.timeout(120000);
    const garbage = await rawExchange(
      socket,
      Buffer.concat([
        Buffer.from([0, 255, 1, 2]),
        Buffer.from('not json\n{"jsonrpc":"2.0","id":7,"method":"status"}\n'),
      ]),
      2,
    );
    assert.match(garbage.lines[0] ?? '', /"code":-32700/);
    assert.match(garbage.lines[1] ?? '', /"id":7,"result"/, 'the connection lives on after a parse error');

    const unknown = await rawExchange(socket, '{"jsonrpc":"2.0","id":1,"method":"nope"}\n');
    assert.match(unknown.lines[0] ?? '', /"code":-32601/);

    const huge = await rawExchange(socket, Buffer.alloc(10 * 1024 * 1024, 'a'));
    assert.match(huge.lines[0] ?? '', /"code":1004/);

    const answers = await Promise.all(
      Array.from({ length: 200 }, () => rawExchange(socket, '{"jsonrpc":"2.0","id":1,"method":"status"}\n')),
    );
    assert.ok(
      answers.every((answer) => /"result"|"code":1005/.test(answer.lines[0] ?? '')),
      'every client answered or politely refused',
    );
    assert.ok(answers.filter((answer) => /"result"/.test(answer.lines[0] ?? '')).length >= 64);

    // A watcher that never reads while thousands of events happen is dropped, not buffered.
    // (Retried while the server is still releasing the 200 connections above: error 1005.)
    let stalled: net.Socket | null = null;
    while (!stalled) {
      const candidate = net.connect(socket);
      candidate.write('{"jsonrpc":"2.0","id":1,"method":"watch"}\n');
      const first = await new Promise<string>((resolve) =>
        candidate.once('data', (chunk) => resolve(chunk.toString())),
      );
      if (/"watching":true/.test(first)) {
        candidate.pause(); // from now on, never reads
        stalled = candidate;
      } else {
        candidate.destroy();
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    const commands = Array.from({ length: 1500 }, (_, i) => `link add up-w${i} type veth peer name peer-w${i}`);
    ns.ipBatch(commands);
    await daemon.waitForLine(/dropping a watch client/, 60000);
    stalled.destroy();
    assert.equal(daemon.exitCode, null);
    assert.equal(ctl(socket, ['status']).status, 0);
  });

  it('keeps connection slots for root when readers hold every connection they can', async function () {
    this.timeout(120000);
    // Eight users with no other rights than the socket's group each try for ten watch streams.
    const readers = READER_UIDS.map((uid) =>
      spawn(
        'setpriv',
        [`--reuid=${uid}`, '--regid=nogroup', '--clear-groups', process.execPath, '-e', HOLD_WATCHES, socket, '10'],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      ),
    );
    try {
      const summaries = await Promise.all(
        readers.map(
          (reader) =>
            new Promise<{ accepted: number; refused: string[] }>((resolve, reject) => {
              let out = '';
              let err = '';
              reader.stdout?.on('data', (chunk: Buffer) => {
                out += chunk.toString();
                if (out.includes('\n')) resolve(JSON.parse(out) as { accepted: number; refused: string[] });
              });
              reader.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
              reader.on('exit', (code) => reject(new Error(`reader exited ${code}: ${err}`)));
            }),
        ),
      );
      const accepted = summaries.map((summary) => summary.accepted);
      assert.ok(
        accepted.every((count) => count <= 8),
        `at most 8 connections per uid: ${accepted.join(', ')}`,
      );
      assert.ok(
        accepted.reduce((a, b) => a + b, 0) <= 56,
        `readers keep off the 8 reserved slots: ${accepted.join(', ')}`,
      );
      const refusals = summaries.flatMap((summary) => summary.refused);
      assert.ok(
        refusals.some((line) =>
          /"code":1005,"message":"too many connections from uid 620\d\d \(at most 8 at once\)"/.test(line),
        ),
        refusals[0],
      );
      assert.ok(
        refusals.some((line) => /kept for root and the admin group/.test(line)),
        refusals[0],
      );
      // Root still gets in, for reading and for changing things.
      assert.equal(ctl(socket, ['status']).status, 0);
      assert.equal(ctl(socket, ['reload']).status, 0);
      await daemon.waitForLine(/refusing connections: too many connections from uid 620\d\d/);
    } finally {
      for (const reader of readers) reader.stdin?.end();
    }
  });

  it('closes a connection whose request line trickles in past its deadline', async function () {
    this.timeout(60000);
    const client = net.connect(socket);
    let received = '';
    client.on('data', (chunk) => (received += chunk.toString()));
    client.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
    await new Promise((resolve) => client.once('connect', resolve));
    // One byte at a time, each well inside the idle timeout: only an absolute deadline ends it.
    client.write('{"jsonrpc":"2.0",');
    const trickle = setInterval(() => client.write(' '), 250);
    try {
      await closed;
    } finally {
      clearInterval(trickle);
    }
    assert.match(received, /"code":1006,"message":"request line not completed within 10000 ms"/);
    await daemon.waitForLine(/its request line took longer than 10000 ms/);
  });

  it('API: a connection that sends nothing is closed at the request deadline from accept, not held until idle (issue 20 #6)', async function () {
    this.timeout(60_000);
    const client = await openConnection(socket);
    const received = await new Promise<string>((resolve) => {
      let text = '';
      client.on('data', (chunk: Buffer) => (text += chunk.toString()));
      client.on('close', () => resolve(text));
    });
    assert.match(received, /"code":1006,"message":"request line not completed within 10000 ms"/);
  });

  it('refuses a request whose id is an object, array or boolean, without running it (JSON-RPC 2.0)', async () => {
    for (const id of ['{"a":1}', '[1]', 'true']) {
      const answer = await rawExchange(socket, `{"jsonrpc":"2.0","id":${id},"method":"policy.reload"}\n`);
      assert.match(
        answer.lines[0] ?? '',
        /^\{"jsonrpc":"2.0","id":null,"error":\{"code":-32600,"message":"invalid request: \\"id\\" must be a string, a number or null/,
        id,
      );
    }
    const status = json<{ counters: { reloads: number } }>(ctl(socket, ['status', '--json']));
    assert.equal(status.counters.reloads, 0, 'none of them was executed');
    const numbered = await rawExchange(socket, '{"jsonrpc":"2.0","id":"a-1","method":"status"}\n');
    assert.match(numbered.lines[0] ?? '', /^\{"jsonrpc":"2.0","id":"a-1","result"/);
  });

  it("checks every method's params before the method runs: unknown, missing, mistyped and out-of-range ones are -32602", async () => {
    const cases: Array<[string, RegExp]> = [
      [
        '{"method":"enforce","params":{"interfaces":"up0"}}',
        /unknown param \\"interfaces\\" \(this method takes interface\)/,
      ],
      ['{"method":"explain","params":{}}', /param \\"interface\\" is required/],
      ['{"method":"interfaces.get","params":{"interface":7}}', /param \\"interface\\" must be a non-empty string/],
      ['{"method":"drift.list","params":{"limit":0}}', /param \\"limit\\" must be an integer from 1 to 100000/],
      ['{"method":"drift.list","params":{"limit":"5"}}', /param \\"limit\\" must be an integer/],
      [
        '{"method":"drift.list","params":{"event":"drifts"}}',
        /param \\"event\\" must be one of initial, drift, unenforceable, flapping, resync/,
      ],
      ['{"method":"policy.reload","params":{"force":true}}', /unknown param \\"force\\" \(this method takes none\)/],
    ];
    for (const [request, message] of cases) {
      const answer = await rawExchange(socket, `${request.replace('{', '{"jsonrpc":"2.0","id":1,')}\n`);
      assert.match(answer.lines[0] ?? '', /"code":-32602/, request);
      assert.match(answer.lines[0] ?? '', message, request);
      assert.match(answer.lines[0] ?? '', /"data":\{"code":"ERR_INVALID_PARAMS"/, request);
    }
    const status = json<{ counters: { reloads: number } }>(ctl(socket, ['status', '--json']));
    assert.equal(status.counters.reloads, 0, 'policy.reload with a bad param was not run');
  });

  it('requires a time zone in drift.list since, and offloadctl turns a local time into one', async () => {
    const local = await rawExchange(
      socket,
      '{"jsonrpc":"2.0","id":1,"method":"drift.list","params":{"since":"2026-11-22T10:00:00"}}\n',
    );
    assert.match(
      local.lines[0] ?? '',
      /"code":-32602,"message":"param \\"since\\" has no time zone: 2026-11-22T10:00:00"/,
    );
    assert.match(local.lines[0] ?? '', /"hint":"[^"]*Z or an offset/);
    const zoned = await rawExchange(
      socket,
      '{"jsonrpc":"2.0","id":1,"method":"drift.list","params":{"since":"2000-01-01T00:00:00+02:00"}}\n',
    );
    assert.match(zoned.lines[0] ?? '', /"result":\{"records":\[\{/);
    const cli = ctl(socket, ['drift', '--since', '2000-01-01T00:00:00', '--json']);
    assert.equal(cli.status, 0, cli.stderr);
    assert.ok((JSON.parse(cli.stdout) as { records: unknown[] }).records.length > 0);
    const garbage = ctl(socket, ['drift', '--since', 'yesterday']);
    assert.equal(garbage.status, 2);
    assert.match(garbage.stderr, /--since/);
  });

  it('escapes control characters of interface names in every offloadctl output and in console logs', async function () {
    this.timeout(60000);
    // The kernel allows any byte but '/', ':' and whitespace: this name switches a terminal to
    // reverse video.
    const name = 'up\x1b[7mX';
    const shown = 'up\\x1b[7mX';
    ns.addVeth(name, 'peer-esc');
    await waitFor(
      () =>
        json<{ interfaces: Array<{ interface: string }> }>(ctl(socket, ['list', '--json'])).interfaces.some(
          (entry) => entry.interface === shown,
        ),
      'the interface to be managed',
    );
    const watcher = spawn(process.execPath, [OFFLOADCTL, 'watch', '--socket', socket], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    let watched = '';
    watcher.stdout?.on('data', (chunk: Buffer) => (watched += chunk.toString()));
    try {
      // Drift until the watcher (subscribed at some point after its start) has seen one.
      await waitFor(() => {
        ns.setFeatures(name, 'gro', 'on');
        return watched.includes(shown);
      }, 'watch to show a drift of the interface');
      const outputs = {
        list: ctl(socket, ['list']).stdout,
        show: ctl(socket, ['show', name]).stdout,
        explain: ctl(socket, ['explain', name]).stdout,
        drift: ctl(socket, ['drift', '--interface', name]).stdout,
        check: ctl(socket, ['check']).stdout,
        enforce: ctl(socket, ['enforce', name]).stdout,
        'not found': ctl(socket, ['show', `${name}-gone`]).stderr,
        watch: watched,
        'console log': daemon.lines.join('\n'),
      };
      for (const [where, text] of Object.entries(outputs)) {
        assert.ok(!text.includes('\x1b'), `${where} prints the escape character raw:\n${text}`);
      }
      for (const where of ['list', 'show', 'explain', 'drift', 'not found', 'watch', 'console log'] as const) {
        assert.ok(outputs[where].includes(shown), `${where} names the interface, escaped:\n${outputs[where]}`);
      }
      // --json carries the name every output shows (src/events/link-name.ts), and the raw name finds it.
      const listed = json<{ interfaces: Array<{ interface: string }> }>(ctl(socket, ['list', '--json']));
      assert.ok(listed.interfaces.some((entry) => entry.interface === shown));
      assert.equal(
        json<{ interface: { interface: string } }>(ctl(socket, ['show', name, '--json'])).interface.interface,
        shown,
      );
    } finally {
      watcher.kill();
    }
  });

  /** Restarts the daemon over a ledger of 100,000 records (made from a real one): deep queries read the files. */
  async function restartWithBigLedger(): Promise<DaemonProcess> {
    await daemon.stop();
    const ledger = path.join(daemon.stateDir, 'ledger.jsonl');
    const record = JSON.parse(fs.readFileSync(ledger, 'utf8').split('\n')[0] ?? '') as Record<string, unknown>;
    fs.writeFileSync(
      ledger,
      Array.from({ length: 100_000 }, (_, i) => `${JSON.stringify({ ...record, seq: i + 1 })}\n`).join(''),
    );
    const big = ns.startDaemon(
      ['--policy', path.join(ns.tmp, 'policy.yaml'), '--socket-group', 'nogroup'],
      {},
      daemon.stateDir,
    );
    await big.ready(60_000);
    return big;
  }

  it('API: pipelined requests from a client that does not read are not buffered without limit (issue 20 #4)', async function () {
    this.timeout(180_000);
    ns.ipBatch(Array.from({ length: 30 }, (_, i) => `link add up-p${i} type veth peer name peer-p${i}`));
    await waitFor(
      () => json<{ interfaces: { managed: number } }>(ctl(socket, ['status', '--json'])).interfaces.managed === 32,
      'the 30 new interfaces to be managed',
    );
    const before = rssMiB(daemon);
    const client = await openConnection(socket);
    client.pause(); // reads nothing for now
    const requests = 20_000;
    client.write(
      Array.from({ length: requests }, (_, i) => `{"jsonrpc":"2.0","id":${i + 1},"method":"interfaces.list"}\n`).join(
        '',
      ),
    );
    // The daemon goes on serving others meanwhile; a few of its turns later, look at its memory.
    for (let i = 0; i < 5; i++) assert.match(await statusLine(socket), /"result":\{"apiVersion":1/);
    const grown = rssMiB(daemon) - before;
    assert.ok(grown < 64, `resident memory grew by ${grown.toFixed(0)} MiB for a client that does not read`);
    // Every answer is still there for a client that reads at last, in order.
    let buffered = '';
    let answered = 0;
    await new Promise<void>((resolve, reject) => {
      client.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('latin1');
        let newline: number;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          answered++;
          if (!line.startsWith(`{"jsonrpc":"2.0","id":${answered},"result":{"interfaces":[`))
            return reject(new Error(`answer ${answered}: ${line.slice(0, 120)}`));
          if (answered === requests) return resolve();
        }
      });
      client.on('close', () => reject(new Error(`closed after ${answered} answers`)));
      client.resume();
    });
    client.destroy();
  });

  it('API: drift.list answers of 100,000 records are produced only as fast as they are read (issue 20 #4)', async function () {
    this.timeout(180_000);
    const big = await restartWithBigLedger();
    const before = rssMiB(big);
    let peak = before;
    // Twelve clients ask for everything and never read.
    const stalled = await Promise.all(Array.from({ length: 12 }, () => openConnection(socket)));
    for (const client of stalled) {
      client.pause();
      client.write('{"jsonrpc":"2.0","id":1,"method":"drift.list","params":{"limit":100000}}\n');
    }
    const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(big))), 100);
    try {
      await big.waitForLine(/did not read its drift answer within 10000 ms/, 60_000);
    } finally {
      clearInterval(sampler);
      for (const client of stalled) client.destroy();
    }
    assert.ok(
      peak - before < 256,
      `resident memory grew by ${(peak - before).toFixed(0)} MiB for twelve stalled readers`,
    );
    // A client that reads gets all of it, as one JSON line.
    const answer = await rawExchange(
      socket,
      '{"jsonrpc":"2.0","id":2,"method":"drift.list","params":{"limit":100000}}\n',
    );
    const records = (JSON.parse(answer.lines[0] ?? '{}') as { result?: { records: unknown[] } }).result?.records;
    assert.equal(records?.length, 100_000, (answer.lines[0] ?? 'no answer').slice(0, 300));
  });

  it('API: an async answer reaches a client that half-closes after sending, as echo | socat does (issue 20 #15)', async function () {
    this.timeout(120_000);
    await restartWithBigLedger();
    // A query that reads the ledger's files (no record matches): its answer comes asynchronously.
    const request = '{"jsonrpc":"2.0","id":1,"method":"drift.list","params":{"interface":"none0"}}';
    const answer = await new Promise<string>((resolve) => {
      const client = net.connect(socket);
      let received = '';
      client.on('data', (chunk) => (received += chunk.toString()));
      client.on('close', () => resolve(received));
      client.on('error', () => undefined);
      // The request and the end of the client's sending side leave together.
      client.on('connect', () => client.end(`${request}\n`));
    });
    assert.equal(answer, '{"jsonrpc":"2.0","id":1,"result":{"records":[]}}\n');
    // docs/API.md's own example.
    const socat = spawnSync('sh', ['-c', `echo '${request}' | socat - UNIX-CONNECT:${socket}`], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(socat.stdout, '{"jsonrpc":"2.0","id":1,"result":{"records":[]}}\n');
  });

  it('API: a notification (no id) is run but never answered (issue 20 #15)', async () => {
    const exchange = await rawExchange(
      socket,
      '{"jsonrpc":"2.0","method":"policy.reload"}\n{"jsonrpc":"2.0","method":"nope"}\n{"jsonrpc":"2.0","id":2,"method":"status"}\n',
    );
    assert.match(exchange.lines[0] ?? '', /^\{"jsonrpc":"2\.0","id":2,"result"/, "the first answer is the request's");
    await daemon.waitForLine(/Policy reloaded from/);
  });

  it('API: refused connections are closed, not half-closed, and hold no descriptor (issue 20 #7)', async function () {
    this.timeout(120_000);
    const held: net.Socket[] = [];
    try {
      while (held.length < 64) held.push(await openConnection(socket));
      const full = descriptors(daemon);
      // 300 refused clients that keep their end open, as the reproduction did.
      const refused = await Promise.all(
        Array.from({ length: 300 }, async () => {
          const client = await openConnection(socket, { allowHalfOpen: true });
          await new Promise((resolve) => client.once('data', resolve));
          return client;
        }),
      );
      held.push(...refused);
      await waitFor(
        () => descriptors(daemon) <= full + 8,
        `the daemon to close the refused connections (has ${descriptors(daemon)}, ${full} when full)`,
      );
    } finally {
      for (const client of held) client.destroy();
    }
  });

  it('API: accept() at the descriptor limit backs off instead of spinning (issue 20 #7)', async function () {
    this.timeout(120_000);
    const limit = descriptors(daemon) + 8;
    const original = execFileSync(
      'prlimit',
      [`--pid=${daemon.pid}`, '--nofile', '--raw', '--noheadings', '-o', 'SOFT,HARD'],
      {
        encoding: 'utf8',
      },
    )
      .trim()
      .split(/\s+/)
      .join(':');
    execFileSync('prlimit', [`--pid=${daemon.pid}`, `--nofile=${limit}:${original.split(':')[1]}`]);
    const clients: net.Socket[] = [];
    try {
      for (let i = 0; i < 40; i++) clients.push(await openConnection(socket));
      await daemon.waitForLine(/accept\(\) failed \(EMFILE\)/);
      // While out of descriptors, a few more turns of the loop: each would have been thousands of lines.
      const waiting = rawExchange(socket, '{"jsonrpc":"2.0","id":1,"method":"status"}\n');
      for (const client of clients) client.destroy();
      assert.match((await waiting).lines[0] ?? '', /"result"/, 'the queued client is served once descriptors are free');
      const lines = daemon.linesMatching(/accept\(\) failed/);
      assert.ok(lines.length <= 2, `${lines.length} lines about accept():\n${lines.slice(0, 5).join('\n')}`);
    } finally {
      for (const client of clients) client.destroy();
      execFileSync('prlimit', [`--pid=${daemon.pid}`, `--nofile=${original}`]);
    }
  });

  it('API: refusal warnings are a count per interval, not re-armed by each close (issue 20 #8)', async function () {
    this.timeout(120_000);
    const held: net.Socket[] = [];
    /** A client that asks for status: kept if let in, closed if refused. */
    const tryConnect = async (): Promise<boolean> => {
      const client = await openConnection(socket);
      client.write('{"jsonrpc":"2.0","id":1,"method":"status"}\n');
      const first = await new Promise<string>((resolve) => {
        client.once('data', (chunk) => resolve(chunk.toString()));
        client.once('close', () => resolve(''));
      });
      if (/"result"/.test(first)) held.push(client);
      else client.destroy();
      return /"result"/.test(first);
    };
    try {
      while (held.length < 64) held.push(await openConnection(socket));
      let refused = 0;
      for (let round = 0; round < 50; round++) {
        // One connection closes: the next client gets its slot, the one after is refused.
        held.shift()?.destroy();
        while (!(await tryConnect())) refused++;
        if (!(await tryConnect())) refused++;
      }
      assert.ok(refused >= 50, `${refused} refusals`);
      const warnings = daemon.linesMatching(/refusing connections/);
      assert.ok(
        warnings.length <= 2,
        `${warnings.length} warnings for ${refused} refusals:\n${warnings.slice(0, 5).join('\n')}`,
      );
    } finally {
      for (const client of held) client.destroy();
    }
  });

  it('exits 3 with a helpful message when the daemon is unreachable', () => {
    const result = ctl(path.join(ns.tmp, 'nothing-here.sock'), ['status']);
    assert.equal(result.status, 3);
    assert.match(result.stderr, /cannot reach offloadd at .*nothing-here\.sock: no such socket/);
    assert.match(result.stderr, /hint: /);
  });

  it('check-policy validates offline and lints risky rules', () => {
    const risky = ns.file(
      'risky.yaml',
      'rules:\n  - name: taps\n    match: { kind: tun }\n    features: { tso: off }\n',
    );
    const lint = ctl('/nonexistent', ['check-policy', risky, '--json']);
    assert.equal(lint.status, 0, lint.stderr);
    const report = JSON.parse(lint.stdout) as { valid: boolean; warnings: Array<{ message: string }> };
    assert.equal(report.valid, true);
    assert.ok(
      report.warnings.some((warning) => /RSC|throughput/i.test(warning.message)),
      JSON.stringify(report.warnings),
    );
    const bad = ctl('/nonexistent', ['check-policy', ns.file('bad.yaml', 'mode: enforce\nrulez: []\n')]);
    assert.equal(bad.status, 2);
    assert.match(bad.stdout + bad.stderr, /bad\.yaml:2:1: /);
  });
});

describe('offloadd start-up checks and the API socket file (real daemon, own namespace)', function () {
  before(function () {
    skipUnlessRoot(this);
  });
  let ns: Netns;
  let policy: string;

  beforeEach(() => {
    ns = new Netns();
    ns.addVeth('up0');
    ns.setFeatures('up0', 'gro', 'on');
    policy = ns.file('policy.yaml', POLICY);
  });
  afterEach(async () => {
    await ns.destroy();
  });

  it('refuses a file, a directory, a link or a live socket at --socket, and an unknown group, before changing anything', async () => {
    const regular = ns.file('notes.txt', 'keep me\n');
    const directory = path.join(ns.tmp, 'a-directory');
    fs.mkdirSync(directory);
    const dangling = path.join(ns.tmp, 'dangling.sock');
    fs.symlinkSync(path.join(ns.tmp, 'nowhere'), dangling);
    const live = path.join(ns.tmp, 'live.sock');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(live, resolve));
    try {
      const cases = [
        [policy, /refusing to replace .*policy\.yaml with the API socket: it is a regular file/],
        [regular, /refusing to replace .*notes\.txt with the API socket: it is a regular file/],
        [directory, /refusing to replace .*a-directory with the API socket: it is a directory/],
        [dangling, /refusing to replace .*dangling\.sock with the API socket: it is a symbolic link/],
        [live, /another process \(offloadd\?\) is already listening on .*live\.sock/],
        [path.join(regular, 'api.sock'), /notes\.txt is not a directory/],
      ] as const;
      for (const [target, message] of cases) {
        const result = offloaddRefuses(ns, ['--policy', policy, '--socket', target]);
        assert.equal(result.status, 1, `${target}: ${result.stderr}`);
        assert.match(result.stderr, message);
        assert.match(result.stderr, /hint: /);
        assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace');
        assert.equal(ns.features('up0')['generic-receive-offload'], true, 'nothing was changed');
      }
      const group = offloaddRefuses(ns, [
        '--policy',
        policy,
        '--socket',
        path.join(ns.tmp, 'free.sock'),
        '--admin-group',
        'no-such-group-offloadd',
      ]);
      assert.equal(group.status, 1, group.stderr);
      assert.match(group.stderr, /no group named "no-such-group-offloadd"/);
      assert.equal(ns.features('up0')['generic-receive-offload'], true, 'nothing was changed');
      assert.equal(fs.readFileSync(policy, 'utf8'), POLICY);
      assert.equal(fs.readFileSync(regular, 'utf8'), 'keep me\n');
      assert.ok(fs.statSync(directory).isDirectory());
      assert.ok(fs.lstatSync(dangling).isSymbolicLink());
      assert.ok(await canConnect(live), 'the live socket is untouched');
    } finally {
      server.close();
    }
  });

  it('refuses at start-up a policy with a rule that can match every interface, changing nothing', () => {
    const blanket = ns.file(
      'blanket.yaml',
      'rules:\n  - name: all\n    match: { driver: "*" }\n    features: { gro: off }\n',
    );
    const result = offloaddRefuses(ns, ['--policy', blanket, '--socket', path.join(ns.tmp, 'free.sock')]);
    assert.equal(result.status, 2, result.stderr);
    assert.match(
      result.stderr,
      /invalid policy: .*blanket\.yaml:3:12: rule "all" can match every interface: driver "\*" matches every driver/,
    );
    assert.equal(ns.features('up0')['generic-receive-offload'], true, 'nothing was changed');
  });

  it('replaces a stale socket left by a crash', async () => {
    const stateDir = path.join(ns.tmp, 'state-stale');
    fs.mkdirSync(stateDir);
    const stale = path.join(stateDir, 'api.sock');
    execFileSync('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', stale]);
    assert.ok(fs.lstatSync(stale).isSocket());
    const daemon = ns.startDaemon(['--policy', policy], {}, stateDir);
    await daemon.ready();
    assert.equal(ctl(daemon.socketPath, ['status']).status, 0);
    assert.equal(await daemon.stop(), 0);
    assert.ok(!fs.existsSync(stale), 'a daemon removes its own socket when it stops');
  });

  it("leaves a newer daemon's socket in place when an older one exits", async () => {
    const older = ns.startDaemon(['--policy', policy]);
    await older.ready();
    const shared = older.socketPath;
    fs.rmSync(shared); // e.g. a careless cleanup; a second daemon may now bind the path
    const newer = ns.startDaemon(['--policy', policy, '--socket', shared]);
    await newer.waitForLine(/Started: /);
    const newerIdentity = fs.lstatSync(shared).ino;
    assert.equal(await older.stop(), 0);
    // The process can be gone before the last of its output has been read from the pipe: wait
    // for the line itself rather than look once.
    await waitFor(
      () => older.lines.some((line) => /is no longer the socket this daemon created .*; left in place/.test(line)),
      `the older daemon's "left in place" line\n--- its last lines:\n${older.lines.slice(-5).join('\n')}`,
    );
    assert.equal(fs.lstatSync(shared).ino, newerIdentity, "the newer daemon's socket is still there");
    assert.equal(json<{ pid: number }>(ctl(shared, ['status', '--json'])).pid, newer.pid);
  });
});
