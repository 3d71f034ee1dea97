/**
 * A rule's `features:` block → the kernel features it wants on or off.
 *
 * Feature names are checked against the running kernel's list (`hostFeatures`). A name some
 * kernel or ethtool knows but this one lacks is a warning; an unknown name is an error.
 * Conflicts are judged over every known name, so a policy valid on one host is valid on all.
 */
import type { Scalar } from 'yaml';
import { isMap } from 'yaml';
import {
  KNOWN_KERNEL_FEATURES,
  RETIRED_KERNEL_FEATURES,
  findAlias,
  resolveFeatureName,
  suggestFeatureName,
} from './feature-names';
import { onOff, type WantedFeature } from './types';
import { describeNode, type Entry, type KeyCheck, type PolicyYamlReader } from './yaml-reader';

const FEATURE_NAME_HINT =
  'use a kernel feature string (rx-gro, tx-generic-segmentation; `ethtool -k <interface>` lists them) ' +
  'or an ethtool name (gro, gso, tso, tx, sg, ...)';

export class FeaturesReader {
  /** Every name whose expansion decides conflicts: the host's and every known one. */
  private readonly universe: readonly string[];
  private readonly featureName: KeyCheck = {
    check: (name, keyNode, path) => this.checkFeatureName(name, keyNode, path),
    hint: FEATURE_NAME_HINT,
  };

  constructor(
    private readonly yaml: PolicyYamlReader,
    private readonly hostFeatures: readonly string[],
  ) {
    this.universe = [...new Set([...hostFeatures, ...KNOWN_KERNEL_FEATURES, ...RETIRED_KERNEL_FEATURES])];
  }

  read(entry: Entry | undefined, ruleNode: unknown, path: string, ruleName: string): WantedFeature[] {
    const hint = 'list the features to keep, e.g. `features: { gro: off, gso: off }`';
    if (entry === undefined) {
      this.yaml.fail(ruleNode, `${path}.features`, `rule "${ruleName}" has no features block`, { hint });
    }
    if (entry.value !== null && !isMap(entry.value)) {
      const found = describeNode(entry.value);
      this.yaml.fail(entry.at, entry.path, `${entry.path} must be a mapping of feature: on|off, found ${found}`, {
        hint,
      });
    }
    const keys = this.yaml.entries(entry.value, entry.path, this.featureName, 'in features');
    if (keys.size === 0) {
      this.yaml.fail(entry.at, entry.path, `rule "${ruleName}" sets no features`, { hint });
    }

    const wanted = new Map<string, WantedFeature>();
    const claimedBy = new Map<string, { entry: Entry; on: boolean }>();
    for (const featureEntry of keys.values()) {
      const on = this.yaml.onOff(featureEntry);
      for (const feature of resolveFeatureName(featureEntry.name, this.universe)?.features ?? []) {
        const claim = claimedBy.get(feature);
        if (claim !== undefined && claim.on !== on) {
          const line = this.yaml.position(claim.entry.keyNode)?.line ?? '?';
          this.yaml.fail(
            featureEntry.keyNode,
            featureEntry.path,
            `${featureEntry.name}: ${onOff(on)} contradicts ${claim.entry.name}: ${onOff(claim.on)} ` +
              `(line ${line}): both set ${feature}`,
            {
              hint:
                'a rule can want only one state per kernel feature: remove one of the two, ' +
                'or name the kernel features one by one instead of the ethtool alias',
            },
          );
        }
        claimedBy.set(feature, { entry: featureEntry, on });
      }
      this.addWanted(wanted, featureEntry, on);
    }
    return [...wanted.values()];
  }

  /** Refuses a feature name that no kernel and no ethtool alias knows, with a suggestion. */
  private checkFeatureName(name: string, keyNode: Scalar, path: string): void {
    if (resolveFeatureName(name, this.universe) !== null) return;
    const suggestion = suggestFeatureName(name);
    this.yaml.fail(keyNode, path, `unknown feature "${name}"`, {
      hint: `${suggestion ? `did you mean "${suggestion}"? ` : ''}${FEATURE_NAME_HINT}`,
    });
  }

  private addWanted(wanted: Map<string, WantedFeature>, entry: Entry, on: boolean): void {
    const resolved = resolveFeatureName(entry.name, this.hostFeatures);
    if (resolved === null || resolved.features.length === 0) {
      const alias = findAlias(entry.name);
      const what = alias
        ? `${entry.name} stands for ${alias.pattern}, and this kernel has no such feature`
        : `this kernel has no feature ${entry.name}`;
      this.yaml.warn(entry.keyNode, entry.path, `${what}: the setting has no effect on this host`);
      return;
    }
    for (const feature of resolved.features) {
      const existing = wanted.get(feature);
      if (existing === undefined) wanted.set(feature, { feature, on, as: entry.name, explicit: resolved.explicit });
      else existing.explicit ||= resolved.explicit;
    }
  }
}
