/**
 * The API's v1 shapes, made from the daemon's internal state in this one place: one name per
 * concept and one JSON shape per value, as docs/API.md's glossary defines them. Feature states
 * are "on"/"off" (ethtool's words); a PCI id is "vvvv:dddd" wherever it appears.
 */
import type { RecordActor } from '../attribution/actor';
import { vendorDevice } from '../facts/pci';
import type { InterfaceFacts } from '../facts/types';
import { onOff, type Mode } from '../policy/types';
import type { FeatureAction } from '../reconcile/apply';
import type { InterfaceStatus } from '../reconcile/managed-interfaces';
import type { FeaturePlan, FeatureStatus } from '../reconcile/plan';

export type OnOff = 'on' | 'off';

/** What is known about an interface. */
export interface InterfaceView {
  interface: string;
  ifindex: number;
  /** IFLA_INFO_KIND ("veth", "bridge", "tun", ...); null for a physical device. */
  kind: string | null;
  mac: string | null;
  up: boolean;
  operstate: string;
  /** ifindex of its bridge or bond. */
  master: number | null;
  driver: string | null;
  busInfo: string | null;
  /** "vvvv:dddd" */
  pci: string | null;
  /** "vvvv:dddd" of the subsystem (board), when the device has one. */
  pciSubsystem: string | null;
}

/** One policy feature on one managed interface, after its last check. */
export interface FeatureView {
  /** The kernel's name (rx-gro). */
  feature: string;
  /** The policy's name for it (gro). */
  as: string;
  wanted: OnOff;
  /** In effect now; null when the device does not have it. */
  active: OnOff | null;
  /** What the last check did. */
  action: FeatureAction;
  reason: string | null;
}

export interface InterfaceStatusView extends InterfaceView {
  rule: string;
  mode: Mode;
  compliant: boolean;
  /** When `compliant` last changed. */
  since: string;
  lastCheck: string;
  lastDrift: string | null;
  /** Drift records about this interface since the daemon started managing it. */
  drifts: number;
  /** The actor of the last drift or flapping record in this run, when one was named. */
  lastActor?: RecordActor;
  features: FeatureView[];
}

/** What enforcing a rule would do to one feature now (explain). */
export interface PlanView {
  feature: string;
  as: string;
  wanted: OnOff;
  active: OnOff | null;
  plan: FeatureStatus;
  reason: string | null;
}

export function interfaceView(facts: InterfaceFacts): InterfaceView {
  const { pci } = facts;
  return {
    interface: facts.name,
    ifindex: facts.ifindex,
    kind: facts.kind,
    mac: facts.mac,
    up: facts.up,
    operstate: facts.operstate,
    master: facts.master,
    driver: facts.driver,
    busInfo: facts.busInfo,
    pci: pci ? vendorDevice(pci) : null,
    pciSubsystem: pci?.subsystemVendor && pci.subsystemDevice ? `${pci.subsystemVendor}:${pci.subsystemDevice}` : null,
  };
}

export function statusView(status: InterfaceStatus, lastActor?: RecordActor): InterfaceStatusView {
  return {
    ...interfaceView(status.facts),
    rule: status.rule,
    mode: status.mode,
    compliant: status.compliant,
    since: status.since,
    lastCheck: status.lastCheck,
    lastDrift: status.lastDrift,
    drifts: status.driftCount,
    ...(lastActor ? { lastActor } : {}),
    features: status.features.map((feature) => ({
      feature: feature.feature,
      as: feature.as,
      wanted: onOff(feature.wanted),
      active: feature.after === null ? null : onOff(feature.after),
      action: feature.action,
      reason: feature.reason,
    })),
  };
}

export function planView(entry: FeaturePlan): PlanView {
  return {
    feature: entry.feature,
    as: entry.as,
    wanted: onOff(entry.wanted),
    active: entry.active === null ? null : onOff(entry.active),
    plan: entry.status,
    reason: entry.reason,
  };
}
