/**
 * One convention for the commands that read their own options (blockjob, blockpull, list,
 * daemon, migrate-storage, replay, inspect, diagram): `--help`/`-h` anywhere prints the command's
 * help and exits 0 (it wins over every other error, as in virsh); any other misuse is one line in
 * virsh's words, then "see blockcopy COMMAND --help", exit 2. node's util.parseArgs splits the
 * line; only its error messages are replaced (they suggest `--` and name no command).
 */
import type { Result } from 'neverthrow';
import { err, ok } from 'neverthrow';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { seeHelp } from './help.js';
import { UsageError } from './virsh-options.js';

/** What parseArgs returns for `config`. */
export type CommandArgs<T extends ParseArgsConfig> = ReturnType<typeof parseArgs<T>>;

/** `config.args` read strictly; 'help' when --help or -h comes before any `--`. */
export function readCommandArgs<const T extends ParseArgsConfig & { readonly strict: true }>(
  command: string,
  argv: readonly string[],
  config: T,
): Result<CommandArgs<T> | 'help', UsageError> {
  const terminator = argv.indexOf('--');
  const beforeTerminator = terminator < 0 ? argv : argv.slice(0, terminator);
  if (beforeTerminator.some((a) => a === '--help' || a === '-h')) return ok('help');
  try {
    return ok(parseArgs({ ...config, args: [...argv] }) as CommandArgs<T>);
  } catch (e) {
    return err(new UsageError(inVirshWords(command, e)));
  }
}

function inVirshWords(command: string, e: unknown): string {
  const code = (e as { code?: string }).code;
  const message = e instanceof Error ? e.message : String(e);
  const quoted = /'([^']+)'/.exec(message)?.[1] ?? '';
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `command '${command}' doesn't support option ${quoted}`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected data '${quoted}'`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const name = /--([\w-]+)/.exec(message)?.[1] ?? quoted.replace(/^-+/, '');
      return /argument missing/.test(message)
        ? `expected syntax: --${name} <string>`
        : `invalid '=' after option --${name}`;
    }
    default:
      return message;
  }
}

/** Prints a usage error the one way every command does; returns exit code 2. */
export function usageFailure(out: { error: (text: string) => void }, command: string, message: string): 2 {
  out.error(`error: ${message}`);
  out.error(seeHelp(command));
  return 2;
}
