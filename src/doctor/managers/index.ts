/**
 * "The other managers, found before they fight": every setting of another tool that sets a
 * feature the policy also sets on the same interface, with its file and line, and whether it
 * agrees with the policy. Reading is confined to a root directory (`--root`); matching and
 * comparing are pure.
 */
import { KNOWN_KERNEL_FEATURES, resolveFeatureName } from '../../policy/feature-names';
import { globMatch } from '../../policy/match';
import type { WantedFeature } from '../../policy/types';
import { readIfcfg } from './ifcfg';
import { readIfupdown } from './ifupdown';
import { readNetworkManager } from './networkmanager';
import { ConfigReader } from './reader';
import { readLinkFiles } from './systemd-link';
import { readTuned } from './tuned';
import type { ManagedInterface, ManagerSetting, ManagerTarget, ManagerTool } from './types';
import { readUdevRules } from './udev';

export type { ManagedInterface, ManagerSetting, ManagerTarget, ManagerTool } from './types';
export { ConfigReader } from './reader';

/** Every setting of every supported tool under `root`, in the order the tools apply them. */
export function findManagerSettings(root = '/'): ManagerSetting[] {
  const reader = new ConfigReader(root);
  return [
    ...readNetworkManager(reader),
    ...readLinkFiles(reader),
    ...readIfcfg(reader),
    ...readIfupdown(reader),
    ...readUdevRules(reader),
    ...readTuned(reader),
  ];
}

export type TargetMatch = 'yes' | 'no' | 'maybe';

function listMatches(patterns: string[] | null, value: string | null): TargetMatch {
  if (patterns === null) return 'yes';
  const negated = patterns[0]?.startsWith('!') ?? false;
  if (value === null) return 'maybe';
  const hit = patterns.some((pattern) => globMatch(pattern.replace(/^!/, ''), value));
  return hit !== negated ? 'yes' : 'no';
}

/** Whether a setting's target takes in the interface; "maybe" when facts or keys are missing. */
export function matchTarget(target: ManagerTarget, facts: ManagedInterface): TargetMatch {
  const results = [
    listMatches(target.names, facts.name),
    listMatches(target.macs, facts.mac),
    listMatches(target.drivers, facts.driver),
    // Kind= matches virtual devices by kind; a physical device has none (systemd matches "").
    listMatches(target.kinds, facts.kind ?? ''),
  ];
  if (results.includes('no')) return 'no';
  if (results.includes('maybe') || target.unevaluated.length > 0) return 'maybe';
  return 'yes';
}

/** An interface the policy manages, with the features it wants there. */
export interface PolicyInterface extends ManagedInterface {
  wanted: WantedFeature[];
}

export interface ManagerOverlapFeature {
  /** The kernel feature both set. */
  feature: string;
  /** As the other tool writes it. */
  as: string;
  managerOn: boolean;
  policyOn: boolean;
  agrees: boolean;
  line: number;
}

export interface ManagerOverlap {
  tool: ManagerTool;
  file: string;
  line: number;
  ifname: string;
  /** "yes": the setting targets the interface; "maybe": it may (facts or match keys unknown). */
  matches: 'yes' | 'maybe';
  active: boolean;
  features: ManagerOverlapFeature[];
  /** One line for people: "/etc/systemd/network/10-bnxt.link:5 (systemd .link) turns gro on on eth0; the policy turns it off". */
  summary: string;
}

function summarize(overlap: Omit<ManagerOverlap, 'summary'>): string {
  const parts = overlap.features.map(
    (feature) =>
      `turns ${feature.as} ${feature.managerOn ? 'on' : 'off'} (${feature.agrees ? 'agrees with' : 'conflicts with'} the policy)`,
  );
  const where = `${overlap.file}:${overlap.features[0]?.line ?? overlap.line}`;
  const qualifier = `${overlap.matches === 'maybe' ? ', may target it' : ''}${overlap.active ? '' : ', profile not active'}`;
  return `${where} (${overlap.tool}${qualifier}) ${parts.join(', ')} on ${overlap.ifname}`;
}

/**
 * Every setting that sets a feature the policy also sets on the same interface. Silent for
 * settings that target other interfaces, and for .link files after the first that matches.
 */
export function findOverlaps(
  settings: readonly ManagerSetting[],
  interfaces: readonly PolicyInterface[],
  hostFeatures: readonly string[] = KNOWN_KERNEL_FEATURES,
): ManagerOverlap[] {
  const overlaps: ManagerOverlap[] = [];
  for (const facts of interfaces) {
    const wanted = new Map(facts.wanted.map((feature) => [feature.feature, feature]));
    let linkDecided = false;
    for (const setting of settings) {
      if (setting.tool === 'systemd .link' && linkDecided) continue;
      const match = matchTarget(setting.target, facts);
      if (match === 'no') continue;
      if (setting.tool === 'systemd .link' && match === 'yes') linkDecided = true;
      const features: ManagerOverlapFeature[] = [];
      for (const feature of setting.features) {
        for (const kernel of resolveFeatureName(feature.name, hostFeatures)?.features ?? []) {
          const policy = wanted.get(kernel);
          if (!policy) continue;
          features.push({
            feature: kernel,
            as: feature.name,
            managerOn: feature.on,
            policyOn: policy.on,
            agrees: feature.on === policy.on,
            line: feature.line,
          });
        }
      }
      if (features.length === 0) continue;
      const overlap = {
        tool: setting.tool,
        file: setting.file,
        line: setting.line,
        ifname: facts.name,
        matches: match,
        active: setting.active,
        features,
      };
      overlaps.push({ ...overlap, summary: summarize(overlap) });
    }
  }
  return overlaps;
}
