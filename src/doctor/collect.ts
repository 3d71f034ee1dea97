/**
 * Gathers the doctor's evidence from the kernel (rtnetlink, ethtool ioctls, sysfs under a
 * configurable root) and the wanted states from the running daemon, or from the policy read
 * locally when there is none; then hands it all to the pure findings. Read-only throughout:
 * nothing here needs more privilege than reading interface state.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { addon, type LinkStats } from '../addon/binding';
import { call } from '../api/client';
import type { ExplainResult } from '../api/protocol';
import { KernelError, OffloaddError, PolicyError } from '../errors';
import { dumpLinks } from '../events/link-events';
import type { LinkMessage } from '../events/link-message';
import { InterfaceFactsSource, linkFactsOf } from '../facts/interface-facts';
import { vendorDevice } from '../facts/pci';
import type { InterfaceFacts } from '../facts/types';
import { resolveFeatureName } from '../policy/feature-names';
import { BUILT_IN_POLICY_LABEL, defaultPolicyPath, loadConfiguredPolicy, loadPolicyFile } from '../policy/load';
import { findRule } from '../policy/match';
import type { Mode, Policy } from '../policy/types';
import { FeatureTable, type FeatureSnapshot } from '../reconcile/feature-state';
import { planFeatures, type FeaturePlan } from '../reconcile/plan';
import { VERSION } from '../version';
import { findingsFor, sortFindings } from './findings';
import { familyMembership, familyOfPolicy, shippedFamily, type FamilyPattern } from './knowledge';
import { trafficEvidence, type CounterSample } from './traffic';
import type {
  DoctorReport,
  DoctorSource,
  Identity,
  InterfaceEvidence,
  OffloadEvidence,
  PolicyVerdict,
  UpperDevice,
} from './types';

/** The offloads that matter for the symptom, by ethtool's names (tso expands to tx-tcp*-segmentation). */
const OFFLOADS: ReadonlyArray<{ as: string; name: string }> = [
  { as: 'gro', name: 'rx-gro' },
  { as: 'gro-hw', name: 'rx-gro-hw' },
  { as: 'lro', name: 'rx-lro' },
  { as: 'gso', name: 'tx-generic-segmentation' },
  { as: 'tso', name: 'tso' },
];

/** Bond in bridge in ...: a guard against a master loop in a malformed dump. */
const MAX_UPPER_DEPTH = 8;

export interface DoctorOptions {
  /** Interface names; empty = every interface of this namespace but lo. */
  interfaces: string[];
  windowSec: number;
  sysfsRoot: string;
  socket: string;
  /** Local policy file when the daemon is not running; null = offloadd's own default choice. */
  policyPath: string | null;
}

/** Something the doctor had to read could not be read (no such interface, netlink failed). */
export class CannotReadError extends OffloaddError {
  constructor(message: string, hint?: string, cause?: unknown) {
    super('ERR_CANNOT_READ', message, { hint, cause });
  }
}

/** Where wanted states come from: the daemon's explain, or the policy read here. */
interface WantedSource {
  source: DoctorSource;
  /** The loaded policy, when it could be read here (always without a daemon). */
  policy: Policy | null;
  explain(
    link: LinkMessage,
    facts: InterfaceFacts,
    snapshot: FeatureSnapshot,
  ): Promise<{ rule: string | null; mode: Mode | null; plan: FeaturePlan[] }>;
}

function localWanted(policy: Policy | null) {
  return (_link: LinkMessage, facts: InterfaceFacts, snapshot: FeatureSnapshot) => {
    const rule = policy ? findRule(policy, facts, facts) : null;
    return Promise.resolve(
      rule
        ? { rule: rule.name, mode: rule.mode ?? (policy as Policy).mode, plan: planFeatures(rule.features, snapshot) }
        : { rule: null, mode: null, plan: [] },
    );
  };
}

async function wantedSource(options: DoctorOptions, table: FeatureTable, notes: string[]): Promise<WantedSource> {
  const readLocal = (path: string | null): Policy | null => {
    try {
      return loadConfiguredPolicy(path, table.names);
    } catch (error) {
      if (!(error instanceof PolicyError)) throw error;
      notes.push(`policy not usable, wanted states unknown: ${error.toString()}`);
      return null;
    }
  };
  try {
    const status = await call(options.socket, 'status', {});
    const path = status.policy.path === BUILT_IN_POLICY_LABEL ? defaultPolicyPath() : status.policy.path;
    let policy: Policy | null = null;
    try {
      policy = loadPolicyFile(path, table.names);
    } catch (error) {
      if (!(error instanceof PolicyError)) throw error;
      notes.push(
        `cannot read the daemon's policy ${path} here (${error.message}): the affected family is taken from the shipped policy only`,
      );
    }
    return {
      source: { daemon: true, socket: options.socket, daemonUnavailable: null, policy: status.policy.path },
      policy,
      explain: async (link, facts, snapshot) => {
        try {
          const result: ExplainResult = await call(options.socket, 'explain', { interface: link.name });
          // The API's "on"/"off" back to the plan's booleans the findings work with.
          const plan = result.plan.map((entry): FeaturePlan => ({
            feature: entry.feature,
            as: entry.as,
            wanted: entry.wanted === 'on',
            active: entry.active === null ? null : entry.active === 'on',
            status: entry.plan,
            reason: entry.reason,
          }));
          return { rule: result.rule, mode: result.mode, plan };
        } catch (error) {
          if (!(error instanceof OffloaddError)) throw error;
          notes.push(
            `the daemon could not explain ${link.name} (${error.message}): its wanted states come from the policy read here`,
          );
          return localWanted(policy)(link, facts, snapshot);
        }
      },
    };
  } catch (error) {
    if (!(error instanceof OffloaddError) || error instanceof PolicyError) throw error;
    const policy = readLocal(options.policyPath);
    return {
      source: {
        daemon: false,
        socket: options.socket,
        daemonUnavailable: error.message,
        policy: policy?.path ?? options.policyPath ?? '(none)',
      },
      policy,
      explain: localWanted(policy),
    };
  }
}

/** The family as the loaded policy and the shipped default state it (loaded policy first). */
function familyKnowledge(policy: Policy | null): FamilyPattern[] {
  const own =
    policy && policy.path !== BUILT_IN_POLICY_LABEL && policy.path !== defaultPolicyPath()
      ? familyOfPolicy(policy, policy.path)
      : [];
  return [...own, ...shippedFamily()];
}

function sample(link: LinkMessage): { stats: LinkStats; counters: CounterSample } {
  const stats = addon.linkStats(link.ifindex);
  let driver: CounterSample['driver'] = null;
  try {
    const read = addon.driverStats(link.name, link.ifindex);
    driver = read.names.length > 0 ? read : null;
  } catch (error) {
    if (error instanceof KernelError && error.vanished) throw error;
    driver = null; // EOPNOTSUPP: the driver has no counters of its own
  }
  return { stats, counters: { atNs: process.hrtime.bigint(), ...stats.stats, driver } };
}

function offloadsOf(table: FeatureTable, snapshot: FeatureSnapshot, plan: readonly FeaturePlan[]): OffloadEvidence[] {
  const wanted = new Map(plan.map((entry) => [entry.feature, entry.wanted]));
  return OFFLOADS.flatMap(({ as, name }) => {
    const features = resolveFeatureName(name, table.names)?.features ?? [];
    if (features.length === 0)
      return [{ feature: name, as, active: null, fixed: false, requested: null, wanted: null }];
    return features.map((feature): OffloadEvidence => {
      const state = snapshot.get(feature);
      return {
        feature,
        as,
        active: state ? state.active : null,
        fixed: state ? !state.changeable || state.neverChanges : false,
        requested: state ? state.requested : null,
        wanted: wanted.get(feature) ?? null,
      };
    });
  });
}

function policyVerdict(explained: { rule: string | null; mode: Mode | null; plan: FeaturePlan[] }): PolicyVerdict {
  return {
    rule: explained.rule,
    mode: explained.mode,
    gaps: explained.plan
      .filter((entry) => entry.status === 'differs' || entry.status === 'unenforceable')
      .map((entry) => ({
        feature: entry.feature,
        as: entry.as,
        wanted: entry.wanted,
        active: entry.active,
        fixed: entry.status === 'unenforceable',
      })),
  };
}

function uppersOf(link: LinkMessage, byIndex: Map<number, LinkMessage>, table: FeatureTable): UpperDevice[] {
  const uppers: UpperDevice[] = [];
  for (let master = link.master; master !== null && uppers.length < MAX_UPPER_DEPTH;) {
    const upper = byIndex.get(master);
    if (!upper) break;
    let mtu: number | null = null;
    let gro: boolean | null = null;
    try {
      mtu = addon.linkStats(upper.ifindex).mtu;
      gro = table.read(upper.name, upper.ifindex).get('rx-gro')?.active ?? null;
    } catch {
      // vanished meanwhile: shown without
    }
    uppers.push({ name: upper.name, kind: upper.kind, mtu, gro });
    master = upper.master;
  }
  return uppers;
}

function driverVersions(link: LinkMessage): { driverVersion: string | null; firmwareVersion: string | null } {
  try {
    const info = addon.driverInfo(link.name, link.ifindex);
    return { driverVersion: info.version || null, firmwareVersion: info.firmware || null };
  } catch {
    return { driverVersion: null, firmwareVersion: null }; // EOPNOTSUPP (lo and some virtual devices)
  }
}

function targetsOf(names: readonly string[], links: readonly LinkMessage[]): LinkMessage[] {
  if (names.length === 0) return links.filter((link) => link.name !== 'lo');
  const byName = new Map(links.map((link) => [link.name, link]));
  return [...new Set(names)].map((name) => {
    const link = byName.get(name);
    if (!link)
      throw new CannotReadError(
        `no interface "${name}" in this network namespace`,
        '`ip link` lists the interfaces; run the doctor in the namespace that has it (ip netns exec NS offloadctl doctor)',
      );
    return link;
  });
}

/** What is known of one interface before its second traffic sample. */
type Prepared = Omit<InterfaceEvidence, 'traffic'> & { link: LinkMessage; first: ReturnType<typeof sample> };

/** Runs the whole diagnosis; throws CannotReadError when the kernel cannot be read. */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const notes: string[] = [];
  let table: FeatureTable;
  let links: LinkMessage[];
  try {
    table = FeatureTable.fromKernel();
    links = dumpLinks();
  } catch (error) {
    throw new CannotReadError(
      `cannot read the interfaces: ${(error as Error).message}`,
      'the doctor needs rtnetlink and ethtool ioctls (no privilege needed)',
      error,
    );
  }
  const targets = targetsOf(options.interfaces, links);
  const byIndex = new Map(links.map((link) => [link.ifindex, link]));
  const wanted = await wantedSource(options, table, notes);
  const family = familyKnowledge(wanted.policy);
  const factsSource = new InterfaceFactsSource(options.sysfsRoot);

  const firstSamples = new Map<number, ReturnType<typeof sample>>();
  const vanished = (link: LinkMessage, error: unknown): boolean => {
    if (!(error instanceof KernelError && error.vanished)) return false;
    notes.push(`${link.name} went away during the diagnosis`);
    return true;
  };
  for (const link of targets) {
    try {
      firstSamples.set(link.ifindex, sample(link));
    } catch (error) {
      if (!vanished(link, error))
        throw new CannotReadError(
          `cannot read the counters of ${link.name}: ${(error as Error).message}`,
          undefined,
          error,
        );
    }
  }
  // The window runs while everything else is read (and the daemon asked).
  const window = sleep(options.windowSec * 1000);

  const examine = async (link: LinkMessage, first: ReturnType<typeof sample>): Promise<Prepared> => {
    const facts: InterfaceFacts = { ...linkFactsOf(link), ...factsSource.device(link) };
    const snapshot = table.read(link.name, link.ifindex);
    const explained = await wanted.explain(link, facts, snapshot);
    const identity: Identity = {
      driver: facts.driver,
      ...driverVersions(link),
      busInfo: facts.busInfo,
      pci: facts.pci ? vendorDevice(facts.pci) : null,
      kind: facts.kind,
      mtu: first.stats.mtu,
      family: familyMembership(facts.pci, family),
      uppers: uppersOf(link, byIndex, table),
    };
    return {
      link,
      first,
      name: link.name,
      ifindex: link.ifindex,
      identity,
      policy: policyVerdict(explained),
      offloads: offloadsOf(table, snapshot, explained.plan),
    };
  };

  const prepared: Prepared[] = [];
  for (const link of targets) {
    const first = firstSamples.get(link.ifindex);
    if (!first) continue;
    try {
      prepared.push(await examine(link, first));
    } catch (error) {
      if (!vanished(link, error)) throw error;
    }
  }
  await window;

  // An interface deleted and created again under the same name meanwhile is another interface
  // (another ifindex): it is examined as found now, without a traffic window of its own.
  const byNameNow = new Map(dumpLinks().map((link) => [link.name, link]));
  const recreated = async (link: LinkMessage): Promise<Prepared | null> => {
    const now = byNameNow.get(link.name);
    if (now === undefined || now.ifindex === link.ifindex) return null;
    notes.push(
      `${link.name} was deleted and created again during the diagnosis (ifindex ${link.ifindex}, now ${now.ifindex}): ` +
        'the new one is examined without a traffic window',
    );
    try {
      return await examine(now, sample(now));
    } catch (error) {
      if (vanished(now, error)) return null;
      throw error;
    }
  };

  const interfaces: DoctorReport['interfaces'] = [];
  for (const target of targets) {
    let entry = prepared.find((candidate) => candidate.link === target) ?? null;
    let second: ReturnType<typeof sample> | null = null;
    if (entry !== null) {
      try {
        second = sample(entry.link);
      } catch (error) {
        if (!vanished(entry.link, error)) {
          throw new CannotReadError(
            `cannot read the counters of ${entry.link.name}: ${(error as Error).message}`,
            undefined,
            error,
          );
        }
        entry = null;
      }
    }
    if (entry === null) {
      entry = await recreated(target);
      if (entry === null) continue;
      second = entry.first;
    }
    const { link: _link, first, ...evidence } = entry;
    const complete: InterfaceEvidence = {
      ...evidence,
      traffic: trafficEvidence(first.counters, (second as ReturnType<typeof sample>).counters, evidence.identity.mtu),
    };
    interfaces.push({ ...complete, findings: findingsFor(complete, { daemon: wanted.source.daemon }) });
  }
  return {
    version: VERSION,
    source: wanted.source,
    windowSec: options.windowSec,
    interfaces,
    findings: sortFindings(interfaces.flatMap((entry) => entry.findings)),
    notes,
  };
}
