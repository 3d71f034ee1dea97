/**
 * What `offloadctl doctor` collects (evidence) and concludes (findings), as plain JSON-ready data.
 * `--json` prints a DoctorReport unchanged; docs/TROUBLESHOOTING.md documents the shape.
 */
import type { Mode } from '../policy/types';

export type Severity = 'critical' | 'warning';

/** A bond or bridge above the interface, nearest first (Harvester: NIC → mgmt-bo → mgmt-br). */
export interface UpperDevice {
  name: string;
  kind: string | null;
  mtu: number | null;
  /** rx-gro active on it; null when unreadable. */
  gro: boolean | null;
}

/** Membership of the Broadcom NetXtreme-E family the GRO/GSO slowness is known on. */
export interface FamilyMembership {
  member: boolean;
  /** The policy's pattern that matched ("14e4:1750"), its chip label and where it was found. */
  pattern: string | null;
  label: string | null;
  source: string | null;
}

export interface Identity {
  driver: string | null;
  driverVersion: string | null;
  firmwareVersion: string | null;
  busInfo: string | null;
  /** "vvvv:dddd", as lspci -n prints it; null for virtual interfaces. */
  pci: string | null;
  kind: string | null;
  mtu: number | null;
  family: FamilyMembership;
  uppers: UpperDevice[];
}

/** One offload that matters for the symptom, as the kernel has it and as the policy wants it. */
export interface OffloadEvidence {
  /** Kernel feature string ("rx-gro", "tx-tcp-segmentation", ...). */
  feature: string;
  /** ethtool's short name ("gro", "gro-hw", "lro", "gso", "tso"). */
  as: string;
  /** Null when this kernel has no such feature. */
  active: boolean | null;
  /** The device cannot change it ("[fixed]"). */
  fixed: boolean;
  /**
   * What was last asked for (ethtool's "[requested on]" when it differs from active): a tap's TSO
   * is off but requested on until the VM's process offers it, which is no one's mistake.
   */
  requested: boolean | null;
  /** What the matching rule wants; null when no rule names it. */
  wanted: boolean | null;
}

/** A policy feature that is not as the matching rule wants it (any feature the rule names). */
export interface PolicyGap {
  feature: string;
  as: string;
  wanted: boolean;
  active: boolean | null;
  /** The device cannot change it: enforcing will not help. */
  fixed: boolean;
}

export interface PolicyVerdict {
  /** The matching rule, or null. */
  rule: string | null;
  mode: Mode | null;
  gaps: PolicyGap[];
}

export interface Direction {
  packets: number;
  bytes: number;
  pps: number;
  /** Bits per second. */
  bps: number;
  /** Average packet size in bytes; null without packets. */
  avgPacketBytes: number | null;
}

export type TrafficVerdict =
  /** Too few packets to say anything: "not enough traffic to judge". */
  | 'quiet'
  /** Received packets far below the MTU, and this interface mostly receives. */
  | 'small-packets'
  /** Small received packets while it mostly sends: acknowledgements, not judged. */
  | 'mostly-sending'
  | 'healthy';

export interface DriverCounter {
  name: string;
  delta: number;
}

export interface TrafficEvidence {
  /** Measured between the two samples of this interface, seconds. */
  windowSec: number;
  rx: Direction;
  tx: Direction;
  rxDropped: number;
  rxErrors: number;
  /** rx_missed_errors + rx_over_errors + rx_fifo_errors: the NIC ran out of buffers. */
  rxMissed: number;
  txDropped: number;
  txErrors: number;
  /** ethtool -S: whether the driver exposes counters, and those about loss that moved. */
  driverCounters: { exposed: boolean; lossCounters: DriverCounter[] };
  verdict: TrafficVerdict;
  /** The verdict in words, with the numbers that led to it. */
  note: string;
}

export interface InterfaceEvidence {
  name: string;
  ifindex: number;
  identity: Identity;
  policy: PolicyVerdict;
  offloads: OffloadEvidence[];
  traffic: TrafficEvidence;
}

export type FindingId =
  | 'gro-gso-symptom'
  | 'offloads-not-as-wanted'
  | 'family-not-covered'
  | 'mtu-differs'
  | 'tso-off-on-guest-device'
  | 'gro-off-on-upper-only'
  | 'packet-loss';

export interface Finding {
  id: FindingId;
  severity: Severity;
  interface: string;
  /** One line: what is wrong, with the numbers. */
  summary: string;
  /** The facts it rests on, as data. */
  evidence: Record<string, unknown>;
  reason: string;
  fix: string;
}

/** Where wanted states came from. */
export interface DoctorSource {
  /** True when the running daemon answered (wanted states are its own). */
  daemon: boolean;
  socket: string;
  /** Why the daemon was not used (unreachable, ...); null when it was. */
  daemonUnavailable: string | null;
  /** The policy the wanted states come from. */
  policy: string;
}

export interface DoctorReport {
  version: string;
  source: DoctorSource;
  /** The requested window, seconds. */
  windowSec: number;
  interfaces: Array<InterfaceEvidence & { findings: Finding[] }>;
  /** Every finding, most severe first. */
  findings: Finding[];
  /** Notes about the run itself (policy knowledge not readable, an interface vanished, ...). */
  notes: string[];
}
