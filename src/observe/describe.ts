/**
 * How a ledger record reads in the journal: one place for the wording, level, MESSAGE_ID and
 * structured fields of every record kind.
 */
import type { LedgerRecord } from '../ledger/record';
import type { Level, LogFields } from './log';
import type { MessageKind } from './message-ids';

export interface RecordDescription {
  kind: MessageKind;
  level: Level;
  message: string;
  fields: LogFields;
}

export function describeRecord(record: LedgerRecord): RecordDescription {
  const fields: LogFields = {
    INTERFACE: record.interface,
    IFINDEX: record.ifindex,
    OFFLOADD_DRIVER: record.driver ?? undefined,
    OFFLOADD_PCI: record.pci ?? undefined,
    OFFLOADD_RULE: record.rule,
    OFFLOADD_FEATURE: record.feature,
    OFFLOADD_EXPECTED: record.expected,
    OFFLOADD_OBSERVED: record.observed,
    OFFLOADD_ACTION: record.action,
    OFFLOADD_TRIGGER: record.trigger,
    OFFLOADD_SEQ: record.seq,
    OFFLOADD_CORRECTION_USEC: record.correctionUs,
  };
  const who = record.interface ?? '';
  const change = `${record.feature} ${record.observed} → ${record.expected}`;
  const rule = `rule ${record.rule}`;
  switch (record.kind) {
    case 'resync':
      return { kind: 'resync', level: 'warning', message: `Resynchronising: ${record.reason ?? 'events were lost'}; re-reading ${record.count ?? 'all'} links`, fields: { ...fields, OFFLOADD_LINKS: record.count, OFFLOADD_NOTICES: record.notices } };
    case 'unenforceable':
      return { kind: 'unenforceable', level: 'warning', message: `${who}: cannot keep ${record.feature} ${record.expected} (${rule}): ${record.reason ?? 'unenforceable'}`, fields };
    case 'flapping':
      return { kind: 'flapping', level: 'warning', message: `${who}: ${record.feature} keeps being turned ${record.observed}: ${record.reason ?? ''}`, fields: { ...fields, OFFLOADD_COUNT: record.count, OFFLOADD_BACKOFF_SEC: record.backoffSec } };
    case 'initial':
    case 'drift': {
      const initial = record.kind === 'initial';
      const what = initial ? `${change} (${rule})` : `${record.feature} drifted ${record.expected} → ${record.observed} (${rule}, seen on ${record.trigger})`;
      switch (record.action) {
        case 'enforced':
          return { kind: initial ? 'enforced' : 'drift', level: initial ? 'notice' : 'warning', message: `${who}: ${what}; ${initial ? 'set' : `set ${record.expected} again`} in ${record.correctionUs ?? '?'} µs`, fields };
        case 'reported':
          return { kind: 'drift', level: 'warning', message: `${who}: ${what}; report mode, left as it is`, fields };
        case 'contended':
          return { kind: 'drift', level: 'warning', message: `${who}: ${what}; set ${record.expected} but another writer changed it back at once; correcting again on its event`, fields };
        case 'deferred':
          return { kind: 'drift', level: 'warning', message: `${who}: ${what}; correction held back (flapping back-off)`, fields };
        default:
          return { kind: 'enforceFailed', level: 'error', message: `${who}: ${what}; could not set it: ${record.reason ?? 'unknown error'}`, fields };
      }
    }
  }
}
