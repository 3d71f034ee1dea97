/**
 * One error base for everything offloadd reports to a person or a client: a stable machine
 * `code` (for the API and exit codes), a message that says what went wrong, and a `hint` that
 * says what to do about it.
 */
export class OffloaddError extends Error {
  readonly code: string;
  readonly hint: string | undefined;

  constructor(code: string, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint;
  }
}

/** Where in a policy file a problem is; line and column are 1-based, as editors show them. */
export interface SourcePosition {
  line: number;
  column: number;
}

/** A policy file that cannot be used. At start-up this is exit status 2. */
export class PolicyError extends OffloaddError {
  readonly file: string;
  readonly position: SourcePosition | undefined;
  /** Dotted path of the offending key, e.g. `rules[0].features.grow`. */
  readonly key: string | undefined;

  constructor(
    file: string,
    message: string,
    options: { position?: SourcePosition; key?: string; hint?: string; cause?: unknown } = {},
  ) {
    super('ERR_POLICY', message, options);
    this.file = file;
    this.position = options.position;
    this.key = options.key;
  }

  /** `file:line:column: message (hint)`, the form compilers use so editors can jump to it. */
  override toString(): string {
    const where = this.position ? `${this.file}:${this.position.line}:${this.position.column}` : this.file;
    return `${where}: ${this.message}${this.hint ? ` (${this.hint})` : ''}`;
  }
}

/** A system call failed; `code` is the errno name (ENODEV, EPERM, ...). */
export class KernelError extends OffloaddError {
  readonly errno: number;
  readonly syscall: string;
  readonly ifname: string | undefined;

  constructor(errnoCode: string, errno: number, syscall: string, message: string, ifname?: string) {
    super(errnoCode, message, { hint: kernelHint(errnoCode) });
    this.errno = errno;
    this.syscall = syscall;
    this.ifname = ifname;
  }

  /** The interface went away (or was renamed) between the event and the call: an outcome, not a failure. */
  get vanished(): boolean {
    return this.code === 'ENODEV' || this.code === 'ENXIO';
  }
}

function kernelHint(code: string): string | undefined {
  switch (code) {
    case 'EPERM':
    case 'EACCES':
      return "changing offload features needs CAP_NET_ADMIN in the interface's network namespace: run as root (prefix sudo) or grant the capability";
    case 'EOPNOTSUPP':
    case 'ENOTSUP':
    case 'ENOTSUPP':
      return 'the driver does not support this operation';
    case 'ENOSYS':
      return 'the system call is not implemented here: under qemu-user emulation SIOCETHTOOL is not translated; run on the real architecture';
    default:
      return undefined;
  }
}

/**
 * A setting given at start that cannot work (a metrics port in use, a directory that cannot be
 * written): exit status 2 before anything changes, as for a bad option, since restarting cannot fix it.
 */
export class UsageError extends OffloaddError {
  constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
    super('ERR_USAGE', message, options);
  }
}
