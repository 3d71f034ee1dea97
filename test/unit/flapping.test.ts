import { strict as assert } from 'node:assert';
import { FlapGuard } from '../../src/reconcile/flapping';

describe('flapping back-off', () => {
  let now = 0;
  const guard = (): FlapGuard => new FlapGuard({ maxCorrections: 3, windowSec: 10, maxBackoffSec: 4 }, () => now);

  beforeEach(() => {
    now = 1_000_000;
  });

  it('corrects at once until the limit, then backs off exponentially up to the ceiling', () => {
    const flap = guard();
    const backoffs: number[] = [];
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 3; i++) {
        assert.equal(flap.mayCorrect(7, 'rx-gro'), true);
        const started = flap.noteCorrection(7, 'rx-gro');
        if (started) backoffs.push(started.backoffSec);
        now += 10;
      }
      assert.equal(flap.mayCorrect(7, 'rx-gro'), false, 'held back during the back-off');
      now = (flap.backoffEnd(7, 'rx-gro') ?? now) + 1;
    }
    assert.deepEqual(backoffs, [1, 2, 4, 4]);
  });

  it('counts held-back drifts in the next flapping record', () => {
    const flap = guard();
    for (let i = 0; i < 3; i++) flap.noteCorrection(1, 'rx-gro');
    flap.mayCorrect(1, 'rx-gro');
    flap.mayCorrect(1, 'rx-gro');
    now += 1001;
    flap.noteCorrection(1, 'rx-gro');
    flap.noteCorrection(1, 'rx-gro');
    assert.equal(flap.noteCorrection(1, 'rx-gro')?.count, 5);
  });

  it('returns to immediate correction after a quiet window', () => {
    const flap = guard();
    for (let i = 0; i < 3; i++) flap.noteCorrection(1, 'rx-gro');
    now += 11_000;
    assert.equal(flap.mayCorrect(1, 'rx-gro'), true);
    assert.equal(flap.noteCorrection(1, 'rx-gro'), null);
    for (let i = 0; i < 2; i++) flap.noteCorrection(1, 'rx-gro');
    assert.equal(flap.backoffEnd(1, 'rx-gro'), now + 1000, 'the back-off starts from 1 s again');
  });

  it('keeps interfaces and features apart, and forgets a deleted interface', () => {
    const flap = guard();
    for (let i = 0; i < 3; i++) flap.noteCorrection(1, 'rx-gro');
    assert.equal(flap.mayCorrect(1, 'tx-generic-segmentation'), true);
    assert.equal(flap.mayCorrect(2, 'rx-gro'), true);
    flap.forget(1);
    assert.equal(flap.mayCorrect(1, 'rx-gro'), true);
  });

  it('a flapping back-off is neither lengthened nor ended by a step of the wall clock (issue 20 #10)', () => {
    const realNow = Date.now;
    let stepMs = 0;
    Date.now = (): number => realNow() + stepMs;
    try {
      const flap = new FlapGuard({ maxCorrections: 1, windowSec: 60, maxBackoffSec: 2 });
      assert.ok(flap.noteCorrection(3, 'rx-gro'), 'the back-off started');
      assert.equal(flap.mayCorrect(3, 'rx-gro'), false, 'held back during the back-off');
      const end = flap.backoffEnd(3, 'rx-gro') as number;
      stepMs = -3_600_000; // one hour back
      assert.ok((flap.backoffEnd(3, 'rx-gro') ?? 0) <= end, 'the end did not move away');
      assert.ok((flap.backoffEnd(3, 'rx-gro') ?? Infinity) - end < 1000, 'still about 2 s away, not an hour');
      stepMs = 3_600_000; // one hour forward
      assert.equal(flap.mayCorrect(3, 'rx-gro'), false, 'still held back');
    } finally {
      Date.now = realNow;
    }
  });
});
