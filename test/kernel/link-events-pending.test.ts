/**
 * LinkEvents.deliverPending(): what the kernel queued is delivered before the call returns, as a
 * wake-up would, so the daemon can tell events sent before a moment (attribution starting) from
 * those sent after it. Real kernel, own namespace; the subscription is the daemon's own class.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { eachTestInItsOwnNetns, type Netns } from '../helpers/netns';

const DIST_SRC = path.resolve(__dirname, '..', '..', 'src');

/**
 * Run in the namespace: subscribes, has ethtool change p0 (its event is queued, the loop has not
 * run), then prints the names delivered before deliverPending(), after it, and after a second
 * call with nothing queued.
 */
const SCRIPT = `const { execFileSync } = require('node:child_process');
const { LinkEvents } = require(${JSON.stringify(path.join(DIST_SRC, 'events', 'link-events'))});
const seen = [];
const events = new LinkEvents({
  onLinks: (links) => { for (const link of links) if (link.event === 2) seen.push(link.name); },
  onResync: (reason) => seen.push('resync: ' + reason),
  onHandlerError: (error) => seen.push('error: ' + error.message),
});
events.open();
execFileSync('ethtool', ['-K', 'p0', 'gso', 'off']);
const before = seen.slice();
events.deliverPending();
const after = seen.slice();
events.deliverPending();
process.stdout.write(JSON.stringify({ before, after, again: seen.slice() }));
events.close();`;

describe('link events queued now (real kernel, own namespace)', function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  it('deliverPending() delivers the queued feature event before it returns, and nothing twice', () => {
    ns.addVeth('p0');
    assert.deepEqual(JSON.parse(ns.exec(process.execPath, '-e', SCRIPT)), {
      before: [],
      after: ['p0'],
      again: ['p0'],
    });
  });
});
