/**
 * Traffic evidence from two samples of an interface's counters: rates each way, average packet
 * size, loss, and a verdict that refuses to judge when there is too little traffic. Pure.
 */
import type { LinkCounters } from '../addon/binding';
import type { DriverCounter, Direction, TrafficEvidence, TrafficVerdict } from './types';

/**
 * Below this many received packets per second there is nothing to judge: ARP, LLDP, NTP and
 * monitoring keep an idle server NIC at tens of packets per second, and their sizes say nothing
 * about how bulk traffic is carried. A transfer someone calls slow is far above it (even the
 * a download crawling at 255 kB/s in 100-byte packets is ~2,500 packets/s).
 */
export const MIN_RX_PPS_TO_JUDGE = 100;

/** And at least this many packets in the window, so one burst cannot make an average. */
export const MIN_RX_PACKETS_TO_JUDGE = 100;

/**
 * "Far smaller than the MTU allowed": an average received packet under a quarter of the MTU.
 * A healthy bulk receive averages near the MTU (full segments; ACKs are the sender's to receive),
 * above it where GRO/LRO or a virtual device delivers whole segments; the symptom's packets are
 * around 100 bytes on a 1500-byte MTU (under 10 %). A quarter leaves room either way.
 */
export const SMALL_PACKET_FRACTION_OF_MTU = 0.25;

/**
 * Loss worth a finding: one received (or sent) packet in a thousand. TCP throughput falls with
 * the square root of the loss rate (Mathis et al.); at 0.1 % a 10 ms path already cannot exceed
 * ~40 Mbit/s per flow.
 */
export const LOSS_FRACTION_WORTH_REPORTING = 0.001;

/** Driver counters (ethtool -S) whose names say packets were lost or refused. */
const LOSS_COUNTER = /drop|discard|miss|err|no_buf|nobuf|overrun|fifo|abort/i;

/** How many moved loss counters to keep as evidence (bnxt_en has hundreds of per-ring counters). */
const MAX_LOSS_COUNTERS_SHOWN = 10;

/** The counters a sample holds, as plain numbers of packets and bytes (deltas fit easily). */
export interface CounterSample extends Omit<LinkCounters, 'txFifoErrors'> {
  /** Monotonic time of the sample, nanoseconds. */
  atNs: bigint;
  /** ethtool -S names and values; null where the driver has none. */
  driver: { names: readonly string[]; values: ArrayLike<bigint> } | null;
}

/** Counter difference; a counter that went backwards (driver reset) counts as no traffic. */
function delta(after: bigint, before: bigint): number {
  return after >= before ? Number(after - before) : 0;
}

function direction(packets: number, bytes: number, seconds: number): Direction {
  return {
    packets,
    bytes,
    pps: seconds > 0 ? packets / seconds : 0,
    bps: seconds > 0 ? (bytes * 8) / seconds : 0,
    avgPacketBytes: packets > 0 ? bytes / packets : null,
  };
}

function lossCounters(before: CounterSample['driver'], after: CounterSample['driver']): DriverCounter[] {
  if (!before || !after) return [];
  const earlier = new Map<string, bigint>();
  before.names.forEach((name, index) => earlier.set(name, before.values[index] ?? 0n));
  const moved: DriverCounter[] = [];
  after.names.forEach((name, index) => {
    const was = earlier.get(name);
    if (was === undefined || !LOSS_COUNTER.test(name)) return;
    const change = delta(after.values[index] ?? 0n, was);
    if (change > 0) moved.push({ name, delta: change });
  });
  return moved.sort((a, b) => b.delta - a.delta).slice(0, MAX_LOSS_COUNTERS_SHOWN);
}

const round = (value: number): number => Math.round(value);

function verdictOf(
  rx: Direction,
  tx: Direction,
  seconds: number,
  mtu: number | null,
): { verdict: TrafficVerdict; note: string } {
  if (rx.packets < MIN_RX_PACKETS_TO_JUDGE || rx.pps < MIN_RX_PPS_TO_JUDGE) {
    return {
      verdict: 'quiet',
      note:
        `not enough traffic to judge: ${rx.packets} packet${rx.packets === 1 ? '' : 's'} received in ${seconds.toFixed(1)} s ` +
        `(needs at least ${MIN_RX_PACKETS_TO_JUDGE} packets and ${MIN_RX_PPS_TO_JUDGE} packets/s)`,
    };
  }
  const average = rx.avgPacketBytes as number;
  const limit = mtu === null ? null : mtu * SMALL_PACKET_FRACTION_OF_MTU;
  if (limit === null || average >= limit) {
    return {
      verdict: 'healthy',
      note: `received packets average ${round(average)} B${mtu === null ? '' : ` on a ${mtu}-byte MTU`}: no sign of the small-packet symptom`,
    };
  }
  if (tx.bytes > rx.bytes) {
    return {
      verdict: 'mostly-sending',
      note:
        `received packets average ${round(average)} B, but this interface sends more than it receives: ` +
        'small received packets are then mostly TCP acknowledgements; not judged',
    };
  }
  return {
    verdict: 'small-packets',
    note: `received packets average ${round(average)} B, under ${Math.round(SMALL_PACKET_FRACTION_OF_MTU * 100)} % of the ${mtu}-byte MTU, at ${round(rx.pps)} packets/s`,
  };
}

export function trafficEvidence(before: CounterSample, after: CounterSample, mtu: number | null): TrafficEvidence {
  const seconds = Number(after.atNs - before.atNs) / 1e9;
  const rx = direction(delta(after.rxPackets, before.rxPackets), delta(after.rxBytes, before.rxBytes), seconds);
  const tx = direction(delta(after.txPackets, before.txPackets), delta(after.txBytes, before.txBytes), seconds);
  const { verdict, note } = verdictOf(rx, tx, seconds, mtu);
  return {
    windowSec: seconds,
    rx,
    tx,
    rxDropped: delta(after.rxDropped, before.rxDropped),
    rxErrors: delta(after.rxErrors, before.rxErrors),
    rxMissed:
      delta(after.rxMissedErrors, before.rxMissedErrors) +
      delta(after.rxOverErrors, before.rxOverErrors) +
      delta(after.rxFifoErrors, before.rxFifoErrors),
    txDropped: delta(after.txDropped, before.txDropped),
    txErrors: delta(after.txErrors, before.txErrors),
    driverCounters: {
      exposed: after.driver !== null && after.driver.names.length > 0,
      lossCounters: lossCounters(before.driver, after.driver),
    },
    verdict,
    note,
  };
}
