/**
 * Journal entries sent as a batch (one sendmmsg per synchronous stretch of logging) to a real,
 * standalone journald: whole, in order, fields intact, a large (memfd) entry in its place; queued
 * entries flushed when the transport closes and when the process exits; an unreachable journal
 * gives the stderr line for every entry.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { addon } from '../../src/addon/binding';
import { KernelError } from '../../src/errors';
import { createLog } from '../../src/observe/log';
import { Journald, skipUnlessJournald, type JournalEntry } from '../helpers/journald';
import { REPO_ROOT } from '../helpers/netns';

const JOURNAL_MODULE = path.join(REPO_ROOT, 'dist', 'src', 'observe', 'journal.js');
const LOG_MODULE = path.join(REPO_ROOT, 'dist', 'src', 'observe', 'log.js');
const CONSOLE_MODULE = path.join(REPO_ROOT, 'dist', 'src', 'observe', 'console.js');
/** More than one batch (JOURNAL_BATCH_ENTRIES in journal.ts is 1,024). */
const BATCH_ENTRIES = 1500;
const MEMFD_AT = 700;
const MULTI_LINE_AT = 300;
const LARGE_MESSAGE = 'x'.repeat(300 * 1024); // above journald's datagram limit: sent as a memfd

/** Runs `script` in a fresh node (CommonJS, the built modules at hand) and returns its result. */
function runNode(script: string): { status: number | null; signal: NodeJS.Signals | null; stderr: string } {
  const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30000 });
  if (result.error) throw result.error;
  return { status: result.status, signal: result.signal, stderr: result.stderr };
}

function sequenceOf(entries: JournalEntry[]): number[] {
  return entries.map((entry) => Number(entry['OFFLOADD_SEQ']));
}

function range(count: number): number[] {
  return Array.from({ length: count }, (_, index) => index);
}

describe('journald batches (a real standalone journald)', function () {
  this.timeout(60000);
  let journald: Journald;

  before(function () {
    skipUnlessJournald(this);
  });
  beforeEach(async () => {
    journald = await Journald.start();
  });
  afterEach(async () => {
    await journald?.stop();
  });

  it('delivers a batch whole and in order, fields intact, a multi-line field and a memfd entry in its place', async () => {
    const log = createLog({ level: 'debug', target: 'journal', journalSocket: journald.socketPathFromOutside });
    for (const index of range(BATCH_ENTRIES)) {
      const fields = { OFFLOADD_TEST: 'batch', OFFLOADD_SEQ: index, INTERFACE: `veth${index}` };
      if (index === MEMFD_AT) log.log('info', LARGE_MESSAGE, fields);
      else if (index === MULTI_LINE_AT) log.log('warning', 'two\nlines', { ...fields, OFFLOADD_NOTE: 'a\nb' });
      else log.log('notice', `entry ${index}`, fields);
    }
    const entries = await journald.waitForEntries(['OFFLOADD_TEST=batch'], BATCH_ENTRIES, 20000, ['--all']);
    assert.deepEqual(sequenceOf(entries), range(BATCH_ENTRIES));
    for (const [index, entry] of entries.entries()) {
      assert.equal(entry['INTERFACE'], `veth${index}`);
      assert.equal(entry['SYSLOG_IDENTIFIER'], 'offloadd');
      if (index === MEMFD_AT) {
        assert.equal(String(entry['MESSAGE']).length, LARGE_MESSAGE.length);
      } else if (index === MULTI_LINE_AT) {
        assert.equal(entry['MESSAGE'], 'two\nlines');
        assert.equal(entry['OFFLOADD_NOTE'], 'a\nb');
        assert.equal(entry['PRIORITY'], '4');
      } else {
        assert.equal(entry['MESSAGE'], `entry ${index}`);
        assert.equal(entry['PRIORITY'], '5');
      }
    }
    await log.close();
  });

  it('sends what is queued when the transport closes, with no turn of the event loop after it', async () => {
    // SIGKILL right after close(): only a synchronous flush in close() can have sent the entries.
    const result = runNode(`
      const { JournalTransport } = require(${JSON.stringify(JOURNAL_MODULE)});
      const transport = new JournalTransport(${JSON.stringify(journald.socketPathFromOutside)});
      for (let i = 0; i < 20; i++)
        transport.log({ level: 'info', message: 'at close ' + i, OFFLOADD_TEST: 'close', OFFLOADD_SEQ: i }, () => {});
      transport.close();
      process.kill(process.pid, 'SIGKILL');
    `);
    assert.equal(result.signal, 'SIGKILL', result.stderr);
    const entries = await journald.waitForEntries(['OFFLOADD_TEST=close'], 20);
    assert.deepEqual(sequenceOf(entries), range(20));
  });

  it('sends what is queued when the process exits at once (process.exit after logging)', async () => {
    const result = runNode(`
      const { createLog } = require(${JSON.stringify(LOG_MODULE)});
      const log = createLog({ level: 'info', target: 'journal', journalSocket: ${JSON.stringify(journald.socketPathFromOutside)} });
      for (let i = 0; i < 20; i++) log.log('info', 'at exit ' + i, { OFFLOADD_TEST: 'exit', OFFLOADD_SEQ: i });
      process.exit(3);
    `);
    assert.equal(result.status, 3, result.stderr);
    const entries = await journald.waitForEntries(['OFFLOADD_TEST=exit'], 20);
    assert.deepEqual(sequenceOf(entries), range(20));
  });

  it('sendDatagrams stops at the first datagram that cannot go and says how many went before it', async () => {
    const tooLarge = Buffer.alloc(LARGE_MESSAGE.length, 'y'); // EMSGSIZE as a datagram, no memfd allowed
    const datagrams = ['first', null, 'third'].map((value) =>
      value === null ? tooLarge : Buffer.from(`MESSAGE=${value}\nOFFLOADD_TEST=partial\n`),
    );
    const { sent, error } = addon.sendDatagrams(journald.socketPathFromOutside, datagrams, false);
    assert.equal(sent, 1);
    assert.ok(error instanceof KernelError);
    assert.equal(error.code, 'EMSGSIZE');
    assert.match(error.message, /^sendto\(.*\) failed: /);
    // A marker sent after it: once it is in, everything before it is too.
    addon.sendDatagram(journald.socketPathFromOutside, Buffer.from('MESSAGE=marker\nOFFLOADD_TEST=partial\n'), false);
    const entries = await journald.waitForEntries(['OFFLOADD_TEST=partial'], 2);
    assert.deepEqual(
      entries.map((entry) => entry['MESSAGE']),
      ['first', 'marker'],
    );
  });
});

describe('journal batches to an unreachable socket', () => {
  it('writes every entry to stderr with "journal write failed", in order, none lost', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-t-journal-'));
    try {
      const missing = path.join(dir, 'no-journal-here');
      const result = runNode(`
        const { JournalTransport } = require(${JSON.stringify(JOURNAL_MODULE)});
        const transport = new JournalTransport(${JSON.stringify(missing)});
        for (let i = 0; i < 50; i++) transport.log({ level: 'info', message: 'entry ' + i }, () => {});
      `);
      assert.equal(result.status, 0, result.stderr);
      const lines = result.stderr.split('\n').filter(Boolean);
      assert.deepEqual(
        lines,
        range(50).map(
          (index) =>
            `<3>offloadd: journal write failed (sendto(${missing}) failed: No such file or directory): entry ${index}`,
        ),
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes them to stderr also when the process exits at once, after other stderr lines', () => {
    const missing = path.join(os.tmpdir(), `offloadd-t-no-journal-${process.pid}`, 'socket');
    const result = runNode(`
      const { writeStderr } = require(${JSON.stringify(CONSOLE_MODULE)});
      const { JournalTransport } = require(${JSON.stringify(JOURNAL_MODULE)});
      writeStderr('before\\n'); // console.ts's exit flush is registered before the journal's
      const transport = new JournalTransport(${JSON.stringify(missing)});
      for (let i = 0; i < 5; i++) transport.log({ level: 'info', message: 'entry ' + i }, () => {});
      process.exit(0);
    `);
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(result.stderr.split('\n').filter(Boolean), [
      'before',
      ...range(5).map(
        (index) =>
          `<3>offloadd: journal write failed (sendto(${missing}) failed: No such file or directory): entry ${index}`,
      ),
    ]);
  });
});
