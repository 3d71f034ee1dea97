/**
 * Which PCI ids belong to the family the GRO/GSO slowness is known on, taken from what the
 * policy files already say rather than from a second list: the rules that turn GRO or GSO off
 * for PCI ids (the loaded policy's and the shipped default's), and the rules the shipped default
 * keeps commented out for the rest of the Thor family ("uncomment to use"). Pure: texts in,
 * patterns out.
 */
import { PolicyError } from '../errors';
import type { PciId } from '../facts/types';
import { pciMatches } from '../policy/match';
import { parsePolicy } from '../policy/load';
import type { PciPattern, Policy, Rule } from '../policy/types';
import type { FamilyMembership } from './types';

/** The features whose being on is the symptom's cause. */
export const SYMPTOM_FEATURES: readonly string[] = ['rx-gro', 'tx-generic-segmentation'];

export interface FamilyPattern {
  pattern: PciPattern;
  /** The chip, from the comment next to the id in the policy file ("BCM57504"), if any. */
  label: string | null;
  /** "rule bcm57508-gro-gso-off in FILE" or "commented rule ... in FILE". */
  source: string;
}

/** A rule that turns GRO or GSO off for specific PCI ids speaks about the family. */
function familyRule(rule: Rule): boolean {
  return (
    rule.match.pci !== undefined &&
    rule.features.some((wanted) => !wanted.on && SYMPTOM_FEATURES.includes(wanted.feature))
  );
}

/** `"14e4:1751"   # BCM57504` → label per id, from comments next to ids anywhere in the text. */
function idLabels(text: string): Map<string, string> {
  const labels = new Map<string, string>();
  for (const match of text.matchAll(/["']([0-9a-fA-F]{4}:[0-9a-fA-F]{4})["'][ \t]*#[ \t]*([^\n]*\S)/g)) {
    labels.set((match[1] as string).toLowerCase(), match[2] as string);
  }
  return labels;
}

function patternsOf(
  rules: readonly Rule[],
  labels: Map<string, string>,
  source: (rule: Rule) => string,
): FamilyPattern[] {
  return rules.filter(familyRule).flatMap((rule) =>
    (rule.match.pci ?? []).map((pattern) => ({
      pattern,
      label: labels.get(`${pattern.vendor}:${pattern.device}`) ?? null,
      source: source(rule),
    })),
  );
}

/**
 * Rules written as comments: in each block of consecutive comment lines, every list item that
 * starts with `- name:`, with the lines indented below it, is uncommented (the `#` and one space
 * removed, so the indentation stays) and parsed as a policy's rules. Prose around it is left out;
 * items that do not parse as rules are skipped.
 */
export function commentedRules(text: string, file: string, hostFeatures: readonly string[]): Rule[] {
  const rules: Rule[] = [];
  const indentOf = (line: string): number => line.length - line.trimStart().length;
  const flush = (block: string[]): void => {
    for (let start = 0; start < block.length; start++) {
      const first = block[start] as string;
      if (!/^\s*- name:/.test(first)) continue;
      const indent = indentOf(first);
      let end = start + 1;
      while (end < block.length) {
        const line = block[end] as string;
        const inside =
          line.trim() === '' ||
          indentOf(line) > indent ||
          (indentOf(line) === indent && line.trimStart().startsWith('- '));
        if (!inside) break;
        end++;
      }
      try {
        rules.push(...parsePolicy(`rules:\n${block.slice(start, end).join('\n')}\n`, file, hostFeatures).rules);
      } catch (error) {
        if (!(error instanceof PolicyError)) throw error;
      }
      start = end - 1;
    }
  };
  let block: string[] = [];
  for (const line of text.split('\n')) {
    const comment = /^(\s*)# ?(.*)$/.exec(line);
    if (comment) {
      block.push(`${comment[1]}${comment[2]}`);
    } else {
      flush(block);
      block = [];
    }
  }
  flush(block);
  return rules;
}

/** The family as one policy file states it: its rules, and its commented-out rules. */
export function familyFromPolicyText(
  policy: Policy,
  text: string,
  file: string,
  hostFeatures: readonly string[],
): FamilyPattern[] {
  const labels = idLabels(text);
  return [
    ...patternsOf(policy.rules, labels, (rule) => `rule ${rule.name} in ${file}`),
    ...patternsOf(
      commentedRules(text, file, hostFeatures),
      labels,
      (rule) => `commented-out rule ${rule.name} in ${file}`,
    ),
  ];
}

/** The first pattern (in the order given: loaded policy first) that covers the id. */
export function familyMembership(id: PciId | null, family: readonly FamilyPattern[]): FamilyMembership {
  const found = id === null ? undefined : family.find((entry) => pciMatches(entry.pattern, id));
  return found
    ? { member: true, pattern: found.pattern.text, label: found.label, source: found.source }
    : { member: false, pattern: null, label: null, source: null };
}
