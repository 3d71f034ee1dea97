/**
 * Why attribution is off, said once: the addon's failure (errno, the stage that failed, the
 * verifier's log) turned into one sentence for status and the journal. Pure, so it is tested
 * without the kernel.
 */
import { OffloaddError } from '../errors';

/** The kernel side could not start; `reason` is a sentence for status and the journal. */
export class AttributionUnavailable extends OffloaddError {
  constructor(
    readonly reason: string,
    options: { hint?: string; cause?: unknown } = {},
  ) {
    super('ERR_ATTRIBUTION_UNAVAILABLE', `attribution is off: ${reason}`, options);
  }
}

export interface AddonFailure {
  message: string;
  errno?: number;
  stage?: string;
  syscall?: string;
  verifierLog?: string;
}

/** One sentence saying why the kernel side did not start, and what would change it. */
export function unavailableReason(error: AddonFailure): string {
  const call = error.syscall ?? 'a system call';
  if (error.errno === 1 || error.errno === 13) {
    if (error.stage === 'tracefs' && call.startsWith('mount')) {
      return 'tracefs is not mounted, and mounting it needs CAP_SYS_ADMIN (systemd mounts it at boot: sys-kernel-tracing.mount)';
    }
    if (error.stage === 'tracefs') {
      return `cannot read the tracepoint ids in tracefs (${call}: permission denied): tracefs is root's, mode 0700, so a daemon that is not root needs CAP_DAC_READ_SEARCH`;
    }
    return `${call} was refused (permission denied): loading tracepoint programs needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)`;
  }
  if (error.errno === 38) return 'this kernel has no bpf() system call (CONFIG_BPF_SYSCALL is off)';
  if (error.stage === 'load') {
    const last = (error.verifierLog ?? '').trim().split('\n').slice(-2).join(' / ');
    return `the kernel refused the tracepoint program (${call}${last ? `: ${last}` : ''})`;
  }
  if (error.stage === 'map' && error.errno === 22)
    return 'this kernel has no BPF ring buffer (Linux 5.8 or later needed)';
  if (error.stage === 'tracefs') return `no system-call tracepoints: ${error.message}`;
  return error.message;
}
