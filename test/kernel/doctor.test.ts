/**
 * `offloadctl doctor` on real traffic: a veth presented as a BCM57508 (14e4:1750, bnxt_en) through
 * a fake sysfs tree, its peer in a second namespace, addresses this test assigns, and traffic
 * between the two that is bounded in count and time: small UDP datagrams at a steady rate (the
 * symptom), a large TCP transfer (healthy), nothing (quiet). With and without a daemon running.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { DoctorReport, Finding } from '../../src/doctor/types';
import { fakePciDevice, Netns, REPO_ROOT, skipUnlessRoot, waitFor } from '../helpers/netns';

const OFFLOADCTL = path.join(REPO_ROOT, 'bin', 'offloadctl');
const NIC_ADDRESS = '192.0.2.1'; // TEST-NET-1: never routed anywhere
const PEER_ADDRESS = '192.0.2.2';
const UDP_PORT = 5001;
const TCP_PORT = 5002;
/** Every traffic process ends by itself after this, even if the test dies without killing it. */
const TRAFFIC_MAX_SECONDS = 30;

const POLICY = `
rules:
  - name: bcm57508-gro-gso-off
    mode: report          # the daemon records and leaves the NIC as the test set it
    match: { driver: bnxt_en, pci: "14e4:1750" }
    features: { gro: off, gso: off }
`;

/** Receives UDP on argv[1]:argv[2]; prints "ready" when bound and "got" at the first datagram. */
const UDP_RECEIVER = `const s = require('dgram').createSocket('udp4'); let got = false;
s.on('message', () => { if (!got) { got = true; console.log('got'); } });
s.bind(Number(process.argv[2]), process.argv[1], () => console.log('ready'));
setTimeout(() => process.exit(0), ${TRAFFIC_MAX_SECONDS * 1000});`;

/** 64-byte datagrams to argv[1]:argv[2], 20 every 5 ms (~4,000/s), at most 100,000. */
const UDP_SENDER = `const s = require('dgram').createSocket('udp4'); const payload = Buffer.alloc(64, 0x61); let sent = 0;
const timer = setInterval(() => { for (let i = 0; i < 20 && sent < 100000; i++, sent++) s.send(payload, Number(process.argv[2]), process.argv[1]);
  if (sent >= 100000) { clearInterval(timer); s.close(); } }, 5);
setTimeout(() => process.exit(0), ${TRAFFIC_MAX_SECONDS * 1000});`;

/** Accepts TCP on argv[1]:argv[2] and discards it; prints "ready", then "got" after the first MiB. */
const TCP_RECEIVER = `let total = 0, told = false;
require('net').createServer((c) => c.on('data', (d) => { total += d.length; if (!told && total >= 1 << 20) { told = true; console.log('got'); } }))
  .listen(Number(process.argv[2]), process.argv[1], () => console.log('ready'));
setTimeout(() => process.exit(0), ${TRAFFIC_MAX_SECONDS * 1000});`;

/** Writes 64 KiB chunks to argv[1]:argv[2] as fast as the path takes them, at most 8 GiB. */
const TCP_SENDER = `const c = require('net').connect(Number(process.argv[2]), process.argv[1]); const chunk = Buffer.alloc(65536, 0x62); let sent = 0;
const pump = () => { while (sent < 8 * 2 ** 30) { sent += chunk.length; if (!c.write(chunk)) return c.once('drain', pump); } c.end(); };
c.on('connect', pump); c.on('error', () => process.exit(0));
setTimeout(() => process.exit(0), ${TRAFFIC_MAX_SECONDS * 1000});`;

interface Run {
  status: number;
  stdout: string;
  stderr: string;
  ms: number;
}

describe('offloadctl doctor (real traffic between two namespaces)', function () {
  before(function () {
    skipUnlessRoot(this);
  });
  let nicNs: Netns;
  let peerNs: Netns;
  let sysfs: string;
  let policy: string;
  const traffic: ChildProcess[] = [];

  /** A node script in a namespace; resolves once it printed `signal`. */
  async function start(ns: Netns, script: string, args: string[], signal?: string): Promise<ChildProcess> {
    const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e', script, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    traffic.push(child);
    let output = '';
    let exited = false;
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('exit', () => {
      exited = true;
    });
    if (signal)
      await waitFor(() => {
        if (exited) throw new Error(`traffic script exited: ${output}`);
        return output.includes(signal);
      }, `"${signal}" from a traffic script`);
    return child;
  }

  function stopTraffic(): void {
    for (const child of traffic.splice(0)) child.kill('SIGKILL');
  }

  function doctor(args: string[], user: string[] = []): Run {
    const began = process.hrtime.bigint();
    const result = spawnSync(
      'ip',
      ['netns', 'exec', nicNs.name, ...user, process.execPath, OFFLOADCTL, 'doctor', '--sysfs-root', sysfs, ...args],
      {
        encoding: 'utf8',
        env: { ...process.env, NO_COLOR: '1' },
        timeout: 60000,
      },
    );
    return {
      status: result.status ?? -1,
      stdout: result.stdout,
      stderr: result.stderr,
      ms: Number(process.hrtime.bigint() - began) / 1e6,
    };
  }

  /** Without a daemon: a socket path where none listens, so a host's own offloadd never answers. */
  function localDoctor(...args: string[]): Run {
    return doctor(['--policy', policy, '--socket', path.join(nicNs.tmp, 'no-daemon.sock'), ...args]);
  }

  function report(run: Run, status: number): DoctorReport {
    assert.equal(run.status, status, `exit ${run.status}\n${run.stderr}\n${run.stdout}`);
    return JSON.parse(run.stdout) as DoctorReport;
  }

  const findingIds = (doc: DoctorReport): string[] => doc.findings.map((finding) => finding.id);

  beforeEach(() => {
    nicNs = new Netns();
    peerNs = new Netns();
    nicNs.addVeth('bcm0', 'peer0');
    nicNs.ip('link', 'set', 'peer0', 'netns', peerNs.name);
    nicNs.ip('addr', 'add', `${NIC_ADDRESS}/24`, 'dev', 'bcm0');
    peerNs.ip('addr', 'add', `${PEER_ADDRESS}/24`, 'dev', 'peer0');
    nicNs.ip('link', 'set', 'bcm0', 'up');
    peerNs.ip('link', 'set', 'peer0', 'up');
    sysfs = path.join(nicNs.tmp, 'sys');
    fakePciDevice(sysfs, 'bcm0', {
      vendor: '14e4',
      device: '1750',
      driver: 'bnxt_en',
      bus: '0000:3b:00.0',
      subsystemDevice: '5208',
    });
    policy = nicNs.file('policy.yaml', POLICY);
  });

  afterEach(async () => {
    stopTraffic();
    await nicNs.destroy();
    await peerNs.destroy();
  });

  async function smallUdp(): Promise<void> {
    await start(nicNs, UDP_RECEIVER, [NIC_ADDRESS, String(UDP_PORT)], 'ready');
    const receiver = traffic[traffic.length - 1] as ChildProcess;
    let got = false;
    receiver.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('got')) got = true;
    });
    await start(peerNs, UDP_SENDER, [NIC_ADDRESS, String(UDP_PORT)]);
    await waitFor(() => got, 'the first datagram at the receiver');
  }

  function assertSymptom(doc: DoctorReport): Finding {
    const [nic] = doc.interfaces;
    assert.equal(nic?.name, 'bcm0');
    assert.equal(nic.identity.pci, '14e4:1750');
    assert.equal(nic.identity.driver, 'bnxt_en');
    assert.equal(nic.identity.family.member, true);
    assert.equal(nic.identity.family.pattern, '14e4:1750');
    assert.equal(nic.identity.mtu, 1500);
    assert.equal(nic.traffic.verdict, 'small-packets');
    assert.ok(nic.traffic.rx.packets >= 100, `${nic.traffic.rx.packets} packets`);
    assert.deepEqual(
      nic.offloads
        .filter((offload) => offload.as === 'gro' || offload.as === 'gso')
        .map((offload) => [offload.feature, offload.active, offload.wanted]),
      [
        ['rx-gro', true, false],
        ['tx-generic-segmentation', true, false],
      ],
    );
    const symptom = doc.findings[0] as Finding;
    assert.equal(symptom.id, 'gro-gso-symptom');
    assert.equal(symptom.severity, 'critical');
    assert.equal(symptom.interface, 'bcm0');
    // 64-byte payloads: 64 + 8 (UDP) + 20 (IPv4) + 14 (Ethernet) = 106 bytes a frame.
    const average = symptom.evidence['avgRxPacketBytes'] as number;
    assert.ok(average >= 100 && average <= 120, `average ${average} B`);
    assert.equal(symptom.evidence['mtu'], 1500);
    assert.deepEqual(symptom.evidence['on'], ['rx-gro', 'tx-generic-segmentation']);
    assert.match(
      symptom.summary,
      /^average received packet 1\d\d B at .* on a 1500-MTU NIC with rx-gro and tx-generic-segmentation on: this is the BCM57508 GRO\/GSO symptom$/,
    );
    return symptom;
  }

  it('symptom without a daemon: small datagrams at a steady rate on a BCM57508 with GRO/GSO on (exit 1)', async () => {
    nicNs.setFeatures('bcm0', 'gro', 'on', 'gso', 'on');
    await smallUdp();
    const run = localDoctor('bcm0', '--window', '1', '--json');
    const doc = report(run, 1);
    assert.equal(doc.source.daemon, false);
    assert.match(doc.source.daemonUnavailable ?? '', /cannot reach offloadd .*no such socket/);
    assert.equal(doc.source.policy, policy);
    const symptom = assertSymptom(doc);
    assert.match(
      symptom.fix,
      /offloadd is not running: `systemctl enable --now offloadd`.*`ethtool -K bcm0 gro off gso off`/,
    );
    assert.deepEqual(findingIds(doc), ['gro-gso-symptom', 'offloads-not-as-wanted']);

    const text = localDoctor('bcm0', '--window', '1');
    assert.equal(text.status, 1, text.stderr);
    assert.match(text.stdout, /^offloadd is not running \(cannot reach offloadd/);
    assert.match(text.stdout, /CRITICAL {2}average received packet 1\d\d B .* this is the BCM57508 GRO\/GSO symptom/);
    process.stdout.write(`      (doctor --window 1 took ${Math.round(run.ms)} ms)\n`);
  });

  it('symptom with a daemon running: wanted states come from it (report-mode rule)', async () => {
    nicNs.setFeatures('bcm0', 'gro', 'on', 'gso', 'on');
    const daemon = nicNs.startDaemon(['--policy', policy, '--sysfs-root', sysfs]);
    await daemon.ready();
    await smallUdp();
    const doc = report(doctor(['bcm0', '--window', '1', '--json', '--socket', daemon.socketPath]), 1);
    assert.equal(doc.source.daemon, true);
    assert.equal(doc.source.daemonUnavailable, null);
    assert.equal(doc.source.policy, policy);
    const symptom = assertSymptom(doc);
    assert.match(symptom.fix, /rule bcm57508-gro-gso-off is in report mode: set `mode: enforce`/);
    const gaps = doc.findings.find((finding) => finding.id === 'offloads-not-as-wanted') as Finding;
    assert.deepEqual(gaps.evidence['mode'], 'report');
    assert.match(gaps.reason, /report mode: offloadd records the difference and leaves it/);
  });

  it('healthy: a large TCP transfer into the BCM57508 with GRO/GSO off as the policy wants (exit 0)', async () => {
    nicNs.setFeatures('bcm0', 'gro', 'off', 'gso', 'off');
    await start(nicNs, TCP_RECEIVER, [NIC_ADDRESS, String(TCP_PORT)], 'ready');
    const receiver = traffic[traffic.length - 1] as ChildProcess;
    let got = false;
    receiver.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('got')) got = true;
    });
    await start(peerNs, TCP_SENDER, [NIC_ADDRESS, String(TCP_PORT)]);
    await waitFor(() => got, 'the first MiB at the receiver');
    const run = localDoctor('bcm0', '--window', '1', '--json');
    const doc = report(run, 0);
    const [nic] = doc.interfaces;
    assert.equal(nic?.traffic.verdict, 'healthy');
    assert.ok((nic.traffic.rx.avgPacketBytes ?? 0) >= 1500 * 0.25, `average ${nic.traffic.rx.avgPacketBytes} B`);
    assert.ok(nic.traffic.rx.bps > 0);
    assert.deepEqual(doc.findings, []);
    assert.equal(nic.policy.rule, 'bcm57508-gro-gso-off');
    assert.deepEqual(nic.policy.gaps, []);
    assert.match(localDoctor('bcm0', '--window', '1').stdout, /Nothing found\.\n$/);
  });

  it('quiet: no traffic is "not enough traffic to judge", never a symptom; the policy gap is still a finding', async () => {
    nicNs.setFeatures('bcm0', 'gro', 'on', 'gso', 'on');
    const daemon = nicNs.startDaemon(['--policy', policy, '--sysfs-root', sysfs]);
    await daemon.ready();
    for (const doc of [
      report(localDoctor('bcm0', '--window', '1', '--json'), 1),
      report(doctor(['bcm0', '--window', '1', '--json', '--socket', daemon.socketPath]), 1),
    ]) {
      const [nic] = doc.interfaces;
      assert.equal(nic?.traffic.verdict, 'quiet');
      assert.match(nic.traffic.note, /^not enough traffic to judge: \d+ packets? received in 1\.\d s/);
      assert.deepEqual(findingIds(doc), ['offloads-not-as-wanted']);
    }
  });

  it('every interface by default: MTU against the bridge, GRO off on the bridge only, TSO turned off on a tap', () => {
    nicNs.ip('link', 'add', 'br0', 'type', 'bridge');
    nicNs.ip('link', 'set', 'bcm0', 'master', 'br0');
    nicNs.ip('link', 'set', 'br0', 'mtu', '1400');
    nicNs.setFeatures('bcm0', 'gro', 'on');
    nicNs.setFeatures('br0', 'gro', 'off');
    nicNs.ip('tuntap', 'add', 'tap0', 'mode', 'tap'); // nothing attached: TSO off, requested on
    nicNs.ip('tuntap', 'add', 'tap1', 'mode', 'tap');
    nicNs.setFeatures('tap1', 'tso', 'off');
    const doc = report(localDoctor('--window', '0.2', '--json'), 1);
    assert.deepEqual(doc.interfaces.map((entry) => entry.name).sort(), ['bcm0', 'br0', 'tap0', 'tap1']);
    const nic = doc.interfaces.find((entry) => entry.name === 'bcm0');
    assert.deepEqual(
      nic?.identity.uppers.map((upper) => [upper.name, upper.kind, upper.mtu, upper.gro]),
      [['br0', 'bridge', 1400, false]],
    );
    const summaries = (name: string): string[] =>
      doc.findings
        .filter((finding) => finding.interface === name)
        .map((finding) => `${finding.id}: ${finding.summary}`);
    assert.deepEqual(
      summaries('bcm0').filter((line) => !line.startsWith('offloads-not-as-wanted')),
      [
        'mtu-differs: MTU differs between bcm0 (1500) and its bridge br0 (1400)',
        'gro-off-on-upper-only: GRO off on bridge br0 only, still on on bcm0: it has no effect there',
      ],
    );
    assert.deepEqual(
      summaries('tap1').map((line) => line.split(' (')[0]),
      ['tso-off-on-guest-device: TSO off on a tap'],
    );
    assert.deepEqual(summaries('tap0'), []);
    assert.deepEqual(summaries('br0'), []);
  });

  it('usage errors exit 2, an interface it cannot read exits 3, with --json an error object', () => {
    for (const window of ['0', 'soon', '', '301', '0.01']) {
      const run = localDoctor('bcm0', '--window', window);
      assert.equal(run.status, 2, `--window ${JSON.stringify(window)}: ${run.stderr}`);
      assert.match(run.stderr, /--window must be a number of seconds from 0\.1 to 300/);
    }
    assert.equal(localDoctor('bcm0', '--window', '-1').status, 2); // taken for an option by the parser
    assert.equal(localDoctor('--frobnicate').status, 2);
    const missing = localDoctor('nosuch0', '--window', '0.2', '--json');
    assert.equal(missing.status, 3);
    assert.match(missing.stderr, /no interface "nosuch0" in this network namespace/);
    assert.equal((JSON.parse(missing.stdout) as { error: { code: string } }).error.code, 'ERR_CANNOT_READ');
  });

  it('needs no privilege: the same diagnosis as nobody', function () {
    const nobody = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'];
    if (spawnSync(nobody[0] as string, [...nobody.slice(1), 'test', '-r', OFFLOADCTL]).status !== 0) this.skip(); // checkout not readable by nobody
    nicNs.setFeatures('bcm0', 'gro', 'on');
    fs.chmodSync(nicNs.tmp, 0o755); // the fake sysfs tree and the policy, for nobody to read
    const doc = report(
      doctor(
        ['bcm0', '--window', '0.2', '--json', '--policy', policy, '--socket', path.join(nicNs.tmp, 'none.sock')],
        nobody,
      ),
      1,
    );
    assert.equal(doc.interfaces[0]?.identity.pci, '14e4:1750');
    assert.equal(doc.interfaces[0]?.offloads.find((offload) => offload.feature === 'rx-gro')?.active, true);
  });
});

describe('offloadctl doctor and hostile or changing interfaces (issue 20 #16)', function () {
  before(function () {
    skipUnlessRoot(this);
  });
  let ns: Netns;
  let policy: string;
  beforeEach(() => {
    ns = new Netns();
    policy = ns.file(
      'policy.yaml',
      'rules:\n  - name: m-veths\n    match: { name: "m*", kind: veth }\n    features: { gso: off }\n',
    );
  });
  afterEach(async () => {
    await ns.destroy();
  });

  function doctorIn(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, OFFLOADCTL, 'doctor', ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NO_COLOR: '1' },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('exit', (code) => resolve({ status: code ?? -1, stdout, stderr }));
    });
  }

  it('the doctor escapes interface names and suggests fixes as shell-quoted commands (issue 20 #16)', async () => {
    const hostile = ['m;id>x', "m'$(id)", 'm\u001b[2J'];
    for (const name of hostile) ns.addVeth(name, `p${hostile.indexOf(name)}`);
    const noDaemon = ['--policy', policy, '--socket', path.join(ns.tmp, 'none.sock'), '--window', '0.1'];
    const text = await doctorIn(noDaemon);
    assert.equal(text.status, 1, text.stderr);
    assert.ok(!text.stdout.includes('\u001b'), 'no escape sequence reaches the terminal');
    assert.match(text.stdout, /m\\x1b\[2J|m\\u001b\[2J|m\\e\[2J/);
    assert.ok(text.stdout.includes("ethtool -K 'm;id>x' gso off"), text.stdout);
    assert.ok(text.stdout.includes(`ethtool -K 'm'\\''$(id)' gso off`), text.stdout);
    const json = JSON.parse((await doctorIn([...noDaemon, '--json'])).stdout) as DoctorReport;
    const fixes = json.findings.map((finding) => finding.fix).join('\n');
    assert.ok(fixes.includes("ethtool -K 'm;id>x' gso off"), fixes);
  });

  it('an interface deleted and created again under its name during the window is reported, as the new one (issue 20 #16)', async () => {
    ns.addVeth('m0', 'p0');
    // A stand-in daemon whose `explain` arrives inside the window: the test swaps the interface then.
    const socket = path.join(ns.tmp, 'daemon.sock');
    let swapped = false;
    const server = net.createServer((connection) => {
      let buffered = '';
      connection.on('data', (chunk) => {
        buffered += chunk.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const line of lines) {
          const request = JSON.parse(line) as { id: number; method: string };
          if (request.method === 'explain' && !swapped) {
            swapped = true;
            ns.ip('link', 'del', 'm0');
            ns.addVeth('m0', 'p0');
          }
          const answer =
            request.method === 'status'
              ? { result: { policy: { path: policy } } }
              : { error: { code: -32001, message: 'ask the policy' } };
          connection.write(`${JSON.stringify({ jsonrpc: '2.0', id: request.id, ...answer })}\n`);
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    try {
      const run = await doctorIn(['m0', '--socket', socket, '--window', '0.5', '--json']);
      assert.equal(swapped, true, 'the interface was swapped inside the window');
      const doc = JSON.parse(run.stdout) as DoctorReport;
      assert.equal(run.status, 1, run.stderr + run.stdout);
      assert.deepEqual(
        doc.findings.map((finding) => [finding.id, finding.interface]),
        [['offloads-not-as-wanted', 'm0']],
      );
      assert.ok(
        doc.notes.some((note) => /m0 was deleted and created again during the diagnosis/.test(note)),
        doc.notes.join('\n'),
      );
    } finally {
      server.close();
    }
  });
});
