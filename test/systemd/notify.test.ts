/**
 * sd_notify without systemd: a stand-in notify socket receives what the daemon sends and from
 * which pid (NotifyAccess=main accepts only the main pid).
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { Netns, waitFor } from '../helpers/netns';

const RECEIVER = path.resolve(__dirname, '..', '..', '..', 'test', 'helpers', 'notify-receiver.py');

interface Notification { pid: number; fields: Record<string, string>; features?: Record<string, boolean> }

describe('sd_notify (stand-in notify socket)', function () {
  let ns: Netns;
  let receiver: ChildProcess;

  beforeEach(() => {
    ns = new Netns();
  });
  afterEach(async () => {
    receiver?.kill();
    await ns.destroy();
  });

  for (const kind of ['path', 'abstract'] as const) {
    it(`sends READY after the initial reconcile, STATUS, WATCHDOG, RELOADING and STOPPING from the main pid (${kind} socket)`, async () => {
      const address = kind === 'path' ? path.join(ns.tmp, 'notify.sock') : `@offloadd-test-${path.basename(ns.tmp)}`;
      ns.addVeth('up0');
      ns.setFeatures('up0', 'gro', 'on');
      const received: Notification[] = [];
      // Inside the namespace: abstract socket names are scoped to a network namespace.
      receiver = spawn('ip', ['netns', 'exec', ns.name, 'python3', RECEIVER, address], { stdio: ['ignore', 'pipe', 'inherit'] });
      let buffered = '';
      receiver.stdout?.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        let newline;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          const message = JSON.parse(buffered.slice(0, newline)) as Notification & { listening?: string };
          buffered = buffered.slice(newline + 1);
          if (message.listening) continue;
          // What the NIC looked like at the moment READY arrived.
          if (message.fields['READY'] === '1' && received.every((earlier) => earlier.fields['READY'] !== '1')) {
            message.features = ns.features('up0');
          }
          received.push(message);
        }
      });
      await new Promise((resolve) => receiver.stdout?.once('data', resolve));

      const policy = ns.file('p.yaml', 'rules:\n  - name: up\n    match: { name: "up*" }\n    features: { gro: off }\n');
      const daemon = ns.startDaemon(['--policy', policy], { NOTIFY_SOCKET: address, WATCHDOG_USEC: '200000' });
      const ready = await waitFor(() => received.find((message) => message.fields['READY'] === '1'), 'READY=1');
      assert.equal(ready.pid, daemon.pid, 'sent by the main pid');
      assert.equal(ready.features?.['generic-receive-offload'], false, 'compliant before READY');
      assert.match(ready.fields['STATUS'] ?? '', /1 managed, 1 compliant/);
      await waitFor(() => received.filter((message) => message.fields['WATCHDOG'] === '1').length >= 3, 'periodic WATCHDOG=1');

      daemon.signal('SIGHUP');
      const reloading = await waitFor(() => received.find((message) => message.fields['RELOADING'] === '1'), 'RELOADING=1');
      assert.match(reloading.fields['MONOTONIC_USEC'] ?? '', /^\d+$/);
      await waitFor(() => received.slice(received.indexOf(reloading)).some((message) => message.fields['READY'] === '1'), 'READY=1 after reload');

      await daemon.stop();
      assert.ok(received.some((message) => message.fields['STOPPING'] === '1'), 'STOPPING=1');
      assert.ok(received.every((message) => message.pid === daemon.pid), 'everything from the main pid');
    });
  }
});
