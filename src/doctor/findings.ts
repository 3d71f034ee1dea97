/**
 * Findings as a pure function of the evidence: each says what is wrong with the numbers, why it
 * matters and what to do. Nothing here guesses: a finding needs its facts (the symptom needs
 * enough traffic, a family membership the policy states, and GRO or GSO on).
 */
import { SYMPTOM_FEATURES } from './knowledge';
import { shellQuote } from './shell-quote';
import { LOSS_FRACTION_WORTH_REPORTING } from './traffic';
import type { Finding, InterfaceEvidence, OffloadEvidence, Severity } from './types';

/** What the finding's fix may say, depending on who can act. */
export interface FixContext {
  /** The daemon answered: it can enforce. */
  daemon: boolean;
}

const SEVERITY_ORDER: Record<Severity, number> = { critical: 0, warning: 1 };

const round = (value: number): number => Math.round(value);

function rate(pps: number): string {
  return pps >= 1000 ? `${(pps / 1000).toFixed(1)} kpps` : `${round(pps)} pps`;
}

function activeOn(offloads: readonly OffloadEvidence[], feature: string): boolean {
  return offloads.some((offload) => offload.feature === feature && offload.active === true);
}

function onFeatures(evidence: InterfaceEvidence, features: readonly string[]): string[] {
  return features.filter((feature) => activeOn(evidence.offloads, feature));
}

/** "ethtool -K IF gro off gso off" for what is on now. */
function ethtoolOff(evidence: InterfaceEvidence): string {
  const short: Record<string, string> = { 'rx-gro': 'gro', 'tx-generic-segmentation': 'gso' };
  return `ethtool -K ${shellQuote(evidence.name)} ${onFeatures(evidence, SYMPTOM_FEATURES)
    .map((feature) => `${short[feature] ?? feature} off`)
    .join(' ')}`;
}

/** How to get the rule's wanted state applied, for who runs the doctor. */
function enforcementFix(evidence: InterfaceEvidence, context: FixContext): string {
  const { rule, mode } = evidence.policy;
  if (rule === null) {
    return (
      `no policy rule covers ${evidence.name}: uncomment the shipped policy's family rule (or add its PCI id to a rule turning gro and gso off), ` +
      `check it with \`offloadctl check-policy FILE\`, then \`systemctl reload offloadd\`; until then \`${ethtoolOff(evidence)}\``
    );
  }
  if (!context.daemon) {
    return `rule ${rule} wants this but offloadd is not running: \`systemctl enable --now offloadd\` (or \`npm run install-service\`); right now \`${ethtoolOff(evidence)}\``;
  }
  if (mode === 'report')
    return `rule ${rule} is in report mode: set \`mode: enforce\` on it and \`systemctl reload offloadd\`; right now \`${ethtoolOff(evidence)}\``;
  return `\`offloadctl enforce ${shellQuote(evidence.name)}\`, then \`offloadctl drift --interface ${shellQuote(evidence.name)}\` shows what turned it back on`;
}

function symptom(evidence: InterfaceEvidence, context: FixContext): Finding | null {
  const { identity, traffic } = evidence;
  const on = onFeatures(evidence, SYMPTOM_FEATURES);
  if (!identity.family.member || on.length === 0 || traffic.verdict !== 'small-packets') return null;
  const average = round(traffic.rx.avgPacketBytes ?? 0);
  return {
    id: 'gro-gso-symptom',
    severity: 'critical',
    interface: evidence.name,
    summary: `average received packet ${average} B at ${rate(traffic.rx.pps)} on a ${identity.mtu}-MTU NIC with ${on.join(' and ')} on: this is the BCM57508 GRO/GSO symptom`,
    evidence: {
      avgRxPacketBytes: average,
      rxPps: round(traffic.rx.pps),
      rxBps: round(traffic.rx.bps),
      mtu: identity.mtu,
      on,
      pci: identity.pci,
      family: identity.family,
      windowSec: traffic.windowSec,
    },
    reason:
      `${identity.pci} is in the Broadcom NetXtreme-E family (${identity.family.label ?? identity.family.pattern}, per the ${identity.family.source}) ` +
      'on which GRO/GSO make traffic between nodes arrive in packets far smaller than the MTU allows: VM and bridged traffic ' +
      'between hosts crawls while traffic on one host is fine. Turning GRO and GSO off on the physical port is the known fix.',
    fix: enforcementFix(evidence, context),
  };
}

function notAsWanted(evidence: InterfaceEvidence, context: FixContext): Finding | null {
  const { rule, mode, gaps } = evidence.policy;
  if (rule === null || gaps.length === 0) return null;
  const changeable = gaps.filter((gap) => !gap.fixed);
  const list = gaps
    .map(
      (gap) =>
        `${gap.feature} ${gap.active === null ? 'absent' : gap.active ? 'on' : 'off'} (wanted ${gap.wanted ? 'on' : 'off'}${gap.fixed ? ', fixed' : ''})`,
    )
    .join(', ');
  return {
    id: 'offloads-not-as-wanted',
    severity: 'warning',
    interface: evidence.name,
    summary: `${list}: not as rule ${rule} wants`,
    evidence: { rule, mode, gaps },
    reason:
      changeable.length === 0
        ? 'the device does not let these features change: the rule cannot be enforced here'
        : mode === 'report' && context.daemon
          ? `rule ${rule} is in report mode: offloadd records the difference and leaves it`
          : 'the policy says how this interface should be, and it is not so now',
    fix:
      changeable.length === 0
        ? `nothing to enforce; if the rule should not cover ${evidence.name}, narrow its match (\`offloadctl explain ${shellQuote(evidence.name)}\`)`
        : enforcementFix(evidence, context),
  };
}

function notCovered(evidence: InterfaceEvidence): Finding | null {
  const on = onFeatures(evidence, SYMPTOM_FEATURES);
  if (!evidence.identity.family.member || evidence.policy.rule !== null || on.length === 0) return null;
  return {
    id: 'family-not-covered',
    severity: 'warning',
    interface: evidence.name,
    summary: `${evidence.identity.pci} (${evidence.identity.family.label ?? 'NetXtreme-E family'}) has ${on.join(' and ')} on and no policy rule covers it`,
    evidence: { pci: evidence.identity.pci, family: evidence.identity.family, on },
    reason: `the ${evidence.identity.family.source} names this id as affected by the GRO/GSO slowness, but no active rule of the policy matches ${evidence.name}`,
    fix: `uncomment that rule in the policy (or add ${evidence.identity.pci} to a rule turning gro and gso off), \`offloadctl check-policy FILE\`, \`systemctl reload offloadd\``,
  };
}

function mtuDiffers(evidence: InterfaceEvidence): Finding[] {
  const { mtu, uppers } = evidence.identity;
  if (mtu === null) return [];
  return uppers
    .filter((upper) => upper.mtu !== null && upper.mtu !== mtu)
    .map((upper): Finding => ({
      id: 'mtu-differs',
      severity: 'warning',
      interface: evidence.name,
      summary: `MTU differs between ${evidence.name} (${mtu}) and its ${upper.kind ?? 'master'} ${upper.name} (${upper.mtu})`,
      evidence: { mtu, upper: upper.name, upperKind: upper.kind, upperMtu: upper.mtu },
      reason:
        'frames the larger side sends are dropped or fragmented by the smaller one; guests and peers that believe the larger MTU ' +
        'see stalls on large transfers while small requests work',
      fix: `set one MTU along the path, e.g. \`ip link set ${shellQuote(upper.name)} mtu ${mtu}\` or \`ip link set ${shellQuote(evidence.name)} mtu ${upper.mtu}\`, and the same in the network configuration`,
    }));
}

/**
 * The TSO features a virtio-net guest's large segments travel on (its TSO4/TSO6 offers). The other
 * tx-tcp*-segmentation flags (ECN, mangle-id) are off on a tap by default and say nothing.
 */
const GUEST_TSO_FEATURES: readonly string[] = ['tx-tcp-segmentation', 'tx-tcp6-segmentation'];

/** Host-side devices of guests and containers: taps, and veths without a PCI device behind them. */
function guestFacing(evidence: InterfaceEvidence): boolean {
  const kind = evidence.identity.kind;
  return kind === 'tun' || (kind === 'veth' && evidence.identity.pci === null);
}

function tsoOffOnGuestDevice(evidence: InterfaceEvidence): Finding | null {
  if (!guestFacing(evidence)) return null;
  // Off *and requested off*: someone turned it off. A tap keeps TSO off, requested on, until the
  // VM's process offers it (TUNSETOFFLOAD); that is the guest's choice, not a mistake.
  const off = evidence.offloads.filter(
    (offload) =>
      GUEST_TSO_FEATURES.includes(offload.feature) &&
      offload.active === false &&
      offload.requested === false &&
      !offload.fixed,
  );
  if (off.length === 0) return null;
  return {
    id: 'tso-off-on-guest-device',
    severity: 'warning',
    interface: evidence.name,
    summary: `TSO off on ${evidence.identity.kind === 'tun' ? 'a tap' : 'a veth'} (${off.map((offload) => offload.feature).join(', ')}): virtio receive-segment coalescing needs it`,
    evidence: { kind: evidence.identity.kind, off: off.map((offload) => offload.feature) },
    reason:
      'with TSO off on the host side of a guest, the host cuts every segment to MTU size before the guest sees it: ' +
      'virtio-net receive-segment coalescing gets no large segments and VM throughput drops several times over',
    fix: `\`ethtool -K ${shellQuote(evidence.name)} tso on\`, and turn GRO/GSO off on the physical port instead (a rule matching its driver and PCI id)`,
  };
}

function groOffOnUpperOnly(evidence: InterfaceEvidence): Finding | null {
  if (evidence.identity.pci === null || !activeOn(evidence.offloads, 'rx-gro')) return null;
  const off = evidence.identity.uppers.filter((upper) => upper.gro === false);
  if (off.length === 0) return null;
  return {
    id: 'gro-off-on-upper-only',
    severity: 'warning',
    interface: evidence.name,
    summary: `GRO off on ${off.map((upper) => `${upper.kind ?? 'master'} ${upper.name}`).join(' and ')} only, still on on ${evidence.name}: it has no effect there`,
    evidence: { uppersWithGroOff: off.map((upper) => upper.name), nicGro: true },
    reason:
      'GRO happens where packets enter the stack, on the physical port; a bridge or bond only passes on what its port already coalesced',
    fix: `turn it off on the port: \`ethtool -K ${shellQuote(evidence.name)} gro off\`, kept by a rule matching its driver and PCI id`,
  };
}

function packetLoss(evidence: InterfaceEvidence): Finding | null {
  const { traffic } = evidence;
  if (traffic.verdict === 'quiet') return null;
  const rxLost = traffic.rxDropped + traffic.rxMissed + traffic.rxErrors;
  const txLost = traffic.txDropped + traffic.txErrors;
  const rxFraction = rxLost / Math.max(1, traffic.rx.packets + rxLost);
  const txFraction = txLost / Math.max(1, traffic.tx.packets + txLost);
  if (rxFraction < LOSS_FRACTION_WORTH_REPORTING && txFraction < LOSS_FRACTION_WORTH_REPORTING) return null;
  const percent = (fraction: number): string => `${(fraction * 100).toFixed(2)} %`;
  return {
    id: 'packet-loss',
    severity: 'warning',
    interface: evidence.name,
    summary: `${percent(Math.max(rxFraction, txFraction))} of packets lost (rx ${rxLost}, tx ${txLost} in ${traffic.windowSec.toFixed(1)} s)`,
    evidence: {
      rxDropped: traffic.rxDropped,
      rxMissed: traffic.rxMissed,
      rxErrors: traffic.rxErrors,
      txDropped: traffic.txDropped,
      txErrors: traffic.txErrors,
      driverLossCounters: traffic.driverCounters.lossCounters,
    },
    reason: 'loss above 0.1 % caps TCP throughput by itself, independent of offloads',
    fix: `look at the moved driver counters (\`ethtool -S ${shellQuote(evidence.name)}\`): rx missed/no-buffer counters call for larger rings (\`ethtool -G\`), errors for cabling or the peer`,
  };
}

export function findingsFor(evidence: InterfaceEvidence, context: FixContext): Finding[] {
  return [
    symptom(evidence, context),
    notCovered(evidence),
    notAsWanted(evidence, context),
    ...mtuDiffers(evidence),
    tsoOffOnGuestDevice(evidence),
    groOffOnUpperOnly(evidence),
    packetLoss(evidence),
  ].filter((finding): finding is Finding => finding !== null);
}

/** Most severe first, then by interface name, keeping each interface's order. */
export function sortFindings(findings: readonly Finding[]): Finding[] {
  return [...findings].sort(
    (a, b) => SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity] || a.interface.localeCompare(b.interface),
  );
}
