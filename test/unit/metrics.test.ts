import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseListenAddress } from '../../src/api/metrics-http';
import { checkTextfilePath, MetricsTextfile } from '../../src/api/metrics-textfile';
import { UsageError } from '../../src/errors';
import type { LinkMessage } from '../../src/events/link-message';
import type { Actor } from '../../src/attribution/actor';
import { NO_USER_SPACE_REQUEST } from '../../src/attribution/actor';
import type { LedgerRecord, NewRecord } from '../../src/ledger/record';
import type { Log } from '../../src/observe/log';
import type { EventCounts } from '../../src/observe/counters';
import { escapeLabelValue, Histogram } from '../../src/observe/exposition';
import { MAX_ACTOR_LABELS, Metrics, OTHER_ACTORS, type MetricsInputs } from '../../src/observe/metrics';
import type { Policy } from '../../src/policy/types';
import type { InterfaceStatus } from '../../src/reconcile/managed-interfaces';
import type { Trigger } from '../../src/ledger/record';
import { waitFor } from '../helpers/wait';
import { monotonicMs } from '../../src/clock';

/** Every name of the metrics contract (README, Metrics), with its type. */
const CONTRACT: [name: string, type: string][] = [
  ['offloadd_build_info', 'gauge'],
  ['offloadd_feature_interface_info', 'gauge'],
  ['offloadd_policy_info', 'gauge'],
  ['offloadd_policy_rules', 'gauge'],
  ['offloadd_interfaces_managed', 'gauge'],
  ['offloadd_interfaces_compliant', 'gauge'],
  ['offloadd_interfaces_not_compliant', 'gauge'],
  ['offloadd_drifts_total', 'counter'],
  ['offloadd_drifts_by_actor_total', 'counter'],
  ['offloadd_corrections_total', 'counter'],
  ['offloadd_unenforceable_total', 'counter'],
  ['offloadd_failures_total', 'counter'],
  ['offloadd_resyncs_total', 'counter'],
  ['offloadd_policy_reloads_total', 'counter'],
  ['offloadd_last_reconcile_timestamp_seconds', 'gauge'],
  ['offloadd_netlink_receive_buffer_bytes', 'gauge'],
  ['offloadd_ledger_writable', 'gauge'],
  ['offloadd_ledger_held_records', 'gauge'],
  ['offloadd_correction_duration_seconds', 'histogram'],
  ['offloadd_exposure_window_seconds', 'histogram'],
  ['offloadd_interface_compliant', 'gauge'],
  ['offloadd_interface_drifts_total', 'counter'],
  ['offloadd_interface_unenforceable_features', 'gauge'],
  ['process_start_time_seconds', 'gauge'],
  ['process_resident_memory_bytes', 'gauge'],
  ['process_cpu_seconds_total', 'counter'],
];

function status(
  ifindex: number,
  name: string,
  compliant: boolean,
  extra: Partial<InterfaceStatus> = {},
): InterfaceStatus {
  return {
    ifindex,
    name,
    facts: {
      ifindex,
      name,
      kind: null,
      mac: null,
      up: true,
      operstate: 'up',
      master: null,
      driver: 'bnxt_en',
      busInfo: '0000:3b:00.0',
      pci: { vendor: '14e4', device: '1750', subsystemVendor: null, subsystemDevice: null },
    },
    rule: 'uplinks',
    mode: 'enforce',
    compliant,
    since: '',
    lastCheck: '',
    lastDrift: null,
    driftCount: 0,
    features: [],
    ...extra,
  };
}

class FakeDaemon implements MetricsInputs {
  readonly startedAt = new Date();
  policy = {
    path: '/etc/offloadd/po"li\\cy.yaml',
    checksum: 'ab'.repeat(32),
    mode: 'enforce',
    rules: [{}, {}],
  } as unknown as Policy;
  readonly featureInterface = 'ioctl' as const;
  list: InterfaceStatus[] = [];
  events: EventCounts = { resyncs: 1, drifts: 2, corrections: 3, unenforceable: 4, failures: 5, reloads: 6 };
  counts(): { managed: number; compliant: number } {
    return { managed: this.list.length, compliant: this.list.filter((item) => item.compliant).length };
  }
  eventCounts(): EventCounts {
    return this.events;
  }
  rejectedReloads(): number {
    return 7;
  }
  ledgerStatus(): ReturnType<MetricsInputs['ledgerStatus']> {
    return { path: '/x', writable: false, unwritableSince: null, problem: null, heldRecords: 9 };
  }
  statuses(): InterfaceStatus[] {
    return this.list;
  }
  receiveBufferBytes(): number {
    return 16777216;
  }
}

function link(ifindex: number, type: 'new' | 'del' = 'new'): LinkMessage {
  return { type, ifindex } as LinkMessage;
}

function driftRecord(ifindex: number): NewRecord {
  return { event: 'drift', trigger: 'features', action: 'enforced', ifindex, feature: 'rx-gro' };
}

/** The samples of an exposition: series (name and labels) → value; throws on a line that is neither. */
function samples(text: string): Map<string, number> {
  const map = new Map<string, number>();
  assert.ok(text.endsWith('\n'), 'ends with a line feed');
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[a-zA-Z_]\w*="(?:[^"\\\n]|\\[\\"n])*",?)*\})?) (\S+)$/.exec(line);
    assert.ok(match, `not a sample line: ${JSON.stringify(line)}`);
    map.set(match[1] as string, Number(match[2]));
  }
  return map;
}

/**
 * What the daemon's stream hands the metrics, as the reconciler makes it: a link event's receipt
 * time is taken by the next check of that link, with the records that check made; a deleted
 * managed link is released.
 */
class StreamFeed {
  private readonly received = new Map<number, number>();
  private pending: NewRecord[] = [];

  constructor(private readonly metrics: Metrics) {}

  linkEvents(links: LinkMessage[]): void {
    const now = monotonicMs();
    for (const link of links) {
      if (link.type === 'del') {
        this.received.delete(link.ifindex);
        this.metrics.released({ ifindex: link.ifindex, name: link.name, why: 'deleted' });
      } else this.received.set(link.ifindex, now);
    }
  }

  records(records: NewRecord[]): void {
    this.pending.push(...records);
  }

  checked(status: InterfaceStatus, trigger: Trigger): void {
    const receivedAt = this.received.get(status.ifindex) ?? null;
    this.received.delete(status.ifindex);
    const records = this.pending;
    this.pending = [];
    this.metrics.checked({
      facts: status.facts,
      rule: status.rule,
      mode: 'enforce',
      trigger,
      receivedAt,
      result: { outcomes: [], changed: false, compliant: status.compliant, durationUs: 0 },
      records,
      status,
    });
  }
}

describe('metrics exposition (text format 0.0.4)', () => {
  describe('label values', () => {
    it('escape backslash, double quote and line feed, and nothing else', () => {
      assert.equal(escapeLabelValue('up"q\\z'), 'up\\"q\\\\z');
      assert.equal(escapeLabelValue('a\nb'), 'a\\nb');
      assert.equal(escapeLabelValue('eth0\u202e\x1bé'), 'eth0\u202e\x1bé');
      assert.equal(escapeLabelValue(''), '');
    });
  });

  describe('--metrics-listen addresses', () => {
    const good: [string, string | undefined, number][] = [
      ['127.0.0.1:9747', '127.0.0.1', 9747],
      ['0.0.0.0:9747', '0.0.0.0', 9747],
      [':9747', undefined, 9747],
      ['[::1]:9747', '::1', 9747],
      ['[::]:1', '::', 1],
      ['[fe80::1%eth0]:65535', 'fe80::1%eth0', 65535],
    ];
    for (const [text, host, port] of good) {
      it(`takes ${text}`, () => assert.deepEqual(parseListenAddress(text), { host, port }));
    }
    for (const text of [
      '',
      '9747',
      '127.0.0.1',
      'localhost:9747',
      '::1:9747',
      '[::1]',
      '1.2.3:80',
      '1.2.3.4:0',
      '1.2.3.4:65536',
      '1.2.3.4:+80',
      '[x]:80',
      ' 1.2.3.4:80',
    ]) {
      it(`refuses ${JSON.stringify(text)} with a UsageError`, () =>
        assert.throws(() => parseListenAddress(text), UsageError));
    }
  });

  describe('render()', () => {
    it('has every name of the contract, once, with its type', () => {
      const daemon = new FakeDaemon();
      daemon.list = [status(2, 'eth0', true)];
      const text = new Metrics(daemon).render();
      for (const [name, type] of CONTRACT) {
        assert.equal(text.split(`# TYPE ${name} ${type}\n`).length, 2, `${name} ${type}`);
      }
      assert.equal(text.match(/^# TYPE /gm)?.length, CONTRACT.length, 'nothing outside the contract');
    });

    it('reads the counters and health from the daemon', () => {
      const daemon = new FakeDaemon();
      daemon.list = [status(2, 'eth0', true), status(3, 'eth1', false)];
      const values = samples(new Metrics(daemon).render());
      assert.equal(values.get('offloadd_drifts_total'), 2);
      assert.equal(values.get('offloadd_corrections_total'), 3);
      assert.equal(values.get('offloadd_unenforceable_total'), 4);
      assert.equal(values.get('offloadd_failures_total'), 5);
      assert.equal(values.get('offloadd_resyncs_total'), 1);
      assert.equal(values.get('offloadd_policy_reloads_total{result="loaded"}'), 6);
      assert.equal(values.get('offloadd_policy_reloads_total{result="rejected"}'), 7);
      assert.equal(values.get('offloadd_interfaces_managed'), 2);
      assert.equal(values.get('offloadd_interfaces_compliant'), 1);
      assert.equal(values.get('offloadd_interfaces_not_compliant'), 1);
      assert.equal(values.get('offloadd_ledger_writable'), 0);
      assert.equal(values.get('offloadd_ledger_held_records'), 9);
      assert.equal(values.get('offloadd_policy_rules'), 2);
      assert.equal(values.get('offloadd_netlink_receive_buffer_bytes'), 16777216);
      assert.equal(values.get('offloadd_feature_interface_info{feature_interface="ioctl"}'), 1);
      assert.equal(
        values.get(
          `offloadd_policy_info{path="/etc/offloadd/po\\"li\\\\cy.yaml",sha256="${'ab'.repeat(32)}",mode="enforce"}`,
        ),
        1,
      );
    });

    it('labels each managed interface with its name (escaped), driver, PCI id and rule', () => {
      const daemon = new FakeDaemon();
      const odd = status(5, 'up"q\\z', false, {
        rule: 'a\nrule',
        driftCount: 3,
        features: [
          { feature: 'rx-gro', action: 'unenforceable' },
          { feature: 'tx-generic-segmentation', action: 'none' },
        ] as InterfaceStatus['features'],
      });
      odd.facts = { ...odd.facts, driver: null, pci: null };
      daemon.list = [status(2, 'eth0', true), odd];
      const values = samples(new Metrics(daemon).render());
      const eth0 = '{interface="eth0",driver="bnxt_en",pci="14e4:1750",rule="uplinks"}';
      const oddLabels = '{interface="up\\"q\\\\z",driver="",pci="",rule="a\\nrule"}';
      assert.equal(values.get(`offloadd_interface_compliant${eth0}`), 1);
      assert.equal(values.get(`offloadd_interface_compliant${oddLabels}`), 0);
      assert.equal(values.get(`offloadd_interface_drifts_total${oddLabels}`), 3);
      assert.equal(values.get(`offloadd_interface_unenforceable_features${oddLabels}`), 1);
      assert.equal(values.get(`offloadd_interface_unenforceable_features${eth0}`), 0);
    });

    it('drops the label sets of an interface no longer managed', () => {
      const daemon = new FakeDaemon();
      daemon.list = [status(2, 'eth0', true), status(3, 'eth1', true)];
      const metrics = new Metrics(daemon, 0);
      assert.match(metrics.render(), /interface="eth1"/);
      daemon.list = [status(2, 'eth0', true)];
      metrics.released({ ifindex: 3, name: 'eth1', why: 'unmatched' });
      assert.doesNotMatch(metrics.render(), /interface="eth1"/);
    });

    it('leaves out process_* for the textfile (node-exporter exports its own)', () => {
      const text = new Metrics(new FakeDaemon()).render({ processMetrics: false });
      assert.doesNotMatch(text, /^process_/m);
    });

    it('keeps the per-interface lines in a buffer sized to them, with little spare (the memory budget)', () => {
      const daemon = new FakeDaemon();
      daemon.list = Array.from({ length: 1000 }, (_, i) =>
        status(i + 2, `m${i}a`, i % 2 === 0, { rule: i === 7 ? 'ünïcode "rule"' : 'uplinks', driftCount: i }),
      );
      const block = new Metrics(daemon).renderParts().parts[1];
      assert.ok(Buffer.isBuffer(block));
      assert.match(block.toString('utf8'), /interface="m999a"/);
      const spare = block.buffer.byteLength - block.length;
      assert.ok(spare >= 0 && spare < 40_000, `${spare} spare bytes behind ${block.length}`);
    });

    it('rebuilds the per-interface lines into a new block, leaving the one being written as it was', () => {
      const daemon = new FakeDaemon();
      daemon.list = [status(2, 'eth0', true)];
      const metrics = new Metrics(daemon, 0);
      const firstBlock = metrics.renderParts().parts[1] as Buffer;
      daemon.list = [status(2, 'eth0', false)];
      metrics.changed();
      const secondBlock = metrics.renderParts().parts[1] as Buffer; // the first may still be being written
      assert.notEqual(secondBlock.buffer, firstBlock.buffer);
      assert.match(firstBlock.toString(), /interface="eth0"[^}]*\} 1/, 'the earlier block kept its content');
      assert.match(secondBlock.toString(), /interface="eth0"[^}]*\} 0/);
      assert.equal(metrics.renderParts().parts[1], secondBlock, 'nothing changed: the same block again');
    });

    it('rebuilds the per-interface lines at most once per interval, whatever the scrape rate', () => {
      const daemon = new FakeDaemon();
      daemon.list = [status(2, 'eth0', true)];
      const metrics = new Metrics(daemon, 60_000);
      assert.match(metrics.render(), /offloadd_interface_compliant\{interface="eth0"[^}]*\} 1/);
      daemon.list = [status(2, 'eth0', false)];
      metrics.changed();
      assert.match(metrics.render(), /offloadd_interface_compliant\{interface="eth0"[^}]*\} 1/, 'the previous block');
      assert.match(metrics.render(), /^offloadd_interfaces_compliant 0$/m, 'daemon-wide values are live');
    });
  });

  describe('drifts by actor', () => {
    const actor = (comm: string, unit: string | null = null): Actor =>
      ({ pid: 42, comm, unit, userUnit: null, container: null }) as Actor;
    const drift = (seq: number, extra: Partial<LedgerRecord>): LedgerRecord => ({
      seq,
      time: '2026-12-06T00:00:00Z',
      event: 'drift',
      trigger: 'features',
      action: 'enforced',
      ...extra,
    });

    it('labels a service by its unit, a process by its comm, no request as kernel, no attribution as unknown', () => {
      const metrics = new Metrics(new FakeDaemon());
      metrics.durable([
        drift(1, { actor: actor('NetworkManager', 'NetworkManager.service') }),
        drift(2, { actor: actor('NetworkManager', 'NetworkManager.service') }),
        drift(3, { actor: actor('ethtool', 'session-3.scope') }),
        drift(4, { actor: { none: NO_USER_SPACE_REQUEST } }),
        drift(5, {}),
        { ...drift(6, { actor: actor('ethtool') }), event: 'flapping' },
      ]);
      const values = samples(metrics.render());
      assert.equal(values.get('offloadd_drifts_by_actor_total{actor="NetworkManager.service"}'), 2);
      assert.equal(values.get('offloadd_drifts_by_actor_total{actor="ethtool"}'), 1, 'flapping records are not drifts');
      assert.equal(values.get('offloadd_drifts_by_actor_total{actor="kernel"}'), 1);
      assert.equal(values.get('offloadd_drifts_by_actor_total{actor="unknown"}'), 1);
    });

    it(`keeps at most ${MAX_ACTOR_LABELS} actor labels; later actors count under "${OTHER_ACTORS}"`, () => {
      const metrics = new Metrics(new FakeDaemon());
      const records = Array.from({ length: MAX_ACTOR_LABELS + 10 }, (_, i) =>
        drift(i + 1, { actor: actor(`tool${i}`) }),
      );
      metrics.durable(records);
      metrics.durable([drift(100, { actor: actor('tool0') }), drift(101, { actor: actor('a-new-one') })]);
      const series = [...samples(metrics.render()).entries()].filter(([name]) =>
        name.startsWith('offloadd_drifts_by_actor_total{'),
      );
      assert.equal(series.length, MAX_ACTOR_LABELS + 1);
      const values = new Map(series);
      assert.equal(values.get('offloadd_drifts_by_actor_total{actor="tool0"}'), 2, 'a known actor keeps its label');
      assert.equal(values.get(`offloadd_drifts_by_actor_total{actor="${OTHER_ACTORS}"}`), 11);
      assert.equal(
        series.reduce((sum, [, value]) => sum + value, 0),
        MAX_ACTOR_LABELS + 12,
        'every drift is counted once',
      );
    });
  });

  describe('latencies', () => {
    it('observes a correction from the link event that revealed the drift, once per check', () => {
      const daemon = new FakeDaemon();
      const metrics = new Metrics(daemon);
      const feed = new StreamFeed(metrics);
      feed.linkEvents([link(3)]);
      feed.records([driftRecord(3), { ...driftRecord(3), feature: 'tx-generic-segmentation' }]);
      feed.checked(status(3, 'eth1', true), 'features');
      assert.equal(metrics.correction.observations, 1);
      const values = samples(metrics.render());
      assert.equal(values.get('offloadd_correction_duration_seconds_count'), 1);
      assert.equal(values.get('offloadd_correction_duration_seconds_bucket{le="+Inf"}'), 1);
      assert.equal(values.get('offloadd_correction_duration_seconds_bucket{le="1"}'), 1, 'well under a second');
    });

    it('observes no correction latency for a drift found without an event (sweep, resync)', () => {
      const metrics = new Metrics(new FakeDaemon());
      const feed = new StreamFeed(metrics);
      feed.linkEvents([link(3)]); // an earlier event, already handled elsewhere
      feed.records([driftRecord(3)]);
      feed.checked(status(3, 'eth1', true), 'sweep');
      feed.records([driftRecord(3)]);
      feed.checked(status(3, 'eth1', true), 'features'); // no receipt time left
      assert.equal(metrics.correction.observations, 0);
    });

    it('observes the exposure window from the first event of a new link to its first compliant check', () => {
      const metrics = new Metrics(new FakeDaemon());
      const feed = new StreamFeed(metrics);
      feed.linkEvents([link(4)]);
      feed.checked(status(4, 'eth2', false), 'new');
      assert.equal(metrics.exposure.observations, 0, 'not compliant yet');
      feed.linkEvents([link(4)]);
      feed.checked(status(4, 'eth2', true), 'change');
      assert.equal(metrics.exposure.observations, 1);
      feed.checked(status(4, 'eth2', true), 'change');
      assert.equal(metrics.exposure.observations, 1, 'once per appearance');
      feed.checked(status(5, 'eth3', true), 'start');
      assert.equal(metrics.exposure.observations, 1, 'links present at start have no appearance event');
    });

    it('forgets a deleted link: no exposure is observed for it later', () => {
      const metrics = new Metrics(new FakeDaemon());
      const feed = new StreamFeed(metrics);
      feed.linkEvents([link(4)]);
      feed.checked(status(4, 'eth2', false), 'new');
      feed.linkEvents([link(4, 'del')]);
      feed.checked(status(4, 'eth2', true), 'reload');
      assert.equal(metrics.exposure.observations, 0);
    });

    it('keeps cumulative buckets', () => {
      const histogram = new Histogram([0.001, 0.01]);
      for (const seconds of [0.0005, 0.001, 0.005, 2]) histogram.observe(seconds);
      const values = samples(histogram.render('x_seconds', 'help'));
      assert.equal(values.get('x_seconds_bucket{le="0.001"}'), 2, 'le is inclusive');
      assert.equal(values.get('x_seconds_bucket{le="0.01"}'), 3);
      assert.equal(values.get('x_seconds_bucket{le="+Inf"}'), 4);
      assert.equal(values.get('x_seconds_count'), 4);
      assert.equal(values.get('x_seconds_sum'), 2.0065);
    });
  });

  describe('--metrics-textfile writer', () => {
    it('writes every part in order, readable by others; a failed write is logged once, its recovery once', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-textfile-'));
      const logged: string[] = [];
      const log = { log: (level: string, message: string) => logged.push(`${level}: ${message}`) } as unknown as Log;
      const file = path.join(dir, 'sub', 'offloadd.prom');
      const parts: (string | Buffer)[] = ['a 1\n', Buffer.alloc(0), Buffer.from('b{x="é"} 2\n'), 'c 3\n'];
      const writer = new MetricsTextfile(file, () => ({ parts, done: () => undefined }), log);
      const umask = process.umask(0o077);
      try {
        fs.mkdirSync(path.dirname(file));
        writer.start();
        await waitFor(() => fs.existsSync(file), 'the first file');
        assert.equal(fs.readFileSync(file, 'utf8'), 'a 1\nb{x="é"} 2\nc 3\n');
        assert.equal(fs.statSync(file).mode & 0o777, 0o644);
        fs.rmSync(path.dirname(file), { recursive: true });
        writer.changed();
        await waitFor(() => logged.some((line) => line.startsWith('warning: ')), 'the failure to be logged');
        writer.changed(); // fails again: not logged again
        fs.mkdirSync(path.dirname(file));
        parts.push('d 4\n');
        writer.changed();
        await waitFor(() => fs.existsSync(file) && fs.readFileSync(file, 'utf8').endsWith('d 4\n'), 'the recovery');
        assert.equal(logged.filter((line) => line.startsWith('warning: ')).length, 1, logged.join('\n'));
        assert.ok(
          logged.some((line) => line.startsWith('notice: ') && line.includes('works again')),
          logged.join('\n'),
        );
        await writer.stop();
        assert.deepEqual(fs.readdirSync(path.dirname(file)), [], 'removed on a clean stop, no temporary left');
      } finally {
        process.umask(umask);
        await writer.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
  describe('--metrics-textfile in a directory others may write (issue 20)', () => {
    let dir: string;
    let logged: string[];
    let log: Log;
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-textfile-'));
      logged = [];
      log = { log: (level: string, message: string) => logged.push(`${level}: ${message}`) } as unknown as Log;
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    /** A root-only file a hostile member of the directory's group points links at. */
    function plantVictim(): { victim: string; before: { content: string; mode: number } } {
      const victim = path.join(dir, 'victim');
      fs.writeFileSync(victim, 'drift history\n', { mode: 0o600 });
      fs.chmodSync(victim, 0o600);
      return { victim, before: { content: 'drift history\n', mode: 0o600 } };
    }

    function assertUntouched(victim: string, before: { content: string; mode: number }): void {
      assert.equal(fs.readFileSync(victim, 'utf8'), before.content, 'the link target was not written');
      assert.equal(fs.statSync(victim).mode & 0o777, before.mode, 'the link target was not chmod-ed');
    }

    it('textfile: a planted symlink at the temporary path is never followed (issue 20 #1)', async () => {
      const { victim, before } = plantVictim();
      const file = path.join(dir, 'offloadd.prom');
      // The names a writer could be expected to use: 0.3.0's PATH.tmp.<pid>, and PATH itself.
      const planted = [`${file}.tmp.${process.pid}`, file];
      for (const link of planted) fs.symlinkSync(victim, link);
      const writer = new MetricsTextfile(file, () => ({ parts: ['a 1\n'], done: () => undefined }), log);
      try {
        writer.start();
        await waitFor(() => fs.lstatSync(file).isFile(), 'the textfile to replace the planted link at PATH');
        assert.equal(fs.readFileSync(file, 'utf8'), 'a 1\n');
        assertUntouched(victim, before);
        assert.equal(fs.readlinkSync(planted[0] as string), victim, 'a link that is not ours is left alone');
      } finally {
        await writer.stop();
      }
      assertUntouched(victim, before);
    });

    it('textfile: the start-up probe never follows a planted symlink (issue 20 #1)', () => {
      const { victim, before } = plantVictim();
      const file = path.join(dir, 'offloadd.prom');
      fs.symlinkSync(victim, `${file}.tmp.${process.pid}`);
      checkTextfilePath(file);
      assertUntouched(victim, before);
      assert.deepEqual(fs.readdirSync(dir).sort(), ['offloadd.prom.tmp.' + String(process.pid), 'victim'].sort());
    });

    it('textfile: the rate limit runs on the monotonic clock, a step back of the wall clock does not stop it (issue 20 #10)', async () => {
      const file = path.join(dir, 'offloadd.prom');
      let value = 1;
      const writer = new MetricsTextfile(file, () => ({ parts: [`a ${value}\n`], done: () => undefined }), log);
      const wallClock = Date.now;
      try {
        writer.start();
        await waitFor(() => fs.existsSync(file), 'the first file');
        const stepBack = wallClock() - 3_600_000; // the wall clock is set back an hour
        const stepStartedAt = performance.now();
        Date.now = () => stepBack + (performance.now() - stepStartedAt);
        value = 2;
        writer.changed();
        await waitFor(() => fs.readFileSync(file, 'utf8') === 'a 2\n', 'the change to be written within a second');
      } finally {
        Date.now = wallClock;
        await writer.stop();
      }
    });

    it('textfile: a second daemon on the same file is reported, and the one that stops leaves the file it did not write (issue 20 #14)', async () => {
      const file = path.join(dir, 'offloadd.prom');
      const first = new MetricsTextfile(file, () => ({ parts: ['first 1\n'], done: () => undefined }), log);
      const second = new MetricsTextfile(file, () => ({ parts: ['second 1\n'], done: () => undefined }), log);
      try {
        first.start();
        await waitFor(() => fs.existsSync(file) && fs.readFileSync(file, 'utf8') === 'first 1\n', 'the first writer');
        second.start();
        await waitFor(() => fs.readFileSync(file, 'utf8') === 'second 1\n', 'the second writer');
        first.changed();
        await waitFor(() => fs.readFileSync(file, 'utf8') === 'first 1\n', 'the first writer again');
        assert.ok(
          logged.some((line) => /^warning: .*replaced by another process.*second offloadd/.test(line)),
          logged.join('\n'),
        );
        await second.stop(); // the file is the first writer's now: not the second's to remove
        assert.equal(fs.readFileSync(file, 'utf8'), 'first 1\n');
        assert.ok(
          logged.some((line) => /left .* in place: another process wrote it/.test(line)),
          logged.join('\n'),
        );
        await first.stop();
        assert.equal(fs.existsSync(file), false, 'removed by the writer that wrote it last');
      } finally {
        await first.stop();
        await second.stop();
      }
    });
  });
});
