import { strict as assert } from 'node:assert';
import { MIN_RX_PACKETS_TO_JUDGE, trafficEvidence, type CounterSample } from '../../src/doctor/traffic';

function sample(seconds: number, counters: Partial<Omit<CounterSample, 'atNs'>> = {}): CounterSample {
  return {
    atNs: BigInt(Math.round(seconds * 1e9)),
    rxPackets: 0n,
    txPackets: 0n,
    rxBytes: 0n,
    txBytes: 0n,
    rxErrors: 0n,
    txErrors: 0n,
    rxDropped: 0n,
    txDropped: 0n,
    rxOverErrors: 0n,
    rxFifoErrors: 0n,
    rxMissedErrors: 0n,
    driver: null,
    ...counters,
  };
}

describe('doctor: traffic evidence over a window', () => {
  it('computes rates, the average received packet and the verdict small-packets', () => {
    const traffic = trafficEvidence(
      sample(0),
      sample(2, { rxPackets: 160000n, rxBytes: 15360000n, txPackets: 2000n, txBytes: 132000n }),
      1500,
    );
    assert.equal(traffic.windowSec, 2);
    assert.equal(traffic.rx.pps, 80000);
    assert.equal(traffic.rx.avgPacketBytes, 96);
    assert.equal(traffic.rx.bps, 61440000);
    assert.equal(traffic.verdict, 'small-packets');
    assert.match(traffic.note, /average 96 B, under 25 % of the 1500-byte MTU, at 80000 packets\/s/);
  });

  it('calls full-size packets healthy, and GRO-sized ones (above the MTU) too', () => {
    assert.equal(
      trafficEvidence(sample(0), sample(1, { rxPackets: 10000n, rxBytes: 14480000n }), 1500).verdict,
      'healthy',
    );
    assert.equal(
      trafficEvidence(sample(0), sample(1, { rxPackets: 10000n, rxBytes: 640000000n }), 1500).verdict,
      'healthy',
    );
  });

  it('does not judge a quiet interface, however small its packets', () => {
    const few = trafficEvidence(sample(0), sample(5, { rxPackets: 40n, rxBytes: 2400n }), 1500);
    assert.equal(few.verdict, 'quiet');
    assert.match(few.note, /^not enough traffic to judge: 40 packets received in 5\.0 s/);
    // Enough packets, but spread too thin: 100 packets over 10 s is 10 packets/s.
    assert.equal(
      trafficEvidence(sample(0), sample(10, { rxPackets: BigInt(MIN_RX_PACKETS_TO_JUDGE), rxBytes: 6000n }), 1500)
        .verdict,
      'quiet',
    );
    // A burst within a very short window: fast, but too few packets to average.
    assert.equal(trafficEvidence(sample(0), sample(0.1, { rxPackets: 50n, rxBytes: 3000n }), 1500).verdict, 'quiet');
  });

  it('does not blame small received packets on a host that mostly sends (they are ACKs)', () => {
    const traffic = trafficEvidence(
      sample(0),
      sample(1, { rxPackets: 50000n, rxBytes: 3300000n, txPackets: 50000n, txBytes: 72400000n }),
      1500,
    );
    assert.equal(traffic.verdict, 'mostly-sending');
  });

  it('counts a counter that went backwards (driver reset) as no traffic, not as 2^64', () => {
    const traffic = trafficEvidence(
      sample(0, { rxPackets: 1000n, rxBytes: 100000n }),
      sample(1, { rxPackets: 10n, rxBytes: 1000n }),
      1500,
    );
    assert.equal(traffic.rx.packets, 0);
    assert.equal(traffic.verdict, 'quiet');
  });

  it('keeps exact deltas of counters beyond 2^53', () => {
    const base = 2n ** 60n;
    const traffic = trafficEvidence(
      sample(0, { rxPackets: base, rxBytes: base }),
      sample(1, { rxPackets: base + 1000n, rxBytes: base + 1500000n }),
      1500,
    );
    assert.equal(traffic.rx.packets, 1000);
    assert.equal(traffic.rx.bytes, 1500000);
  });

  it("sums missed, overrun and fifo errors, and keeps the driver's loss counters that moved", () => {
    const driver = (values: bigint[]): { names: string[]; values: bigint[] } => ({
      names: ['rx_ucast_packets', 'rx_discards', 'rx_total_discard_pkts', 'peer_ifindex', 'rx_l4_csum_errors'],
      values,
    });
    const traffic = trafficEvidence(
      sample(0, { driver: driver([0n, 5n, 10n, 2n, 0n]) }),
      sample(1, {
        rxPackets: 1000n,
        rxBytes: 1500000n,
        rxMissedErrors: 3n,
        rxOverErrors: 1n,
        rxFifoErrors: 1n,
        driver: driver([1000n, 25n, 10n, 2n, 4n]),
      }),
      1500,
    );
    assert.equal(traffic.rxMissed, 5);
    assert.deepEqual(traffic.driverCounters, {
      exposed: true,
      lossCounters: [
        { name: 'rx_discards', delta: 20 },
        { name: 'rx_l4_csum_errors', delta: 4 },
      ],
    });
    assert.deepEqual(trafficEvidence(sample(0), sample(1), 1500).driverCounters, { exposed: false, lossCounters: [] });
  });
});
