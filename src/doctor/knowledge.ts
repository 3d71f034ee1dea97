/**
 * Which PCI ids belong to the family the GRO/GSO slowness is known on. The family is data
 * (affected-family.json, next to this file: ids, chip names, and which shipped rule names each id); the
 * shipped policy's rules are written from it, and a unit test checks that they agree. The loaded
 * policy adds its own rules that turn GRO or GSO off for PCI ids. Pure: data in, patterns out.
 */
import family from './affected-family.json';
import type { PciId } from '../facts/types';
import { pciMatches } from '../policy/match';
import type { PciPattern, Policy, Rule } from '../policy/types';
import type { FamilyMembership } from './types';

/** The features whose being on is the symptom's cause. */
export const SYMPTOM_FEATURES: readonly string[] = family.symptomFeatures;

/** One affected chip as affected-family.json states it. */
export interface AffectedChip {
  /** vendor:device, as `lspci -n` prints it. */
  pci: string;
  label: string | null;
  /** The shipped policy's rule that names it. */
  rule: string;
}

/** The shipped policy's rules about the family: active, or there to be uncommented. */
export interface FamilyRule {
  name: string;
  shipped: 'active' | 'commented-out';
}

export const AFFECTED_DRIVER: string = family.driver;
export const AFFECTED_CHIPS: readonly AffectedChip[] = family.chips;
export const FAMILY_RULES: readonly FamilyRule[] = family.rules as FamilyRule[];

export interface FamilyPattern {
  pattern: PciPattern;
  /** The chip's name ("BCM57504"), if the family data has one for the id. */
  label: string | null;
  /** "rule bcm57508-gro-gso-off in FILE" or "commented-out rule ... in the shipped policy". */
  source: string;
}

const LABELS = new Map(AFFECTED_CHIPS.map((chip) => [chip.pci, chip.label]));

function chipPattern(pci: string): PciPattern {
  const [vendor = '', device = ''] = pci.split(':');
  return { vendor, device, subsystemVendor: null, subsystemDevice: null, text: pci };
}

/** The family as the shipped policy states it: its active rule's ids, then the commented-out rule's. */
export function shippedFamily(): FamilyPattern[] {
  return AFFECTED_CHIPS.map((chip) => {
    const rule = FAMILY_RULES.find((candidate) => candidate.name === chip.rule);
    const how = rule?.shipped === 'commented-out' ? 'commented-out rule' : 'rule';
    return { pattern: chipPattern(chip.pci), label: chip.label, source: `${how} ${chip.rule} in the shipped policy` };
  });
}

/** A rule that turns GRO or GSO off for specific PCI ids speaks about the family. */
function familyRule(rule: Rule): boolean {
  return (
    rule.match.pci !== undefined &&
    rule.features.some((wanted) => !wanted.on && SYMPTOM_FEATURES.includes(wanted.feature))
  );
}

/** The family as one loaded policy states it, in its active rules (labels from the family data). */
export function familyOfPolicy(policy: Policy, file: string): FamilyPattern[] {
  return policy.rules.filter(familyRule).flatMap((rule) =>
    (rule.match.pci ?? []).map((pattern) => ({
      pattern,
      label: LABELS.get(`${pattern.vendor}:${pattern.device}`) ?? null,
      source: `rule ${rule.name} in ${file}`,
    })),
  );
}

/** The first pattern (in the order given: loaded policy first) that covers the id. */
export function familyMembership(id: PciId | null, patterns: readonly FamilyPattern[]): FamilyMembership {
  const found = id === null ? undefined : patterns.find((entry) => pciMatches(entry.pattern, id));
  return found
    ? { member: true, pattern: found.pattern.text, label: found.label, source: found.source }
    : { member: false, pattern: null, label: null, source: null };
}
