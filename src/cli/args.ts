/**
 * Command-line parsing for `blockcopy`. `copy` takes virsh blockcopy's options with virsh's
 * rules and messages (tools/virsh-domain.c cmdBlockcopy): --pivot and --finish imply waiting and
 * exclude each other; --verbose and --async need one of --timeout, --wait, --pivot or --finish;
 * --raw is --format=raw; --bandwidth is MiB/s unless --bytes. Usage errors are values, never
 * thrown.
 */
import type { Result } from 'neverthrow';
import { err, ok } from 'neverthrow';
import type { OptionSpec } from './virsh-options.js';
import {
  ULLONG_MAX,
  UINT_MAX,
  UsageError,
  bandwidthOption,
  connectOption,
  readOptions,
  timeoutOption,
  unsignedOption,
} from './virsh-options.js';

export { UsageError } from './virsh-options.js';

export type IoErrorPolicyName = 'report' | 'stop' | 'ignore' | 'enospc';

export interface CopyCommand {
  readonly command: 'copy';
  readonly disk: string;
  readonly destination: string;
  readonly domain: string | undefined;
  readonly shallow: boolean;
  readonly reuseExternal: boolean;
  /** --format (or --raw, its alias for raw); null: the engine decides (libvirt's rules). */
  readonly format: string | null;
  /** COPY_DEV: the destination is a block device. */
  readonly blockdev: boolean;
  /** --bandwidth is in bytes/s rather than MiB/s. */
  readonly bytes: boolean;
  /** As typed: MiB/s, or bytes/s with --bytes; 0 = unlimited. */
  readonly bandwidth: number;
  /** Bytes, power of two; 0 = QEMU's default. */
  readonly granularity: number;
  /** Bytes; 0 = QEMU's default. */
  readonly bufSize: number;
  readonly transientJob: boolean;
  readonly synchronousWrites: boolean;
  readonly wait: boolean;
  readonly end: 'pivot' | 'finish' | null;
  readonly async: boolean;
  readonly verbose: boolean;
  /** Seconds, or null. */
  readonly timeout: number | null;
  /** --converge-timeout: seconds until a copy that does not converge is given up, or null. */
  readonly convergeTimeout?: number | null;
  readonly dryRun: boolean;
  readonly json: boolean;
  /** --hypervisor as typed; BLOCKCOPY_HYPERVISOR is applied later (hypervisor.ts). */
  readonly hypervisor: string | undefined;
  /** --connect URI: libvirtd, as virsh -c (needs --domain). */
  readonly connect: string | undefined;
  readonly onTargetError: IoErrorPolicyName;
  /** Serve the live inspector while the copy runs. */
  readonly inspect: boolean;
  /** Keep serving the inspector after the copy ended, until Ctrl-C. */
  readonly inspectKeep: boolean;
  /** Job store path (--store): the job is recorded and outlives this process. */
  readonly store?: string;
}

export interface DomblklistCommand {
  readonly command: 'domblklist';
  readonly domain: string | undefined;
  readonly json: boolean;
  readonly hypervisor: string | undefined;
  readonly connect: string | undefined;
}

export interface DemoCommand {
  readonly command: 'demo';
  readonly json: boolean;
  readonly hypervisor: string | undefined;
}

/** `help [COMMAND]`, `COMMAND --help`, `-h`. */
export interface HelpCommand {
  readonly command: 'help';
  readonly topic: 'copy' | 'domblklist' | 'demo' | null;
}

export interface VersionCommand {
  readonly command: 'version';
}

/** Commands that parse their own arguments (diagram, inspect, replay). */
export interface PassThroughCommand {
  readonly command: 'diagram' | 'inspect' | 'replay' | 'blockjob' | 'blockpull' | 'list' | 'daemon' | 'migrate-storage';
  readonly argv: readonly string[];
}

export type Command = CopyCommand | DomblklistCommand | DemoCommand | HelpCommand | VersionCommand | PassThroughCommand;

/** A usage error and the command whose help it points to (null: the general usage). */
export interface CommandUsageError {
  readonly error: UsageError;
  readonly command: 'copy' | 'domblklist' | 'demo' | null;
}

const COPY_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  domain: { type: 'string' },
  bandwidth: { type: 'string', numeric: true },
  shallow: { type: 'boolean' },
  'reuse-external': { type: 'boolean' },
  raw: { type: 'boolean', alias: { target: 'format', value: 'raw' } },
  format: { type: 'string' },
  blockdev: { type: 'boolean' },
  wait: { type: 'boolean' },
  verbose: { type: 'boolean' },
  timeout: { type: 'string', numeric: true },
  'converge-timeout': { type: 'string', numeric: true },
  pivot: { type: 'boolean' },
  finish: { type: 'boolean' },
  async: { type: 'boolean' },
  granularity: { type: 'string', numeric: true },
  'buf-size': { type: 'string', numeric: true },
  bytes: { type: 'boolean' },
  'transient-job': { type: 'boolean' },
  'synchronous-writes': { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
  hypervisor: { type: 'string' },
  connect: { type: 'string' },
  store: { type: 'string' },
  'on-target-error': { type: 'string' },
  inspect: { type: 'boolean' },
  'inspect-keep': { type: 'boolean' },
};

const POLICIES: readonly IoErrorPolicyName[] = ['report', 'stop', 'ignore', 'enospc'];

/** virsh's limit for a MiB/s bandwidth that goes into the new API's bytes/s parameter. */
const NEW_API_MIB_LIMIT = ULLONG_MAX >> 20n;

/** True when virsh would call virDomainBlockCopy rather than virDomainBlockRebase. */
export function usesBlockCopyApi(cmd: CopyCommand): boolean {
  return (
    cmd.granularity !== 0 ||
    cmd.bufSize !== 0 ||
    (cmd.format !== null && cmd.format !== 'raw') ||
    cmd.transientJob ||
    cmd.synchronousWrites
  );
}

function exclusive(a: string, b: string): UsageError {
  return new UsageError(`Options --${a} and --${b} are mutually exclusive`);
}

export function parseCopy(argv: readonly string[]): Result<CopyCommand | HelpCommand, UsageError> {
  const read = readOptions('copy', argv, COPY_OPTIONS, ['disk', 'dest']);
  if (read.isErr()) return err(read.error);
  const { booleans, strings, positionals, help } = read.value;
  if (help) return ok({ command: 'help', topic: 'copy' });
  const flag = (name: string) => booleans.has(name);
  const [disk, destination] = positionals as [string, string];
  const bytes = flag('bytes');

  // Values first, in cmdBlockcopy's order, then the combinations.
  const bandwidthText = strings.get('bandwidth');
  const bandwidth = bandwidthText === undefined ? ok(0n) : bandwidthOption(bandwidthText, bytes);
  if (bandwidth.isErr()) return err(bandwidth.error);
  const granularityText = strings.get('granularity');
  const granularity = granularityText === undefined ? ok(0n) : unsignedOption('granularity', granularityText, UINT_MAX);
  if (granularity.isErr()) return err(granularity.error);
  const bufSizeText = strings.get('buf-size');
  const bufSize = bufSizeText === undefined ? ok(0n) : unsignedOption('buf-size', bufSizeText, ULLONG_MAX);
  if (bufSize.isErr()) return err(bufSize.error);
  const timeoutText = strings.get('timeout');
  const timeout = timeoutText === undefined ? ok(null) : timeoutOption(timeoutText);
  if (timeout.isErr()) return err(timeout.error);
  const convergeText = strings.get('converge-timeout');
  const convergeTimeout = convergeText === undefined ? ok(null) : timeoutOption(convergeText, 'converge-timeout');
  if (convergeTimeout.isErr()) return err(convergeTimeout.error);

  const pivot = flag('pivot');
  const finish = flag('finish');
  if (pivot && finish) return err(exclusive('pivot', 'finish'));
  const wait = flag('wait') || pivot || finish || timeout.value !== null;
  if (!wait && flag('verbose')) {
    return err(new UsageError('--verbose requires at least one of --timeout, --wait, --pivot, or --finish'));
  }
  if (!wait && flag('async')) {
    return err(new UsageError('--async requires at least one of --timeout, --wait, --pivot, or --finish'));
  }
  const policy = strings.get('on-target-error') ?? 'report';
  if (!(POLICIES as readonly string[]).includes(policy)) {
    return err(new UsageError(`--on-target-error expects report, stop, ignore or enospc, got '${policy}'`));
  }
  if (flag('inspect-keep') && !flag('inspect')) return err(new UsageError('--inspect-keep requires --inspect'));
  const connect = connectOptionOf(strings);
  if (connect.isErr()) return err(connect.error);

  const cmd: CopyCommand = {
    command: 'copy',
    disk,
    destination,
    domain: strings.get('domain'),
    shallow: flag('shallow'),
    reuseExternal: flag('reuse-external'),
    format: strings.get('format') ?? null,
    blockdev: flag('blockdev'),
    bytes,
    bandwidth: Number(bandwidth.value),
    granularity: Number(granularity.value),
    bufSize: Number(bufSize.value),
    transientJob: flag('transient-job'),
    synchronousWrites: flag('synchronous-writes'),
    wait,
    end: pivot ? 'pivot' : finish ? 'finish' : null,
    async: flag('async'),
    verbose: flag('verbose'),
    timeout: timeout.value,
    convergeTimeout: convergeTimeout.value,
    dryRun: flag('dry-run'),
    json: flag('json'),
    hypervisor: strings.get('hypervisor'),
    connect: connect.value,
    onTargetError: policy as IoErrorPolicyName,
    inspect: flag('inspect'),
    inspectKeep: flag('inspect-keep'),
    ...(strings.get('store') !== undefined ? { store: strings.get('store')! } : {}),
  };
  // cmdBlockcopy: a MiB/s bandwidth must still fit once turned into the new API's bytes/s.
  if (usesBlockCopyApi(cmd) && !bytes && bandwidth.value > NEW_API_MIB_LIMIT) {
    return err(new UsageError(`bandwidth must be less than ${NEW_API_MIB_LIMIT}`));
  }
  return ok(cmd);
}

/** --connect URI (libvirt, as virsh -c): excludes --hypervisor and needs --domain. */
function connectOptionOf(strings: ReadonlyMap<string, string>): Result<string | undefined, UsageError> {
  return connectOption({
    connect: strings.get('connect'),
    hypervisor: strings.get('hypervisor'),
    domain: strings.get('domain'),
  });
}

function parseDomblklist(argv: readonly string[]): Result<DomblklistCommand | HelpCommand, UsageError> {
  const read = readOptions(
    'domblklist',
    argv,
    {
      domain: { type: 'string' },
      json: { type: 'boolean' },
      hypervisor: { type: 'string' },
      connect: { type: 'string' },
    },
    [],
  );
  if (read.isErr()) return err(read.error);
  const { booleans, strings, help } = read.value;
  if (help) return ok({ command: 'help', topic: 'domblklist' });
  const connect = connectOptionOf(strings);
  if (connect.isErr()) return err(connect.error);
  return ok({
    command: 'domblklist',
    domain: strings.get('domain'),
    json: booleans.has('json'),
    hypervisor: strings.get('hypervisor'),
    connect: connect.value,
  });
}

function parseDemo(argv: readonly string[]): Result<DemoCommand | HelpCommand, UsageError> {
  const read = readOptions('demo', argv, { json: { type: 'boolean' }, hypervisor: { type: 'string' } }, []);
  if (read.isErr()) return err(read.error);
  const { booleans, strings, help } = read.value;
  if (help) return ok({ command: 'help', topic: 'demo' });
  return ok({ command: 'demo', json: booleans.has('json'), hypervisor: strings.get('hypervisor') });
}

const TOPICS = ['copy', 'domblklist', 'demo'] as const;
const OWN_OPTIONS: readonly PassThroughCommand['command'][] = [
  'blockjob',
  'blockpull',
  'list',
  'daemon',
  'migrate-storage',
  'replay',
  'inspect',
  'diagram',
];

export function parseCommand(argv: readonly string[]): Result<Command, CommandUsageError> {
  const [command, ...rest] = argv;
  const usage = (error: UsageError, about: CommandUsageError['command']) => err({ error, command: about });
  switch (command) {
    case undefined:
    case '--help':
    case '-h':
      return ok({ command: 'help', topic: null });
    case 'help': {
      const topic = rest[0];
      if (topic === undefined) return ok({ command: 'help', topic: null });
      const known = TOPICS.find((t) => t === topic);
      if (known) return ok({ command: 'help', topic: known });
      // Commands that read their own options print their help for --help.
      const own = OWN_OPTIONS.find((c) => c === topic);
      return own ? ok({ command: own, argv: ['--help'] }) : usage(new UsageError(`unknown command: '${topic}'`), null);
    }
    case '--version':
    case 'version':
      return ok({ command: 'version' });
    case 'copy':
      return parseCopy(rest).mapErr((error) => ({ error, command: 'copy' as const }));
    case 'domblklist':
      return parseDomblklist(rest).mapErr((error) => ({ error, command: 'domblklist' as const }));
    case 'demo':
      return parseDemo(rest).mapErr((error) => ({ error, command: 'demo' as const }));
    case 'diagram':
    case 'inspect':
    case 'replay':
    case 'blockjob':
    case 'blockpull':
    case 'list':
    case 'daemon':
    case 'migrate-storage':
      return ok({ command, argv: rest });
    default:
      return usage(new UsageError(`unknown command: '${command}'`), null);
  }
}
