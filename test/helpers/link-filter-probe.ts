/**
 * Run inside a test namespace (`ip netns exec NS node link-filter-probe.js`): subscribes to link
 * events with the deviceless-link filter on, creates a veth pair (no parent device), turns the
 * filter off, creates a marker pair, and once the marker's event has arrived (the positive
 * signal that everything before it was delivered or dropped) prints the names it saw, as JSON.
 */
import { execFileSync } from 'node:child_process';
import { addon } from '../../src/addon/binding';
import { parseLinkDatagram } from '../../src/events/link-message';

const seen = new Set<string>();
const monitor = addon.openLinkMonitor(1 << 20, (errno, datagrams) => {
  for (const datagram of datagrams) for (const link of parseLinkDatagram(datagram)) seen.add(link.name);
  if (seen.has('mark0')) {
    monitor.close();
    process.stdout.write(JSON.stringify([...seen].sort()));
  }
});
monitor.dropDevicelessLinks(true);
execFileSync('ip', ['link', 'add', 'fl0', 'type', 'veth', 'peer', 'name', 'fl1']);
monitor.dropDevicelessLinks(false);
execFileSync('ip', ['link', 'add', 'mark0', 'type', 'veth', 'peer', 'name', 'mark1']);
