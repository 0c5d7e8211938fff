/**
 * virsh's option grammar and messages on top of node's util.parseArgs: parseArgs splits the
 * command line into tokens (`--opt`, `--opt=value`, `--opt value`, `--`, positionals), and this
 * module applies virsh's rules to them (vshCommandParse, vshCommandOpt*): unknown options, a
 * value given to a boolean, a missing value, an option seen twice, extra or missing positionals,
 * and virsh's numeric parsers with its exact wording. `-h` is the only short option (help).
 */
import type { Result } from 'neverthrow';
import { err, ok } from 'neverthrow';
import { parseArgs } from 'node:util';

export class UsageError {
  constructor(readonly message: string) {}
}

export interface OptionSpec {
  readonly type: 'boolean' | 'string';
  /** virsh's VSH_OT_INT: "expected syntax: --NAME <number>" when its value is missing. */
  readonly numeric?: boolean;
  /** VSH_OT_ALIAS: this option stands for `target=value` (virsh's --raw is --format=raw). */
  readonly alias?: { readonly target: string; readonly value: string };
}

export interface ParsedOptions {
  readonly booleans: ReadonlySet<string>;
  readonly strings: ReadonlyMap<string, string>;
  readonly positionals: readonly string[];
  /** `--help` or `-h` was seen (virsh replaces the command with its help, whatever else is there). */
  readonly help: boolean;
}

/**
 * Reads `argv` for `command` against `options`, with `positionals` naming the positional
 * arguments in order (all required). Help wins over every other error, as in virsh.
 */
export function readOptions(
  command: string,
  argv: readonly string[],
  options: Readonly<Record<string, OptionSpec>>,
  positionals: readonly string[],
): Result<ParsedOptions, UsageError> {
  // Non-strict: the rules (and their messages) are virsh's, applied below to the tokens.
  const { tokens } = parseArgs({
    args: [...argv],
    options: {
      ...Object.fromEntries(Object.entries(options).map(([name, spec]) => [name, { type: spec.type }])),
      help: { type: 'boolean', short: 'h' },
    },
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  if (tokens.some((t) => t.kind === 'option' && t.name === 'help')) {
    return ok({ booleans: new Set(), strings: new Map(), positionals: [], help: true });
  }
  const booleans = new Set<string>();
  const strings = new Map<string, string>();
  const seen = new Set<string>();
  const found: string[] = [];
  for (const token of tokens) {
    if (token.kind === 'option-terminator') continue;
    if (token.kind === 'positional') {
      if (found.length >= positionals.length) return err(new UsageError(`unexpected data '${token.value}'`));
      found.push(token.value);
      continue;
    }
    const spec = options[token.name];
    if (spec === undefined || !token.rawName.startsWith('--')) {
      return err(new UsageError(`command '${command}' doesn't support option ${token.rawName}`));
    }
    const target = spec.alias?.target ?? token.name;
    if (seen.has(target)) return err(new UsageError(`option --${target} already seen`));
    seen.add(target);
    if (spec.alias) {
      if (token.inlineValue) return err(new UsageError(`invalid '=' after option --${token.name}`));
      strings.set(spec.alias.target, spec.alias.value);
    } else if (spec.type === 'boolean') {
      if (token.inlineValue) return err(new UsageError(`invalid '=' after option --${token.name}`));
      booleans.add(token.name);
    } else {
      if (token.value === undefined) {
        return err(new UsageError(`expected syntax: --${token.name} <${spec.numeric ? 'number' : 'string'}>`));
      }
      strings.set(token.name, token.value);
    }
  }
  if (found.length < positionals.length) {
    return err(new UsageError(`command '${command}' requires <${positionals[found.length]}> option`));
  }
  return ok({ booleans, strings, positionals: found, help: false });
}

/**
 * --connect URI (libvirt, as virsh -c) excludes --hypervisor and needs --domain: the one rule of
 * every command that takes both. The URI itself is checked when it is opened (exit 1, as virsh).
 */
export function connectOption(options: {
  readonly connect?: string | undefined;
  readonly hypervisor?: string | undefined;
  readonly domain?: string | undefined;
}): Result<string | undefined, UsageError> {
  if (options.connect === undefined) return ok(undefined);
  if (options.hypervisor !== undefined) return err(new UsageError('--connect and --hypervisor are mutually exclusive'));
  if (options.domain === undefined) return err(new UsageError('--connect needs --domain NAME'));
  return ok(options.connect);
}

// --- virsh's numbers (vshCommandOptUInt, vshCommandOptULongLong, vshBlockJobOptionBandwidth) -----

export const UINT_MAX = 4294967295n;
export const ULLONG_MAX = 18446744073709551615n;
/** virsh runs on 64-bit hosts: unsigned long is 64 bits. */
export const ULONG_MAX = ULLONG_MAX;

function malformed(name: string, value: string): UsageError {
  return new UsageError(`Numeric value '${value}' for <${name}> option is malformed or out of range`);
}

/** virStrToLong_*p in base 10: digits only (a sign, hex or a fraction is malformed). */
function decimal(value: string): bigint | null {
  return /^\+?\d+$/.test(value) ? BigInt(value.replace(/^\+/, '')) : null;
}

/** An unsigned number up to `max` (vshCommandOptUInt / vshCommandOptULongLong: no wrapping). */
export function unsignedOption(name: string, value: string, max: bigint): Result<bigint, UsageError> {
  const n = decimal(value);
  return n === null || n > max ? err(malformed(name, value)) : ok(n);
}

/** The scale of a virScaleInteger suffix: b, k/KiB (1024), KB (1000), … up to E. */
function suffixScale(suffix: string): bigint | null {
  if (suffix === '') return 1n;
  if (/^(b|byte|bytes)$/i.test(suffix)) return 1n;
  let base: bigint;
  if (suffix.length === 1 || suffix.slice(1).toLowerCase() === 'ib') base = 1024n;
  else if (suffix.length === 2 && suffix[1]!.toLowerCase() === 'b') base = 1000n;
  else return null;
  const power = 'kmgtpe'.indexOf(suffix[0]!.toLowerCase());
  return power < 0 ? null : base ** BigInt(power + 1);
}

/**
 * `--bandwidth` as vshBlockJobOptionBandwidth reads it: a plain number is MiB/s (bytes/s with
 * --bytes); a number with a size suffix (`512M`, `1G`) is bytes/s, turned into MiB/s unless
 * --bytes. virsh wraps a negative plain number into a huge unsigned one that libvirt then refuses
 * as too large; here it is malformed (the same request fails either way, but with exit code 2).
 */
export function bandwidthOption(value: string, bytes: boolean): Result<bigint, UsageError> {
  const plain = decimal(value);
  if (plain !== null) {
    return plain > ULONG_MAX ? err(scaledMalformed(value)) : ok(plain);
  }
  const m = /^\+?(\d+)([A-Za-z]*)$/.exec(value);
  const scale = m ? suffixScale(m[2]!) : null;
  if (!m || scale === null) return err(scaledMalformed(value));
  const scaled = BigInt(m[1]!) * scale;
  if (scaled > ULONG_MAX) return err(scaledMalformed(value));
  return ok(bytes ? scaled : scaled >> 20n);
}

function scaledMalformed(value: string): UsageError {
  return new UsageError(`Scaled numeric value '${value}' for <--bandwidth> option is malformed or out of range`);
}

/** `--timeout` as vshCommandOptTimeoutToMs: whole seconds, 1 … INT_MAX / 1000. */
export function timeoutOption(value: string, name = 'timeout'): Result<number, UsageError> {
  const n = unsignedOption(name, value, UINT_MAX);
  if (n.isErr()) return err(n.error);
  if (n.value === 0n || n.value > 2147483n) return err(malformed(name, n.value.toString()));
  return ok(Number(n.value));
}
