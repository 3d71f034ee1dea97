/**
 * How a ledger record reads in the journal: one place for the wording, level, MESSAGE_ID and
 * structured fields of every record event.
 */
import { actorJournalFields, actorName, describeActor, type RecordActor } from '../attribution/actor';
import type { LedgerRecord } from '../ledger/record';
import type { Level, LogFields } from './log';
import type { JournalMessage } from './message-ids';

export interface RecordDescription {
  message: JournalMessage;
  level: Level;
  text: string;
  fields: LogFields;
}

/**
 * One MESSAGE_ID per record event, so `journalctl MESSAGE_ID=<drift>` finds exactly the ledger's
 * drift records (and `offloadctl status`'s drift count); the action only changes the level and
 * the wording. Field names are the ledger's, upper-cased under OFFLOADD_ (INTERFACE and IFINDEX
 * as systemd-networkd names them).
 */
export function describeRecord(record: LedgerRecord): RecordDescription {
  const fields: LogFields = {
    INTERFACE: record.interface,
    IFINDEX: record.ifindex,
    OFFLOADD_EVENT: record.event,
    OFFLOADD_DRIVER: record.driver ?? undefined,
    OFFLOADD_PCI: record.pci ?? undefined,
    OFFLOADD_RULE: record.rule,
    OFFLOADD_FEATURE: record.feature,
    OFFLOADD_WANTED: record.wanted,
    OFFLOADD_ACTIVE: record.active,
    OFFLOADD_ACTION: record.action,
    OFFLOADD_TRIGGER: record.trigger,
    OFFLOADD_SEQ: record.seq,
    OFFLOADD_CORRECTION_USEC: record.correctionUs,
    OFFLOADD_INTERFACES: record.interfaces,
    OFFLOADD_NOTICES: record.notices,
    OFFLOADD_CORRECTIONS: record.corrections,
    OFFLOADD_BACKOFF_SEC: record.backoffSec,
  };
  if (record.actor) Object.assign(fields, actorFields(record)); // after the others, as journald shows them
  const who = record.interface ?? '';
  const rule = `rule ${record.rule}`;
  switch (record.event) {
    case 'resync':
      return {
        message: 'resync',
        level: 'warning',
        text: `Resynchronising: ${record.reason ?? 'events were lost'}; re-reading ${record.interfaces ?? 'all'} interfaces`,
        fields,
      };
    case 'unenforceable':
      return {
        message: 'unenforceable',
        level: 'warning',
        text: `${who}: cannot keep ${record.feature} ${record.wanted} (${rule}): ${record.reason ?? 'unenforceable'}`,
        fields,
      };
    case 'flapping':
      return {
        message: 'flapping',
        level: 'warning',
        text: record.actor
          ? `${who}: backing off: ${actorName(record.actor)} keeps turning ${record.feature} ${record.active}: ${record.reason ?? ''}`
          : `${who}: ${record.feature} keeps being turned ${record.active}: ${record.reason ?? ''}`,
        fields,
      };
    case 'initial':
    case 'drift': {
      const initial = record.event === 'initial';
      const what = initial
        ? `${record.feature} ${record.active} → ${record.wanted} (${rule})`
        : `${record.feature} drifted ${record.wanted} → ${record.active} (${rule}, seen on ${record.trigger})${record.actor ? `, ${actorText(record.actor)}` : ''}`;
      const text = `${who}: ${what}; ${doneText(record, initial)}`;
      const level: Level =
        record.action === 'failed' ? 'error' : initial && record.action === 'enforced' ? 'notice' : 'warning';
      return { message: record.event, level, text, fields };
    }
  }
}

/** `by NetworkManager.service (pid 812, /usr/sbin/NetworkManager)`, or the precise "none". */
function actorText(actor: RecordActor): string {
  return 'none' in actor ? actor.none : `by ${describeActor(actor)}`;
}

/** OFFLOADD_ACTOR_* of the latest actor; OFFLOADD_ACTORS when several asked within the window. */
function actorFields(record: LedgerRecord): LogFields {
  const actor = record.actor as RecordActor;
  const fields: LogFields = 'none' in actor ? { OFFLOADD_ACTOR: actor.none } : actorJournalFields(actor);
  if (record.actors) fields['OFFLOADD_ACTORS'] = record.actors.map(describeActor).join('; ');
  return fields;
}

function doneText(record: LedgerRecord, initial: boolean): string {
  switch (record.action) {
    case 'enforced':
      return `${initial ? 'set' : `set ${record.wanted} again`} in ${record.correctionUs ?? '?'} µs${record.reason ? ` (${record.reason})` : ''}`;
    case 'reported':
      return `report mode, left as it is${record.reason ? ` (${record.reason})` : ''}`;
    case 'contended':
      return `set ${record.wanted} but another writer changed it back at once; correcting again on its event`;
    case 'deferred':
      return 'correction held back (flapping back-off)';
    case 'failed':
    case 'unenforceable':
    case 'backoff':
    case 'resynced':
      return `could not set it: ${record.reason ?? 'unknown error'}`;
  }
}
