/**
 * Hostile API and metrics clients for the torture test, run inside the daemon's namespace while
 * the link schedule runs: pipelining without reading, slow readers, connect/close storms,
 * trickled bytes, half-closes and notifications. Seeded and bounded (rounds, and a timeout on
 * every action, since the daemon is SIGSTOPped at times). Prints a JSON summary and exits.
 *
 * `node client-storm.js SOCKET HOST:PORT ROUNDS SEED`
 */
import * as net from 'node:net';
import { seededRandom } from '../helpers/random';

/** No action waits longer than this for the daemon (which may be stopped). */
const ACTION_TIMEOUT_MS = 2000;

export interface StormSummary {
  actions: Record<string, number>;
  /** Answers that arrived for actions that expect one (status after a half-close, a request after a notification). */
  answered: number;
  /** ...and those that timed out (the daemon was stopped, or too busy). */
  timedOut: number;
  /** Answers that were wrong: a notification answered, a garbled line. Must be 0. */
  wrong: string[];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function connectTo(target: net.NetConnectOpts): net.Socket {
  const socket = net.connect(target);
  socket.on('error', () => undefined);
  return socket;
}

/** The first line the socket receives, or null on close or timeout. */
function firstLine(socket: net.Socket): Promise<string | null> {
  return new Promise((resolve) => {
    let buffered = '';
    const timer = setTimeout(() => resolve(null), ACTION_TIMEOUT_MS);
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const newline = buffered.indexOf('\n');
      if (newline >= 0) {
        clearTimeout(timer);
        resolve(buffered.slice(0, newline));
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(null);
    });
  });
}

export async function clientStorm(
  socketPath: string,
  metrics: { host: string; port: number },
  rounds: number,
  seed: number,
): Promise<StormSummary> {
  const random = seededRandom(seed);
  const summary: StormSummary = { actions: {}, answered: 0, timedOut: 0, wrong: [] };
  const api = (): net.Socket => connectTo({ path: socketPath });
  const http = (): net.Socket => connectTo({ host: metrics.host, port: metrics.port, allowHalfOpen: true });
  const expect = (line: string | null, pattern: RegExp, what: string): void => {
    if (line === null) summary.timedOut++;
    else if (pattern.test(line)) summary.answered++;
    else summary.wrong.push(`${what}: ${line.slice(0, 200)}`);
  };
  const actions: Record<string, () => Promise<void>> = {
    async apiPipeline() {
      const socket = api();
      socket.pause();
      socket.write('{"jsonrpc":"2.0","id":1,"method":"interfaces.list"}\n'.repeat(2000));
      await sleep(200);
      socket.destroy();
    },
    async apiSlowReader() {
      const socket = api();
      socket.write('{"jsonrpc":"2.0","id":1,"method":"drift.list","params":{"limit":100000}}\n');
      for (let i = 0; i < 20 && !socket.destroyed; i++) {
        socket.pause();
        await sleep(50);
        socket.resume();
        await sleep(5);
      }
      socket.destroy();
    },
    async apiStorm() {
      await Promise.all(
        Array.from({ length: 100 }, async () => {
          const socket = api();
          await new Promise((resolve) => {
            socket.once('connect', resolve);
            socket.once('close', resolve);
          });
          socket.destroy();
        }),
      );
    },
    async apiHalfClose() {
      const socket = api();
      socket.end('{"jsonrpc":"2.0","id":7,"method":"drift.list","params":{"limit":3}}\n');
      const line = await firstLine(socket);
      socket.destroy();
      // 1005: every slot taken by the storm's other clients; also an answer.
      expect(line, /^\{"jsonrpc":"2\.0","id":(7,"result"|null,"error":\{"code":1005)/, 'half-close');
    },
    async apiNotification() {
      const socket = api();
      socket.write('{"jsonrpc":"2.0","method":"status"}\n{"jsonrpc":"2.0","id":8,"method":"status"}\n');
      const line = await firstLine(socket);
      socket.destroy();
      expect(line, /^\{"jsonrpc":"2\.0","id":(8,"result"|null,"error":\{"code":1005)/, 'notification');
    },
    async metricsPipeline() {
      const socket = http();
      socket.pause();
      socket.write('GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n'.repeat(500));
      await sleep(200);
      socket.destroy();
    },
    async metricsStorm() {
      await Promise.all(
        Array.from({ length: 100 }, async () => {
          const socket = http();
          await new Promise((resolve) => {
            socket.once('connect', resolve);
            socket.once('close', resolve);
          });
          socket.destroy();
        }),
      );
    },
    async metricsTrickle() {
      const sockets = Array.from({ length: 4 }, () => http());
      for (let i = 0; i < 20; i++) {
        for (const socket of sockets) if (!socket.destroyed) socket.write('G');
        await sleep(50);
      }
      for (const socket of sockets) socket.destroy();
    },
  };
  const names = Object.keys(actions);
  for (let round = 0; round < rounds; round++) {
    // One to three actions at once.
    const chosen = Array.from(
      { length: 1 + Math.floor(random() * 3) },
      () => names[Math.floor(random() * names.length)] as string,
    );
    for (const name of chosen) summary.actions[name] = (summary.actions[name] ?? 0) + 1;
    await Promise.all(chosen.map((name) => (actions[name] as () => Promise<void>)()));
  }
  return summary;
}

if (require.main === module) {
  const [socketPath = '', address = '', rounds = '0', seed = '0'] = process.argv.slice(2);
  const colon = address.lastIndexOf(':');
  void clientStorm(
    socketPath,
    { host: address.slice(0, colon), port: Number(address.slice(colon + 1)) },
    Number(rounds),
    Number(seed),
  ).then((summary) => {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    process.exit(0);
  });
}
