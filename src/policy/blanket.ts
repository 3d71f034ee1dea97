/**
 * Rules that match (nearly) every interface of a real host, whether one rule alone or the rules
 * of a policy together. Exact coverage (glob-coverage.ts) catches `*`; this catches what is
 * blanket in practice: a negated class such as `[!x]*` leaves out almost nothing, and `[a-m]*`
 * with `[!a-m]*` in two rules leaves out nothing at all. Pure: no I/O.
 *
 * Judged on HOST_SAMPLES, interfaces every Linux host or hypervisor has: a rule (or the union of
 * the rules) is near-blanket when it would take `lo`, or every virtual sample (veth pairs, taps,
 * bridges) and a physical port as well. Rules marked `broad:` have opted in and are left out.
 * Targeting all virtual plumbing (`kind: [veth, tun, bridge]`), or some of it and some ports
 * (`name: "v*"` with `driver: bnxt_en`), stays allowed.
 */
import type { InterfaceFacts } from '../facts/types';
import { matchSpecMatches } from './match';
import type { MatchSpec, Rule } from './types';

type Family = 'loopback' | 'veth' | 'tap' | 'bridge' | 'physical';

interface HostSample {
  family: Family;
  facts: InterfaceFacts;
}

function sample(
  family: Family,
  name: string,
  kind: string | null,
  driver: string | null,
  pci: string | null,
  mac: string,
): HostSample {
  const [vendor = '', device = ''] = pci?.split(':') ?? [];
  return {
    family,
    facts: {
      ifindex: 0,
      name,
      kind,
      mac,
      up: true,
      operstate: 'up',
      master: null,
      driver,
      busInfo: null,
      pci: pci === null ? null : { vendor, device, subsystemVendor: null, subsystemDevice: null },
    },
  };
}

/** Interfaces of a typical host: loopback, container and VM plumbing, common physical names. */
export const HOST_SAMPLES: readonly HostSample[] = [
  sample('loopback', 'lo', null, null, null, '00:00:00:00:00:00'),
  sample('veth', 'veth0', 'veth', 'veth', null, 'ae:3c:11:20:7d:01'),
  sample('veth', 'veth1a2b3c4', 'veth', 'veth', null, 'e2:91:4f:0a:55:12'),
  sample('veth', 'vethd4e5f6', 'veth', 'veth', null, '5a:07:c3:b8:2e:40'),
  sample('tap', 'tap0', 'tun', 'tun', null, 'fe:54:00:6b:1c:02'),
  sample('tap', 'tap100i0', 'tun', 'tun', null, 'ba:2d:7e:90:04:33'),
  sample('tap', 'vnet0', 'tun', 'tun', null, 'fe:54:00:aa:bb:cc'),
  sample('tap', 'tun0', 'tun', 'tun', null, 'c6:19:de:f2:30:77'),
  sample('bridge', 'br0', 'bridge', 'bridge', null, '3e:8a:05:61:9f:21'),
  sample('bridge', 'docker0', 'bridge', 'bridge', null, '02:42:9c:1e:ab:0d'),
  sample('bridge', 'virbr0', 'bridge', 'bridge', null, '52:54:00:3f:88:10'),
  sample('bridge', 'vmbr0', 'bridge', 'bridge', null, '0e:b4:72:d9:16:5c'),
  sample('physical', 'eth0', null, 'e1000e', '8086:10d3', '00:1b:21:3a:4c:5e'),
  sample('physical', 'ens1f0np0', null, 'bnxt_en', '14e4:1750', '00:0a:f7:12:34:56'),
  sample('physical', 'enp3s0', null, 'r8169', '10ec:8168', '00:e0:4c:68:01:02'),
];

const VIRTUAL: ReadonlySet<Family> = new Set(['veth', 'tap', 'bridge']);

/** The samples the match blocks take between them, or null when that is not near-blanket. */
function nearBlanketSamples(matches: readonly MatchSpec[]): string[] | null {
  const taken = HOST_SAMPLES.filter((host) => matches.some((match) => matchSpecMatches(match, host.facts)));
  const takes = (family: Family): boolean => taken.some((host) => host.family === family);
  const everyVirtual = HOST_SAMPLES.every((host) => !VIRTUAL.has(host.family) || taken.includes(host));
  const blanket = takes('loopback') || (everyVirtual && takes('physical'));
  return blanket ? taken.map((host) => host.facts.name) : null;
}

/** The sample names one rule's match block would take if it is near-blanket, else null. */
export function nearBlanketMatch(match: MatchSpec): string[] | null {
  return nearBlanketSamples([match]);
}

/**
 * When the rules without `broad:` are near-blanket together (and none of them alone is), which
 * rules take which samples; null otherwise.
 */
export function nearBlanketUnion(rules: readonly Rule[]): { rules: string[]; samples: string[] } | null {
  const targeted = rules.filter((rule) => rule.broad === null);
  const samples = nearBlanketSamples(targeted.map((rule) => rule.match));
  if (samples === null) return null;
  const involved = targeted.filter((rule) => HOST_SAMPLES.some((host) => matchSpecMatches(rule.match, host.facts)));
  return { rules: involved.map((rule) => rule.name), samples };
}
