/**
 * The ledger on its own, on real files in a scratch directory: record validation, sequence
 * numbers across rotation and restarts, links, deleted files, bounded queries and the last
 * recorded state. No kernel and no root needed.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BackwardLines, MAX_LINE_BYTES, OVERLONG_LINE } from '../../src/ledger/files';
import { RECENT_RECORDS } from '../../src/ledger/history';
import { RECOVERED_REASON, type ChangeIntent } from '../../src/ledger/intents';
import { Ledger, type LedgerObserver } from '../../src/ledger/ledger';
import { parseRecord, type LedgerRecord, type NewRecord } from '../../src/ledger/record';
import { RecordQueue } from '../../src/ledger/record-queue';

const LIMITS = { maxBytes: 16 * 1024 * 1024, keepFiles: 4 };

function drift(iface: string, active: 'on' | 'off' = 'on', feature = 'rx-gro'): NewRecord {
  return { event: 'drift', trigger: 'features', action: 'enforced', interface: iface, feature, wanted: 'off', active };
}

class Recorder implements LedgerObserver {
  readonly warnings: string[] = [];
  readonly events: string[] = [];
  warning(message: string): void {
    this.warnings.push(message);
  }
  unwritable(): void {
    this.events.push('unwritable');
  }
  writable(): void {
    this.events.push('writable');
  }
}

/** Every line of a ledger file, parsed strictly: a glued or torn line fails the test. */
function lines(file: string): LedgerRecord[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as LedgerRecord);
}

function appendNow(ledger: Ledger, records: NewRecord[]): LedgerRecord[] {
  let stamped: LedgerRecord[] = [];
  ledger.append(records, (durable) => (stamped = durable), true);
  return stamped;
}

describe('ledger (files in a scratch directory)', function () {
  let dir: string;
  let open: Ledger[];
  const ledgerIn = (limits = LIMITS, observer = new Recorder()): Ledger => {
    const ledger = new Ledger(dir, limits, observer);
    open.push(ledger);
    ledger.open();
    return ledger;
  };
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-ledger-'));
    open = [];
  });
  afterEach(() => {
    for (const ledger of open) ledger.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('skips null, {} and other non-record JSON lines with a warning, and deep queries still work', async () => {
    const file = path.join(dir, 'ledger.jsonl');
    const good = (seq: number): string =>
      JSON.stringify({ seq, time: '2026-11-20T10:00:00.000Z', ...drift(`up${seq}`) });
    fs.writeFileSync(
      file,
      [good(1), 'null', '{}', '[1,2]', '"text"', '{"seq":"7","time":"x","kind":"drift"}', good(2), ''].join('\n'),
    );
    const observer = new Recorder();
    const ledger = ledgerIn(LIMITS, observer);
    const { records } = await ledger.query({ limit: 100 });
    assert.deepEqual(
      records.map((record) => record.seq),
      [2, 1],
    );
    assert.equal(
      observer.warnings.filter((warning) => /skipped a malformed line/.test(warning)).length,
      5,
      observer.warnings.join('\n'),
    );
    assert.equal(appendNow(ledger, [drift('up0')])[0]?.seq, 3);
  });

  it('continues the sequence when the last line is {} or null', () => {
    const file = path.join(dir, 'ledger.jsonl');
    fs.writeFileSync(
      file,
      `${JSON.stringify({ seq: 41, time: '2026-11-20T10:00:00.000Z', ...drift('up0') })}\n{}\nnull\n`,
    );
    const ledger = ledgerIn();
    assert.equal(appendNow(ledger, [drift('up0')])[0]?.seq, 42);
  });

  it('keeps sequence numbers increasing across rotation and restarts, also with keep: 0', () => {
    for (const keepFiles of [0, 2]) {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir);
      const limits = { maxBytes: 4096, keepFiles };
      let last = 0;
      for (let restart = 0; restart < 4; restart++) {
        const ledger = ledgerIn(limits);
        for (;;) {
          const seq = appendNow(ledger, [drift('up0')])[0]?.seq ?? 0;
          assert.ok(seq > last, `keep ${keepFiles}, restart ${restart}: #${seq} after #${last}`);
          last = seq;
          if (fs.statSync(ledger.activePath).size === 0) break; // rotated just now: restart right after it
        }
        ledger.close();
      }
    }
  });

  it('held records are never lost when the ledger stays unwritable until exit: the reserve keeps them for the next start (issue 20 #3)', () => {
    const first = ledgerIn();
    const before = appendNow(first, [drift('up0')]);
    first.close();
    // Something the ledger cannot write to sits at its path for a whole run.
    const active = path.join(dir, 'ledger.jsonl');
    fs.renameSync(active, `${active}.saved`);
    fs.mkdirSync(active);
    const observer = new Recorder();
    const second = ledgerIn(LIMITS, observer);
    const held: LedgerRecord[] = [];
    for (let i = 0; i < 90; i++) held.push(...appendNow(second, [drift(`up${i}`)]));
    second.close();
    assert.match(
      observer.warnings.join('\n'),
      /90 records \(#2 to #91\) could not be written .* kept in .*ledger\.reserve/,
    );
    fs.rmdirSync(active);
    fs.renameSync(`${active}.saved`, active);

    const replayObserver = new Recorder();
    const third = ledgerIn(LIMITS, replayObserver);
    assert.match(replayObserver.warnings.join('\n'), /90 records the last run could not write/);
    const next = appendNow(third, [drift('up0')]);
    third.close();
    const records = lines(active);
    assert.deepEqual(
      records.map((record) => record.seq),
      Array.from({ length: 92 }, (_, i) => i + 1),
      'every record once, numbers continuous',
    );
    assert.deepEqual(records.slice(1, 91), held);
    assert.equal(next[0]?.seq, 92);
    assert.equal(before[0]?.seq, 1);
    // Cleared: a fourth start replays nothing.
    const fourthObserver = new Recorder();
    ledgerIn(LIMITS, fourthObserver).close();
    assert.equal(lines(active).length, 92);
    assert.doesNotMatch(fourthObserver.warnings.join('\n'), /last run/);
  });

  it('replays no record twice when a crash left the reserve uncleared', () => {
    const first = ledgerIn();
    const written = [...appendNow(first, [drift('up0')]), ...appendNow(first, [drift('up1')])];
    first.close();
    const reserve = path.join(dir, 'ledger.reserve');
    fs.writeFileSync(
      reserve,
      Buffer.concat([Buffer.from(written.map((r) => `${JSON.stringify(r)}\n`).join('')), Buffer.alloc(4096)]),
    );
    const second = ledgerIn();
    assert.equal(appendNow(second, [drift('up2')])[0]?.seq, 3);
    second.close();
    assert.deepEqual(
      lines(path.join(dir, 'ledger.jsonl')).map((record) => record.seq),
      [1, 2, 3],
    );
  });

  it('leaves no ledger.seq.tmp behind when the sequence number cannot be saved (issue 20 #17)', () => {
    const seqFile = path.join(dir, 'ledger.seq');
    fs.mkdirSync(seqFile); // rename over a directory fails, as a full disk makes the write fail
    const ledger = ledgerIn();
    appendNow(ledger, [drift('up0')]);
    ledger.close();
    assert.deepEqual(
      fs.readdirSync(dir).filter((name) => name.endsWith('.tmp')),
      [],
    );
  });

  for (const where of ['memory', 'files'] as const) {
    it(`drift --since does not miss a record written after the wall clock was stepped back, from ${where} (issue 20 #10)`, async () => {
      const record = (seq: number, time: string, iface: string): string =>
        JSON.stringify({ seq, time, ...drift(iface) });
      const ledgerLines = [
        record(1, '2026-11-20T09:00:00.000Z', 'old0'),
        record(2, '2026-11-20T12:00:00.000Z', 'up0'),
        record(3, '2026-11-20T12:00:01.000Z', 'up1'),
        // The clock was stepped back one hour here.
        record(4, '2026-11-20T11:00:02.000Z', 'up2'),
        record(5, '2026-11-20T11:00:03.000Z', 'other0'),
      ];
      // Beyond what memory keeps, so the query has to read the file.
      const filler = where === 'files' ? RECENT_RECORDS + 100 : 0;
      const all = [
        ...ledgerLines,
        ...Array.from({ length: filler }, (_, i) => record(6 + i, '2026-11-20T11:30:00.000Z', 'fill0')),
      ];
      fs.writeFileSync(path.join(dir, 'ledger.jsonl'), `${all.join('\n')}\n`);
      const ledger = ledgerIn();
      const seqs = async (since: string, iface?: string): Promise<number[]> =>
        (await ledger.query({ since: new Date(since), interface: iface, limit: 10 })).records.map((r) => r.seq);
      assert.deepEqual(await seqs('2026-11-20T11:30:00.000Z', 'up2'), [4], 'written after a record at or after since');
      assert.deepEqual(await seqs('2026-11-20T11:30:00.000Z', 'up0'), [2]);
      assert.deepEqual(await seqs('2026-11-20T11:30:00.000Z', 'old0'), [], 'before since and before the step');
      assert.deepEqual(await seqs('2026-11-20T12:30:00.000Z', 'up2'), [], 'nothing at or after since');
    });
  }

  it('never follows a symbolic link at ledger.jsonl, and reports the ledger not writable', () => {
    const target = path.join(dir, 'elsewhere');
    fs.writeFileSync(target, 'precious\n');
    fs.symlinkSync(target, path.join(dir, 'ledger.jsonl'));
    const observer = new Recorder();
    const ledger = ledgerIn(LIMITS, observer);
    let delivered: Error | null = null;
    ledger.append([drift('up0')], (_records, error) => (delivered = error), true);
    assert.equal(fs.readFileSync(target, 'utf8'), 'precious\n');
    assert.ok(delivered, 'delivered with an error');
    assert.equal(ledger.health.writable, false);
    assert.match(ledger.health.problem ?? '', /symbolic link/);
    assert.deepEqual(observer.events, ['unwritable']);
    // The link removed: the held record is written with its number, and that is announced.
    fs.rmSync(path.join(dir, 'ledger.jsonl'));
    appendNow(ledger, [drift('up1')]);
    assert.deepEqual(
      lines(ledger.activePath).map((record) => [record.seq, record.interface]),
      [
        [1, 'up0'],
        [2, 'up1'],
      ],
    );
    assert.deepEqual(observer.events, ['unwritable', 'writable']);
    assert.equal(ledger.health.writable, true);
  });

  it('reopens a ledger deleted while running, with a warning', () => {
    const observer = new Recorder();
    const ledger = ledgerIn(LIMITS, observer);
    appendNow(ledger, [drift('up0')]);
    fs.rmSync(ledger.activePath);
    appendNow(ledger, [drift('up1')]);
    assert.deepEqual(
      lines(ledger.activePath).map((record) => record.seq),
      [2],
    );
    assert.ok(
      observer.warnings.some((warning) => /deleted or replaced/.test(warning)),
      observer.warnings.join('\n'),
    );
  });

  it('terminates a torn last line before the next record instead of gluing onto it', () => {
    const file = path.join(dir, 'ledger.jsonl');
    fs.writeFileSync(
      file,
      `${JSON.stringify({ seq: 5, time: '2026-11-20T10:00:00.000Z', ...drift('up0') })}\n{"seq": 6, "ki`,
    );
    const observer = new Recorder();
    const ledger = ledgerIn(LIMITS, observer);
    assert.ok(
      observer.warnings.some((warning) => /torn last line/.test(warning)),
      observer.warnings.join('\n'),
    );
    appendNow(ledger, [drift('up1')]);
    const text = fs.readFileSync(file, 'utf8').split('\n');
    assert.equal(text[1], '{"seq": 6, "ki');
    assert.equal((JSON.parse(text[2] as string) as LedgerRecord).seq, 6, 'numbered after the last valid record');
  });

  it('answers deep queries from the files beyond what it keeps in memory, and says which files it could not read', async function () {
    this.timeout(30000);
    const total = RECENT_RECORDS + 5000;
    const time = (seq: number): string => new Date(Date.UTC(2026, 10, 1) + seq * 1000).toISOString();
    const text = Array.from(
      { length: total },
      (_, index) =>
        `${JSON.stringify({ seq: index + 1, time: time(index + 1), ...drift(index === 10 ? 'rare0' : `up${index % 50}`) })}\n`,
    );
    fs.writeFileSync(path.join(dir, 'ledger.jsonl.1'), text.slice(0, 6000).join(''));
    fs.writeFileSync(path.join(dir, 'ledger.jsonl'), text.slice(6000).join(''));
    fs.mkdirSync(path.join(dir, 'ledger.jsonl.2')); // unreadable as a ledger file
    const observer = new Recorder();
    const ledger = ledgerIn(LIMITS, observer);
    const [rare, recent, since] = await Promise.all([
      ledger.query({ interface: 'rare0' }),
      ledger.query({ limit: 3 }),
      ledger.query({ since: new Date(time(total - 9)) }),
    ]);
    assert.deepEqual(
      rare.records.map((record) => record.seq),
      [11],
    );
    assert.match(rare.warnings.join('\n'), /ledger\.jsonl\.2 cannot be read.*left out/);
    assert.equal(
      observer.warnings.filter((warning) => /ledger\.jsonl\.2 cannot be read/.test(warning)).length,
      1,
      'logged once',
    );
    assert.deepEqual(
      recent.records.map((record) => record.seq),
      [total, total - 1, total - 2],
    );
    assert.equal(since.records.length, 10);
    const all = await ledger.query({});
    assert.equal(all.records.length, total);
    assert.ok(
      all.records.every((record, index) => index === 0 || (all.records[index - 1] as LedgerRecord).seq > record.seq),
      'newest first, no duplicates',
    );
  });
  describe('write-ahead intents (issue 22 #2)', () => {
    const change = (iface: string, ifindex: number, feature = 'rx-gro'): ChangeIntent => ({
      event: 'initial',
      trigger: 'start',
      interface: iface,
      ifindex,
      driver: 'veth',
      pci: null,
      rule: 'r',
      feature,
      wanted: 'off',
      active: 'on',
    });
    const outcome = (intent: ChangeIntent): NewRecord => ({ ...intent, action: 'enforced', correctionUs: 40 });
    const intentFile = (): string => path.join(dir, 'ledger.intent');
    /** What a crash leaves: the state directory as it is now, copied before any close could tidy it. */
    const crashImage = (): string => {
      const image = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-ledger-crash-'));
      for (const name of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, name), path.join(image, name));
      return image;
    };

    it('a crash between a change and its record: the next start records the change from its intent, once', () => {
      const ledger = ledgerIn();
      appendNow(ledger, [drift('old0')]);
      const changes = [change('up0', 10), change('up1', 11), change('up1', 11, 'tx-generic-segmentation')];
      ledger.intend(changes);
      appendNow(ledger, [outcome(changes[0] as ChangeIntent)]); // the first outcome made it; then the crash
      const image = crashImage();
      try {
        const observer = new Recorder();
        const next = new Ledger(image, LIMITS, observer);
        open.push(next);
        next.open();
        const recovered = lines(path.join(image, 'ledger.jsonl')).slice(2);
        assert.deepEqual(
          recovered.map((record) => [record.seq, record.interface, record.feature, record.action, record.reason]),
          [
            [3, 'up1', 'rx-gro', 'enforced', RECOVERED_REASON],
            [4, 'up1', 'tx-generic-segmentation', 'enforced', RECOVERED_REASON],
          ],
        );
        assert.match(observer.warnings.join('\n'), /2 changes offloadd asked for before it stopped had no record/);
        assert.equal(fs.statSync(path.join(image, 'ledger.intent')).size, 0, 'the intents are gone once recorded');
        next.close();
        const again = new Ledger(image, LIMITS, new Recorder());
        open.push(again);
        again.open();
        assert.equal(lines(path.join(image, 'ledger.jsonl')).length, 4, 'recorded once');
      } finally {
        fs.rmSync(image, { recursive: true, force: true });
      }
    });

    it('a pass clears its intents once its records are durable, at the end of the stretch, and a clean stop leaves none', async () => {
      const ledger = ledgerIn();
      const durable: LedgerRecord[] = [];
      const queue = new RecordQueue(ledger, {
        onDurable: (records) => durable.push(...records),
        onSyncFailed: () => assert.fail('sync failed'),
        onHeld: () => assert.fail('held'),
      });
      const changes = Array.from({ length: 300 }, (_, index) => change(`up${index}`, 100 + index));
      for (let batch = 0; batch < 3; batch++) {
        const slice = changes.slice(batch * 100, batch * 100 + 100);
        queue.intend(slice);
        queue.add(slice.map(outcome));
      }
      assert.ok(fs.statSync(intentFile()).size > 0, 'written ahead');
      assert.equal(durable.length, 0, 'a pass needs no sync of its records before it ends');
      await new Promise<void>((resolve) => {
        const wait = (): void => {
          if (durable.length === 300) resolve();
          else setImmediate(wait);
        };
        wait();
      });
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(fs.statSync(intentFile()).size, 0, 'cleared once durable');
      // A drift is not written ahead (its latency would pay for the sync).
      queue.intend([{ ...change('up0', 100), trigger: 'features', event: 'drift' }]);
      assert.equal(fs.statSync(intentFile()).size, 0);
      queue.intend([change('up0', 100)]);
      queue.add([outcome(change('up0', 100))]);
      queue.flush('sync');
      assert.equal(fs.statSync(intentFile()).size, 0);
      queue.intend([change('up1', 101)]);
      ledger.close();
      assert.equal(fs.statSync(intentFile()).size, 0, 'a clean stop leaves no intent');
    });
  });

  describe('history index (issue 22 #1)', () => {
    const time = (seq: number): string => new Date(Date.UTC(2026, 10, 1) + seq * 1000).toISOString();
    const history = (from: number, to: number, iface = (seq: number) => `up${seq % 50}`): string =>
      Array.from(
        { length: to - from + 1 },
        (_, index) =>
          `${JSON.stringify({ seq: from + index, time: time(from + index), ...drift(iface(from + index)) })}\n`,
      ).join('');

    it('opens without reading the history: the sequence continues, a query before the index is built waits for it and answers correctly', async function () {
      this.timeout(30000);
      const total = RECENT_RECORDS + 3000;
      // A malformed line deep in the history: said when the index is built, not at open.
      fs.writeFileSync(path.join(dir, 'ledger.jsonl.1'), `${history(1, 4000)}{"seq": 1 broken\n`);
      fs.writeFileSync(path.join(dir, 'ledger.jsonl'), history(4001, total));
      const observer = new Recorder();
      const ledger = ledgerIn(LIMITS, observer);
      assert.deepEqual(observer.warnings, [], 'nothing but the tail was read at open');
      const appended = appendNow(ledger, [drift('new0'), drift('new1')]);
      assert.deepEqual(
        appended.map((record) => record.seq),
        [total + 1, total + 2],
      );
      const [recent, oneInterface] = await Promise.all([
        ledger.query({ limit: 4 }),
        ledger.query({ interface: 'up7', limit: 3 }),
      ]);
      assert.deepEqual(
        recent.records.map((record) => record.seq),
        [total + 2, total + 1, total, total - 1],
      );
      assert.ok(oneInterface.records.every((record) => record.interface === 'up7'));
      assert.equal(oneInterface.records.length, 3);
      const all = await ledger.query({});
      assert.equal(all.records.length, total + 2, 'every record once, memory and files joined without a gap');
      assert.ok(
        all.records.every((record, index) => index === 0 || (all.records[index - 1] as LedgerRecord).seq > record.seq),
        'newest first, no duplicates',
      );
      assert.equal(
        observer.warnings.filter((warning) => /skipped a malformed line/.test(warning)).length,
        1,
        observer.warnings.join('\n'),
      );
    });

    it('builds the index in slices that let the event loop run between them', async function () {
      this.timeout(30000);
      fs.writeFileSync(path.join(dir, 'ledger.jsonl'), history(1, RECENT_RECORDS));
      const ledger = ledgerIn();
      let turns = 0;
      let building = true;
      const turn = (): void => {
        turns++;
        if (building) setImmediate(turn);
      };
      setImmediate(turn);
      await ledger.buildIndex();
      building = false;
      assert.ok(turns >= 10, `the event loop turned ${turns} times while ${RECENT_RECORDS} records were indexed`);
      assert.equal((await ledger.query({ limit: 1 })).records[0]?.seq, RECENT_RECORDS);
    });

    it('opens and continues the sequence when the history cannot be read; a query names what it could not read', async () => {
      fs.writeFileSync(path.join(dir, 'ledger.jsonl'), '');
      fs.mkdirSync(path.join(dir, 'ledger.jsonl.1')); // unreadable as a ledger file
      fs.writeFileSync(path.join(dir, 'ledger.seq'), '70\n');
      const observer = new Recorder();
      const ledger = ledgerIn(LIMITS, observer);
      assert.equal(appendNow(ledger, [drift('up0')])[0]?.seq, 71);
      const result = await ledger.query({});
      assert.deepEqual(
        result.records.map((record) => record.seq),
        [71],
      );
      assert.match(result.warnings.join('\n'), /ledger\.jsonl\.1 cannot be read/);
    });

    it('says a torn last line once, at open, and continues after the last valid record', async () => {
      fs.writeFileSync(path.join(dir, 'ledger.jsonl'), `${history(1, 5)}{"seq": 6, "ki`);
      const observer = new Recorder();
      const ledger = ledgerIn(LIMITS, observer);
      assert.equal(observer.warnings.filter((warning) => /torn last line/.test(warning)).length, 1);
      assert.equal(appendNow(ledger, [drift('up0')])[0]?.seq, 6);
      assert.equal((await ledger.query({})).records.length, 6);
      assert.equal(observer.warnings.filter((warning) => /torn|malformed/.test(warning)).length, 1, 'said once');
    });
  });
});

describe('BackwardLines', () => {
  it('yields lines newest first across chunk boundaries, with the torn tail first', () => {
    const text = Buffer.from('one\ntwo\nthree\ntorn');
    for (let size = 1; size <= text.length; size++) {
      const splitter = new BackwardLines();
      const got: string[] = [];
      for (let end = text.length; end > 0; end -= size) {
        const start = Math.max(0, end - size);
        got.push(...splitter.feed(text.subarray(start, end), start === 0));
      }
      assert.deepEqual(got, ['torn', 'three', 'two', 'one'], `chunk size ${size}`);
    }
  });

  it('drops a line longer than the bound instead of buffering it', () => {
    const splitter = new BackwardLines();
    const long = Buffer.alloc(MAX_LINE_BYTES + 10, 0x61);
    const got = [
      ...splitter.feed(Buffer.from('\nlast\n'), false),
      ...splitter.feed(long, false),
      ...splitter.feed(Buffer.from('first\n'), true),
    ];
    assert.deepEqual(got, ['', 'last', OVERLONG_LINE, 'first']);
  });
});

describe('ledger records from before API v1', () => {
  it("reads kind, expected, observed and count under today's names", () => {
    const legacy = (fields: object): string =>
      JSON.stringify({ seq: 3, time: '2026-11-20T10:00:00.000Z', trigger: 'features', ...fields });
    const drift = parseRecord(
      legacy({
        kind: 'drift',
        action: 'enforced',
        interface: 'up0',
        feature: 'rx-gro',
        expected: 'off',
        observed: 'on',
      }),
    );
    assert.ok('record' in drift);
    assert.deepEqual([drift.record.event, drift.record.wanted, drift.record.active], ['drift', 'off', 'on']);
    assert.ok(!('kind' in drift.record) && !('expected' in drift.record) && !('observed' in drift.record));
    const resync = parseRecord(legacy({ kind: 'resync', action: 'resynced', count: 40 }));
    assert.ok('record' in resync && resync.record.interfaces === 40);
    const flapping = parseRecord(legacy({ kind: 'flapping', action: 'backoff', count: 6, backoffSec: 2 }));
    assert.ok('record' in flapping && flapping.record.corrections === 6);
  });
});
