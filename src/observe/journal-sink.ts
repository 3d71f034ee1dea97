/**
 * The journal as a sink of the daemon's stream: how each event reads in the log. Lines about one
 * interface go through Log.link(), so they carry its fields by construction; records read as
 * describeRecord() words them.
 */
import { PolicyError } from '../errors';
import type { Policy } from '../policy/types';
import { describeRecord } from './describe';
import type { Log } from './log';
import type { Sink } from './stream';

export function journalSink(log: Log): Sink {
  return {
    checked: (report) => {
      if (!log.isEnabled('debug')) return;
      const { status, trigger, result } = report;
      log.link(
        'debug',
        report.facts,
        `checked (${trigger}), ${status.compliant ? 'compliant' : 'not compliant'}, ${Math.round(result.durationUs)} µs`,
      );
    },
    released: ({ ifindex, name, why }) => {
      if (why === 'deleted') log.link('debug', { name, ifindex }, 'removed, forgotten');
      else log.link('info', { name, ifindex }, 'no longer matches any rule; left as it is, no longer managed');
    },
    problem: ({ level, message, facts, error }) => {
      const errno = { ERRNO: (error as { errno?: number } | undefined)?.errno };
      if (level === 'error') log.linkEvent('enforceFailed', 'error', facts, message, errno);
      else log.link(level, facts, message, errno);
    },
    durable: (records) => {
      for (const record of records) {
        const description = describeRecord(record);
        log.event(description.message, description.level, description.text, description.fields);
      }
    },
    policy: (report) => {
      if ('policy' in report) {
        logPolicy(log, report.policy, report.result);
        return;
      }
      if (report.error instanceof PolicyError)
        log.event('policyRejected', 'error', `Policy rejected, keeping the running one: ${report.error.toString()}`, {
          OFFLOADD_POLICY: report.error.file,
          CODE_LINE: report.error.position?.line,
        });
      else log.log('error', `Policy reload failed: ${report.error.stack ?? String(report.error)}`);
    },
    ledger: (report) => {
      if (report.health === 'warning') log.log('warning', `Ledger: ${report.message}`);
      else if (report.health === 'unwritable')
        log.event(
          'ledgerUnwritable',
          'crit',
          `Ledger ${report.status.path} not writable: ${report.status.problem ?? 'unknown error'}; enforcement goes on, records are kept in memory and written when it works again`,
          { OFFLOADD_LEDGER: report.status.path },
        );
      else
        log.event(
          'ledgerWritable',
          'notice',
          `Ledger ${report.status.path} writable again (not writable since ${report.since}); ${report.written} held records written`,
          { OFFLOADD_LEDGER: report.status.path },
        );
    },
  };
}

function logPolicy(log: Log, policy: Policy, verb: string): void {
  log.event(
    'policyLoaded',
    'info',
    `Policy ${verb} from ${policy.path} (${policy.rules.length} rules, mode ${policy.mode}, sha256 ${policy.checksum.slice(0, 12)})`,
    {
      OFFLOADD_POLICY: policy.path,
      OFFLOADD_POLICY_SHA256: policy.checksum,
    },
  );
  for (const warning of policy.warnings) {
    log.log(
      'warning',
      `${policy.path}${warning.position ? `:${warning.position.line}:${warning.position.column}` : ''}: ${warning.message}`,
    );
  }
}
