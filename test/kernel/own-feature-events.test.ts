/**
 * The daemon's own feature events are dropped in the addon, before they become JavaScript
 * objects: exactly the one event each of its writes causes, never someone else's; and what is
 * queued can be delivered at once (deliverPending). Real kernel, own namespace; the subscription
 * and the writes are the daemon's own classes.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { eachTestInItsOwnNetns, type Netns } from '../helpers/netns';

const DIST_SRC = path.resolve(__dirname, '..', '..', 'src');

/**
 * The start of every script run in the namespace: the daemon's own subscription, keeping the
 * names of the feature events it delivers (and any resync or handler error) in `seen`.
 */
const SUBSCRIBE = `const { execFileSync } = require('node:child_process');
const { LinkEvents, dumpLinks } = require(${JSON.stringify(path.join(DIST_SRC, 'events', 'link-events'))});
const seen = [];
const events = new LinkEvents({
  onLinks: (links) => { for (const link of links) if (link.event === 2) seen.push(link.name); },
  onResync: (reason) => seen.push('resync: ' + reason),
  onHandlerError: (error) => seen.push('error: ' + error.message),
});
events.open();
`;

/**
 * argv: forget = "forget" or "keep". Writes gso off on o0 as the daemon, expects its event, then
 * ethtool changes o0 and o1, then a sentinel change on o1 whose event says every earlier one was
 * delivered. Prints the names of the feature events delivered.
 */
const OWN_EVENTS_SCRIPT = `${SUBSCRIBE}
const { FeatureTable } = require(${JSON.stringify(path.join(DIST_SRC, 'reconcile', 'feature-state'))});
const table = FeatureTable.fromKernel();
const o0 = dumpLinks().find((link) => link.name === 'o0');
table.write('o0', o0.ifindex, [{ feature: 'tx-generic-segmentation', on: false }], table.read('o0', o0.ifindex));
events.expectOwnFeatureEvent(o0.ifindex);
if (process.argv[1] === 'forget') events.forgetOwnFeatureEvents(o0.ifindex);
execFileSync('ethtool', ['-K', 'o0', 'gso', 'on']);
execFileSync('ethtool', ['-K', 'o1', 'gso', 'off']);
execFileSync('ethtool', ['-K', 'o1', 'gso', 'on']);
const deadline = Date.now() + 10000;
const poll = () => {
  if (seen.filter((name) => name === 'o1').length >= 2 || Date.now() > deadline) {
    process.stdout.write(JSON.stringify(seen));
    process.exit(0);
  }
  setTimeout(poll, 10);
};
poll();`;

/**
 * ethtool changes p0 (its event is queued, the loop has not run); prints the names delivered
 * before deliverPending(), after it, and after a second call with nothing queued.
 */
const PENDING_SCRIPT = `${SUBSCRIBE}
execFileSync('ethtool', ['-K', 'p0', 'gso', 'off']);
const before = seen.slice();
events.deliverPending();
const after = seen.slice();
events.deliverPending();
process.stdout.write(JSON.stringify({ before, after, again: seen.slice() }));
events.close();`;

describe("the daemon's own feature events (real kernel, own namespace)", function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  it('the one event a write of ours causes is dropped in the addon; the next change of the same link, and other links, pass', () => {
    ns.addVeth('o0');
    ns.addVeth('o1');
    assert.deepEqual(JSON.parse(ns.exec(process.execPath, '-e', OWN_EVENTS_SCRIPT, 'keep')), ['o0', 'o1', 'o1']);
  });

  it('an expectation forgotten (the link went, events were lost) drops nothing', () => {
    ns.addVeth('o0');
    ns.addVeth('o1');
    assert.deepEqual(JSON.parse(ns.exec(process.execPath, '-e', OWN_EVENTS_SCRIPT, 'forget')), [
      'o0',
      'o0',
      'o1',
      'o1',
    ]);
  });
});

describe('link events queued now (real kernel, own namespace)', function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  // What lets the daemon tell events sent before a moment (attribution starting) from later ones.
  it('deliverPending() delivers the queued feature event before it returns, and nothing twice', () => {
    ns.addVeth('p0');
    assert.deepEqual(JSON.parse(ns.exec(process.execPath, '-e', PENDING_SCRIPT)), {
      before: [],
      after: ['p0'],
      again: ['p0'],
    });
  });
});
