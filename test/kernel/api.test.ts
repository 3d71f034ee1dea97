/**
 * The API socket and offloadctl against a real daemon in its own namespace.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Netns, REPO_ROOT, waitFor, type DaemonProcess } from '../helpers/netns';

const OFFLOADCTL = path.join(REPO_ROOT, 'bin', 'offloadctl');

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

interface CtlResult { status: number; stdout: string; stderr: string }

function ctl(socket: string, args: string[], asUser?: string[]): CtlResult {
  const command = asUser ? 'setpriv' : process.execPath;
  const fullArgs = asUser ? [...asUser, process.execPath, OFFLOADCTL, ...args, '--socket', socket] : [OFFLOADCTL, ...args, '--socket', socket];
  const result = spawnSync(command, fullArgs, { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

function json<T>(result: CtlResult): T {
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as T;
}

/** Raw socket: send bytes, collect response lines until `count` or close. */
function rawExchange(socket: string, payload: string | Buffer, count = 1): Promise<{ lines: string[]; closed: boolean }> {
  return new Promise((resolve) => {
    const client = net.connect(socket);
    const lines: string[] = [];
    let buffered = '';
    let closed = false;
    const finish = (): void => {
      client.destroy();
      resolve({ lines, closed });
    };
    client.on('data', (chunk) => {
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

describe('API and offloadctl (real daemon, own namespace)', function () {
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
    const status = json<{ apiVersion: number; interfaces: { managed: number }; policy: { rules: number } }>(ctl(socket, ['status', '--json']));
    assert.equal(status.apiVersion, 1);
    assert.equal(status.policy.rules, 2);
    assert.equal(status.interfaces.managed, 2);

    const list = json<{ interfaces: Array<{ name: string; compliant: boolean; rule: string }> }>(ctl(socket, ['list', '--json']));
    assert.deepEqual(list.interfaces.map((entry) => [entry.name, entry.rule, entry.compliant]), [['rep0', 'watched', true], ['up0', 'uplinks', true]]);
    assert.match(ctl(socket, ['list']).stdout, /^INTERFACE\s+DRIVER\s+PCI\s+RULE/);

    const show = json<{ interface: { name: string; features: Array<{ feature: string; after: boolean }> } }>(ctl(socket, ['show', 'up0', '--json']));
    assert.equal(show.interface.name, 'up0');
    assert.deepEqual(show.interface.features.map((feature) => [feature.feature, feature.after]), [['rx-gro', false], ['tx-generic-segmentation', false]]);

    const drift = json<{ records: Array<{ kind: string; interface: string; feature: string }> }>(ctl(socket, ['drift', '--interface', 'up0', '--json']));
    assert.ok(drift.records.some((record) => record.kind === 'initial' && record.feature === 'rx-gro'));

    const explain = json<{ matchedRule: string | null; rules: Array<{ rule: string; matched: boolean }>; plan: unknown[] }>(ctl(socket, ['explain', 'other0', '--json']));
    assert.equal(explain.matchedRule, null);
    assert.deepEqual(explain.rules.map((rule) => rule.matched), [false, false]);
    assert.match(ctl(socket, ['explain', 'other0']).stdout, /No rule matches/);
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
    const asNobody = (method: string): string => spawnSync('setpriv', [...nobody, process.execPath, '-e', RAW_CALL, socket, method], { encoding: 'utf8' }).stdout;
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
    fs.writeFileSync(path.join(ns.tmp, 'policy.yaml'), 'rules:\n  - name: broken\n    match: { name: "x*" }\n    features: { grow: off }\n');
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

  it('survives garbage, oversized lines, many clients and a stalled watcher', async function () {
    this.timeout(120000);
    const garbage = await rawExchange(socket, Buffer.concat([Buffer.from([0, 255, 1, 2]), Buffer.from('not json\n{"jsonrpc":"2.0","id":7,"method":"status"}\n')]), 2);
    assert.match(garbage.lines[0] ?? '', /"code":-32700/);
    assert.match(garbage.lines[1] ?? '', /"id":7,"result"/, 'the connection lives on after a parse error');

    const unknown = await rawExchange(socket, '{"jsonrpc":"2.0","id":1,"method":"nope"}\n');
    assert.match(unknown.lines[0] ?? '', /"code":-32601/);

    const huge = await rawExchange(socket, Buffer.alloc(10 * 1024 * 1024, 'a'));
    assert.match(huge.lines[0] ?? '', /"code":1004/);

    const answers = await Promise.all(Array.from({ length: 200 }, () => rawExchange(socket, '{"jsonrpc":"2.0","id":1,"method":"status"}\n')));
    assert.ok(answers.every((answer) => /"result"|"code":1005/.test(answer.lines[0] ?? '')), 'every client answered or politely refused');
    assert.ok(answers.filter((answer) => /"result"/.test(answer.lines[0] ?? '')).length >= 64);

    // A watcher that never reads while thousands of events happen is dropped, not buffered.
    // (Retried while the server is still releasing the 200 connections above: error 1005.)
    let stalled: net.Socket | null = null;
    while (!stalled) {
      const candidate = net.connect(socket);
      candidate.write('{"jsonrpc":"2.0","id":1,"method":"watch"}\n');
      const first = await new Promise<string>((resolve) => candidate.once('data', (chunk) => resolve(chunk.toString())));
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

  it('exits 3 with a helpful message when the daemon is unreachable', () => {
    const result = ctl(path.join(ns.tmp, 'nothing-here.sock'), ['status']);
    assert.equal(result.status, 3);
    assert.match(result.stderr, /cannot reach offloadd at .*nothing-here\.sock: no such socket/);
    assert.match(result.stderr, /hint: /);
  });

  it('check-policy validates offline and lints risky rules', () => {
    const risky = ns.file('risky.yaml', 'rules:\n  - name: taps\n    match: { kind: tun }\n    features: { tso: off }\n');
    const lint = ctl('/nonexistent', ['check-policy', risky, '--json']);
    assert.equal(lint.status, 0, lint.stderr);
    const report = JSON.parse(lint.stdout) as { valid: boolean; warnings: Array<{ message: string }> };
    assert.equal(report.valid, true);
    assert.ok(report.warnings.some((warning) => /RSC|throughput/i.test(warning.message)), JSON.stringify(report.warnings));
    const bad = ctl('/nonexistent', ['check-policy', ns.file('bad.yaml', 'mode: enforce\nrulez: []\n')]);
    assert.equal(bad.status, 2);
    assert.match(bad.stdout + bad.stderr, /bad\.yaml:2:1: /);
    void execFileSync;
  });
});
