/**
 * Command-line parsing for `blockcopy`, with virsh blockcopy's option rules: --pivot and
 * --finish imply waiting and exclude each other; --async and --verbose need one of --wait,
 * --timeout, --pivot or --finish (libvirt-api.md §6.2).
 */
import type { Result } from 'neverthrow';
import { err, ok } from 'neverthrow';
import { parseArgs } from 'node:util';

export interface CopyCommand {
  readonly command: 'copy';
  readonly disk: string;
  readonly destination: string;
  readonly domain: string | undefined;
  readonly shallow: boolean;
  readonly reuseExternal: boolean;
  readonly raw: boolean;
  /** MiB/s, as virsh. */
  readonly bandwidth: number;
  readonly wait: boolean;
  readonly end: 'pivot' | 'finish' | null;
  readonly async: boolean;
  readonly verbose: boolean;
  /** Seconds, or null. */
  readonly timeout: number | null;
  readonly dryRun: boolean;
  readonly json: boolean;
  readonly hypervisor: string;
  readonly onTargetError: 'report' | 'stop' | 'ignore' | 'enospc';
  /** Serve the live inspector while the copy runs. */
  readonly inspect: boolean;
  /** Job store path (--store): the job is recorded and outlives this process. */
  readonly store?: string;
}

export interface DemoCommand {
  readonly command: 'demo';
  readonly json: boolean;
  readonly hypervisor: string | undefined;
}

export interface HelpCommand {
  readonly command: 'help';
}

/** Commands that parse their own arguments (diagram, inspect, replay). */
export interface PassThroughCommand {
  readonly command: 'diagram' | 'inspect' | 'replay' | 'blockjob' | 'list' | 'daemon';
  readonly argv: readonly string[];
}

export type Command = CopyCommand | DemoCommand | HelpCommand | PassThroughCommand;

export const USAGE = `usage:
  blockcopy copy DISK DEST [--domain NAME] [--shallow] [--reuse-external] [--raw]
                 [--bandwidth MIB] [--wait] [--pivot | --finish] [--async] [--verbose]
                 [--timeout S] [--dry-run] [--json] [--on-target-error report|stop|ignore|enospc]
                 [--hypervisor sim|qmp:SOCKET] [--inspect]
  blockcopy demo [--json] [--hypervisor sim|qemu]
  blockcopy replay TRACE.jsonl [--json]
  blockcopy diagram [--format mermaid|dot|svg] [--output FILE]
  blockcopy inspect [--port N] [--load FILE.jsonl] [--export FILE.jsonl] [--rounds N]
  blockcopy blockjob DISK (--info | --pivot | --abort [--async] | --bandwidth MIB | --resume) [--store PATH]
  blockcopy list [--all] [--json] [--store PATH]
  blockcopy daemon [--store PATH] [--socket PATH]
  blockcopy help

copy   starts a block copy of DISK into the absolute path DEST, as virsh blockcopy does.
       --wait waits for the mirroring phase; --pivot switches the disk to the copy and --finish
       leaves a consistent copy behind (both wait); --timeout S aborts after S seconds.
       Without --hypervisor the in-process simulator is used (domain 'demo', disk 'vda').
       --inspect serves the live inspector on 127.0.0.1 while the copy runs.
demo   runs a whole copy with progress and pivot: on real QEMU when qemu-storage-daemon and
       qemu-img are installed, otherwise on the simulator.
replay feeds a recorded QMP session (e.g. test/fixtures/traces/qemu-7.2/*.jsonl) through the engine.
diagram prints the job statechart, generated from the machine.
inspect serves the live inspector with simulated demo jobs, or a recorded run (--load).`;

export class UsageError {
  constructor(readonly message: string) {}
}

function positiveNumber(name: string, value: string | undefined): Result<number | null, UsageError> {
  if (value === undefined) return ok(null);
  if (!/^\d+(\.\d+)?$/.test(value))
    return err(new UsageError(`--${name} expects a non-negative number, got '${value}'`));
  return ok(Number(value));
}

export function parseCommand(argv: readonly string[]): Result<Command, UsageError> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h')
    return ok({ command: 'help' });
  try {
    if (command === 'demo') {
      const { values } = parseArgs({
        args: rest,
        options: { json: { type: 'boolean', default: false }, hypervisor: { type: 'string' } },
        strict: true,
        allowPositionals: false,
      });
      return ok({ command: 'demo', json: values.json, hypervisor: values.hypervisor });
    }
    if (command === 'diagram' || command === 'inspect' || command === 'replay') return ok({ command, argv: rest });
    if (command === 'blockjob' || command === 'list' || command === 'daemon') return ok({ command, argv: rest });
    if (command !== 'copy') return err(new UsageError(`unknown command '${command}'`));
    const { values, positionals } = parseArgs({
      args: rest,
      options: {
        domain: { type: 'string' },
        shallow: { type: 'boolean', default: false },
        'reuse-external': { type: 'boolean', default: false },
        raw: { type: 'boolean', default: false },
        bandwidth: { type: 'string' },
        wait: { type: 'boolean', default: false },
        pivot: { type: 'boolean', default: false },
        finish: { type: 'boolean', default: false },
        async: { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
        timeout: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        hypervisor: { type: 'string', default: 'sim' },
        'on-target-error': { type: 'string', default: 'report' },
        inspect: { type: 'boolean', default: false },
        store: { type: 'string' },
      },
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length !== 2) return err(new UsageError('copy expects DISK and DEST'));
    const [disk, destination] = positionals as [string, string];
    if (values.pivot && values.finish) return err(new UsageError('--pivot and --finish are mutually exclusive'));
    const bandwidth = positiveNumber('bandwidth', values.bandwidth);
    if (bandwidth.isErr()) return err(bandwidth.error);
    if (bandwidth.value !== null && !Number.isInteger(bandwidth.value)) {
      return err(new UsageError('--bandwidth expects a whole number of MiB/s'));
    }
    const timeout = positiveNumber('timeout', values.timeout);
    if (timeout.isErr()) return err(timeout.error);
    if (timeout.value === 0) return err(new UsageError('--timeout expects a positive number of seconds'));
    const end = values.pivot ? 'pivot' : values.finish ? 'finish' : null;
    const waits = values.wait || end !== null || timeout.value !== null;
    if ((values.async || values.verbose) && !waits) {
      return err(new UsageError('--async and --verbose need one of --wait, --timeout, --pivot or --finish'));
    }
    const policy = values['on-target-error'];
    if (policy !== 'report' && policy !== 'stop' && policy !== 'ignore' && policy !== 'enospc') {
      return err(new UsageError(`--on-target-error expects report, stop, ignore or enospc, got '${policy}'`));
    }
    return ok({
      command: 'copy',
      disk,
      destination,
      domain: values.domain,
      shallow: values.shallow,
      reuseExternal: values['reuse-external'],
      raw: values.raw,
      bandwidth: bandwidth.value ?? 0,
      wait: waits,
      end,
      async: values.async,
      verbose: values.verbose,
      timeout: timeout.value,
      dryRun: values['dry-run'],
      json: values.json,
      hypervisor: values.hypervisor,
      onTargetError: policy,
      inspect: values.inspect,
      ...(values.store !== undefined ? { store: values.store } : {}),
    });
  } catch (e) {
    // parseArgs reports unknown options and missing values by throwing.
    return err(new UsageError(e instanceof Error ? e.message : String(e)));
  }
}
