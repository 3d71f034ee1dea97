/**
 * The daemon's own feature events are dropped in the addon, before they become JavaScript
 * objects: exactly the one event each of its writes causes, never someone else's. Real kernel,
 * own namespace; the subscription and the writes are the daemon's own classes.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { eachTestInItsOwnNetns, type Netns } from '../helpers/netns';

const DIST_SRC = path.resolve(__dirname, '..', '..', 'src');

/**
 * Run in the namespace (argv: forget = "forget" or "keep"): writes gso off on o0 as the daemon,
 * expects its event, then ethtool changes o0 and o1, then a sentinel change on o1 whose event
 * says every earlier one was delivered. Prints the names of the feature events delivered.
 */
const SCRIPT = `const { execFileSync } = require('node:child_process');
const { LinkEvents, dumpLinks } = require(${JSON.stringify(path.join(DIST_SRC, 'events', 'link-events'))});
const { FeatureTable } = require(${JSON.stringify(path.join(DIST_SRC, 'reconcile', 'feature-state'))});
const seen = [];
const events = new LinkEvents({
  onLinks: (links) => { for (const link of links) if (link.event === 2) seen.push(link.name); },
  onResync: (reason) => seen.push('resync: ' + reason),
  onHandlerError: (error) => seen.push('error: ' + error.message),
});
events.open();
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

describe("the daemon's own feature events (real kernel, own namespace)", function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  it('the one event a write of ours causes is dropped in the addon; the next change of the same link, and other links, pass', () => {
    ns.addVeth('o0');
    ns.addVeth('o1');
    assert.deepEqual(JSON.parse(ns.exec(process.execPath, '-e', SCRIPT, 'keep')), ['o0', 'o1', 'o1']);
  });

  it('an expectation forgotten (the link went, events were lost) drops nothing', () => {
    ns.addVeth('o0');
    ns.addVeth('o1');
    assert.deepEqual(JSON.parse(ns.exec(process.execPath, '-e', SCRIPT, 'forget')), ['o0', 'o0', 'o1', 'o1']);
  });
});
