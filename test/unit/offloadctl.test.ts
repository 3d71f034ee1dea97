import { strict as assert } from 'node:assert';
import { sinceForApi } from '../../src/cli/offloadctl-args';

describe('offloadctl --since', () => {
  const savedZone = process.env['TZ'];
  before(() => {
    // Node re-reads TZ when it changes: India is +05:30 all year, no daylight saving.
    process.env['TZ'] = 'Asia/Kolkata';
  });
  after(() => {
    if (savedZone === undefined) delete process.env['TZ'];
    else process.env['TZ'] = savedZone;
  });

  const cases: Array<[input: string, sent: string]> = [
    ['2026-11-22T10:00:00Z', '2026-11-22T10:00:00Z'],
    ['2026-11-22T10:00:00+01:00', '2026-11-22T10:00:00+01:00'],
    ['2026-11-22T10:00:00', '2026-11-22T04:30:00.000Z'],
    ['2026-11-22 10:00', '2026-11-22T04:30:00.000Z'],
    ['2026-11-22T10:00:00.05', '2026-11-22T04:30:00.050Z'],
    ['2026-11-22', '2026-11-21T18:30:00.000Z'],
  ];
  for (const [input, sent] of cases) {
    it(`sends ${input} as ${sent}`, () => {
      assert.equal(sinceForApi(input), sent);
    });
  }

  for (const input of ['yesterday', '2026-02-30T10:00', '2026-11-22T25:00', '22.11.2026']) {
    it(`refuses ${input}`, () => {
      assert.throws(() => sinceForApi(input), /--since must be an ISO 8601 date and time/);
    });
  }
});
