/**
 * The interfaces the other managers' settings are compared on: the host's interfaces a policy
 * matches (check-policy, offline), or those a doctor report found managed; and how the overlaps
 * read on a terminal. Shared by `offloadctl check-policy --root` and `offloadctl doctor --root`.
 */
import { dumpLinks } from '../../events/link-events';
import type { LinkMessage } from '../../events/link-message';
import { InterfaceFactsSource, linkFactsOf } from '../../facts/interface-facts';
import { matchPolicy } from '../../policy/match';
import type { Policy, WantedFeature } from '../../policy/types';
import type { DoctorReport } from '../types';
import { findManagerSettings, findOverlaps, type ManagerOverlap, type PolicyInterface } from './index';

/** Every interface of this network namespace that a rule of `policy` matches, with what it wants. */
export function policyInterfacesOnHost(policy: Policy, sysfsRoot: string): PolicyInterface[] {
  const facts = new InterfaceFactsSource(sysfsRoot);
  const matched: PolicyInterface[] = [];
  for (const link of dumpLinks()) {
    if (link.type === 'del') continue;
    let device;
    try {
      device = facts.device(link);
    } catch {
      continue; // vanished meanwhile
    }
    const full = { ...linkFactsOf(link), ...device };
    const { rule } = matchPolicy(policy, full);
    if (rule)
      matched.push({ name: full.name, mac: full.mac, driver: full.driver, kind: full.kind, wanted: rule.features });
  }
  return matched.sort((a, b) => a.name.localeCompare(b.name));
}

/** The interfaces a doctor report found under a rule, with the wanted states it shows. */
export function managedInterfacesOfReport(
  report: DoctorReport,
  links: readonly LinkMessage[] = dumpLinks(),
): PolicyInterface[] {
  const macs = new Map(links.map((link) => [link.name, linkFactsOf(link).mac]));
  return report.interfaces
    .filter((entry) => entry.policy.rule !== null)
    .map((entry) => ({
      name: entry.name,
      mac: macs.get(entry.name) ?? null,
      driver: entry.identity.driver,
      kind: entry.identity.kind,
      wanted: entry.offloads
        .filter((offload) => offload.wanted !== null)
        .map((offload): WantedFeature => ({
          feature: offload.feature,
          on: offload.wanted as boolean,
          as: offload.as,
          explicit: true,
        })),
    }));
}

/** The other managers' settings under `root` that set what the doctor's managed interfaces want. */
export function otherManagersOfReport(report: DoctorReport, root = '/'): ManagerOverlap[] {
  const interfaces = managedInterfacesOfReport(report);
  return interfaces.length === 0 ? [] : findOverlaps(findManagerSettings(root), interfaces);
}

/** One line per overlap: `other manager: FILE:LINE (TOOL) turns gro on (conflicts with the policy) on eth0`. */
export function formatOverlaps(overlaps: readonly ManagerOverlap[]): string {
  return overlaps.map((overlap) => `other manager: ${overlap.summary}\n`).join('');
}
