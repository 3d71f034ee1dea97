/**
 * sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET, sent by the native addon from
 * this (main) process, so systemd accepts it under NotifyAccess=main. A no-op when not started
 * by systemd. (The npm `systemd-notify` package spawns a helper whose messages a hardened unit
 * rejects, and cannot send WATCHDOG/RELOADING/STOPPING.)
 */
import { addon } from '../addon/binding';
import type { Sink } from './stream';

/**
 * Told when sending starts failing (with the error) and when it works again (null): once per
 * change, so a dead socket does not log once per watchdog ping.
 */
export type NotifyHealthListener = (error: Error | null, socket: string) => void;

export class SdNotify {
  private readonly socket: string | null;
  private watchdogTimer: NodeJS.Timeout | null = null;
  private failing = false;
  onHealthChange: NotifyHealthListener | null = null;

  constructor(env: NodeJS.ProcessEnv = process.env) {
    this.socket = env['NOTIFY_SOCKET'] || null;
    const usec = Number(env['WATCHDOG_USEC'] ?? 0);
    const forPid = env['WATCHDOG_PID'];
    this.watchdogUsec = usec > 0 && (!forPid || Number(forPid) === process.pid) ? usec : 0;
  }

  readonly watchdogUsec: number;

  get enabled(): boolean {
    return this.socket !== null;
  }

  send(fields: Record<string, string | number>): void {
    if (!this.socket) return;
    const text = Object.entries(fields)
      .map(([key, value]) => `${key}=${value}`)
      .join('\n');
    try {
      addon.sendDatagram(this.socket, Buffer.from(text), false);
    } catch (error) {
      // systemd gone or socket full: nothing worth dying for, but worth a log line.
      if (!this.failing) {
        this.failing = true;
        this.onHealthChange?.(error as Error, this.socket);
      }
      return;
    }
    if (this.failing) {
      this.failing = false;
      this.onHealthChange?.(null, this.socket);
    }
  }

  ready(status: string): void {
    this.send({ READY: 1, STATUS: status });
  }

  status(status: string): void {
    this.send({ STATUS: status });
  }

  reloading(): void {
    const monotonicUsec = process.hrtime.bigint() / 1000n;
    this.send({ RELOADING: 1, MONOTONIC_USEC: monotonicUsec.toString() });
  }

  stopping(): void {
    this.send({ STOPPING: 1 });
  }

  /**
   * WATCHDOG=1 at half the interval, from a timer on the main event loop: a loop stuck in a
   * long synchronous stretch stops the pings, and systemd restarts us.
   */
  startWatchdog(): void {
    if (!this.enabled || this.watchdogUsec === 0 || this.watchdogTimer) return;
    const periodMs = Math.max(1, Math.floor(this.watchdogUsec / 2000));
    this.send({ WATCHDOG: 1 });
    this.watchdogTimer = setInterval(() => this.send({ WATCHDOG: 1 }), periodMs);
    this.watchdogTimer.unref();
  }

  stopWatchdog(): void {
    if (this.watchdogTimer) clearInterval(this.watchdogTimer);
    this.watchdogTimer = null;
  }
}

/** sd_notify as a sink of the daemon's stream: STATUS= follows the counts as records become durable. */
export function notifySink(notify: SdNotify, summary: () => string): Sink {
  return {
    durable: () => {
      if (notify.enabled) notify.status(summary());
    },
  };
}
