/**
 * The kernel-side filter that drops the events of links without a device (used when no rule can
 * match one), against the real kernel in a test namespace: with it on, a veth pair's events never
 * arrive; with it off again, they do.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { type Netns, eachTestInItsOwnNetns } from '../helpers/netns';

const PROBE = path.resolve(__dirname, '..', 'helpers', 'link-filter-probe.js');

describe('deviceless-link event filter (real kernel, own namespace)', function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  it('drops the events of links without a parent device while on, and delivers them once off', () => {
    const seen = JSON.parse(ns.exec(process.execPath, PROBE)) as string[];
    assert.ok(seen.includes('mark0') && seen.includes('mark1'), `seen: ${seen.join(', ')}`);
    assert.ok(!seen.includes('fl0') && !seen.includes('fl1'), `filtered links arrived: ${seen.join(', ')}`);
  });
});
