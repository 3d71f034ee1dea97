/**
 * What a batch is about to change, as the ledger's write-ahead intents (src/ledger/intents.ts):
 * one per feature, with what its record would say.
 */
import { vendorDevice } from '../facts/pci';
import type { InterfaceFacts } from '../facts/types';
import type { ChangeIntent } from '../ledger/intents';
import type { Trigger } from '../ledger/record';
import type { FeatureChange } from './feature-state';

/** Appends the intents of one check's `changes` to `intents` (one array for a whole batch); returns it. */
export function changeIntents(
  check: { trigger: Trigger; facts: InterfaceFacts; rule: { name: string }; firstCheck: boolean },
  changes: readonly FeatureChange[],
  intents: ChangeIntent[] = [],
): ChangeIntent[] {
  const { facts } = check;
  for (let i = 0; i < changes.length; i++) {
    const change = changes[i] as FeatureChange;
    intents.push({
      event: check.firstCheck ? 'initial' : 'drift',
      trigger: check.trigger,
      interface: facts.name,
      ifindex: facts.ifindex,
      driver: facts.driver,
      pci: facts.pci ? vendorDevice(facts.pci) : null,
      rule: check.rule.name,
      feature: change.feature,
      wanted: change.on ? 'on' : 'off',
      active: change.on ? 'off' : 'on',
    });
  }
  return intents;
}
