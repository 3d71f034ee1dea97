/**
 * `offloadctl`: query and control offloadd over its Unix socket, and check policy files offline.
 * Every command takes --json (the API's result object, unchanged). Exit status:
 * 0 ok · 1 out of policy (check) · 2 usage or policy error · 3 daemon unreachable ·
 * 4 the daemon refused or failed the request (not authorised, no such interface).
 * This file dispatches and reports errors; global options and times are read in offloadctl-args.ts,
 * the commands are offloadctl-commands.ts, their text output offloadctl-format.ts.
 */
import { parseArgs } from 'node:util';
import { RemoteError, UnreachableError } from '../api/client';
import { DEFAULT_SOCKET_PATH, errorName, RpcCode } from '../api/protocol';
import { KernelError, OffloaddError } from '../errors';
import { escapeControl } from '../observe/escape';
import { VERSION, versionLine } from '../version';
import { globalOptionsFirst, UsageError } from './offloadctl-args';
import { COMMANDS, COMMON_HELP, EXIT } from './offloadctl-commands';
import type { Output } from './offloadctl-format';

function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  return `offloadctl ${VERSION} - query and control offloadd, the NIC offload policy daemon

USAGE
  offloadctl [--json] [--socket PATH] COMMAND [ARGS] [--json] [--socket PATH]

COMMANDS
${Object.entries(COMMANDS)
  .map(([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`)
  .join('\n')}

OPTIONS
${COMMON_HELP}
  -V, --version   show the version

EXIT STATUS
  0  success
  1  check: some managed interface is out of policy
  2  usage error, or an invalid policy (check-policy, reload)
  3  the daemon cannot be reached (not running, wrong --socket, no permission)
  4  the daemon refused or failed the request (not authorised, no such interface)

ENVIRONMENT
  NO_COLOR        disables colour (colour is only used on a terminal anyway)

Reading needs access to the socket (root or --socket-group); reload and enforce need root or
--admin-group (other users prefix sudo). 'offloadctl COMMAND --help' shows a command's help.
`;
}

export async function runCli(argv: string[]): Promise<number> {
  let ordered: string[];
  try {
    ordered = globalOptionsFirst(argv);
  } catch (error) {
    process.stderr.write(`offloadctl: ${(error as Error).message}\nTry 'offloadctl --help'.\n`);
    return EXIT.usage;
  }
  const [name, ...rest] = ordered;
  if (name === '') {
    process.stderr.write(`offloadctl: no command given\nTry 'offloadctl --help'.\n`);
    return EXIT.usage;
  }
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(mainHelp());
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '-V' || name === '--version') {
    process.stdout.write(`${versionLine('offloadctl')}\n`);
    return EXIT.ok;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`offloadctl: unknown command "${name}"\nTry 'offloadctl --help'.\n`);
    return EXIT.usage;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      strict: true,
      allowPositionals: true,
      options: {
        ...command.options,
        json: { type: 'boolean', default: false },
        socket: { type: 'string', default: DEFAULT_SOCKET_PATH },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    process.stderr.write(`offloadctl ${name}: ${(error as Error).message}\nUsage: ${command.usage}\n`);
    return EXIT.usage;
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values['help']) {
    process.stdout.write(`Usage: ${command.usage}\n\n${command.help}\n\nOPTIONS\n${COMMON_HELP}\n`);
    return EXIT.ok;
  }
  const limits = command.positionals ?? { min: 0, max: 0 };
  if (parsed.positionals.length < limits.min || parsed.positionals.length > limits.max) {
    process.stderr.write(`offloadctl ${name}: wrong number of arguments\nUsage: ${command.usage}\n`);
    return EXIT.usage;
  }
  const out: Output = {
    json: values['json'] === true,
    color: process.stdout.isTTY === true && !process.env['NO_COLOR'],
  };
  try {
    return await command.run({ positionals: parsed.positionals, values, socket: values['socket'] as string, out });
  } catch (error) {
    return reportError(name, error, out);
  }
}

/** The ERR_* name of any error offloadctl reports, the daemon's or its own (docs/API.md, Errors). */
function errorCode(error: unknown): string {
  if (error instanceof RemoteError) return error.rpc.data?.code ?? errorName(error.rpc.code);
  if (error instanceof UsageError) return 'ERR_USAGE';
  if (error instanceof KernelError) return 'ERR_KERNEL';
  if (error instanceof OffloaddError) return error.code;
  return 'ERR_INTERNAL';
}

function reportError(name: string, error: unknown, out: Output): number {
  const code =
    error instanceof UsageError
      ? EXIT.usage
      : error instanceof UnreachableError
        ? EXIT.unreachable
        : error instanceof RemoteError
          ? error.rpc.code === RpcCode.policyInvalid
            ? EXIT.usage
            : EXIT.refused
          : EXIT.refused;
  const hint = error instanceof OffloaddError ? error.hint : undefined;
  if (out.json) {
    process.stdout.write(
      `${JSON.stringify({ error: { code: errorCode(error), message: (error as Error).message, hint } }, null, 2)}\n`,
    );
  }
  process.stderr.write(
    escapeControl(`offloadctl ${name}: ${(error as Error).message}${hint ? `\n  hint: ${hint}` : ''}`, {
      keepLineBreaks: true,
    }) + '\n',
  );
  return code;
}

export function main(argv: string[]): void {
  runCli(argv).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`offloadctl: ${(error as Error).stack ?? String(error)}\n`);
      process.exitCode = EXIT.refused;
    },
  );
}
