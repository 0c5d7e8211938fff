/**
 * Which hypervisor a command talks to, and opening it. The choice is explicit, as virsh's
 * connection URI is: --hypervisor, else the BLOCKCOPY_HYPERVISOR environment variable (like
 * LIBVIRT_DEFAULT_URI); nothing means a usage error, never a silent simulator. `sim` is the
 * in-process simulator (domain 'demo', disk 'vda'); `qmp:SOCKET` a QEMU monitor socket (domain
 * 'qemu'); --connect URI drives libvirtd as virsh -c does (DISK = a target such as vda or its
 * source path).
 */
import type { Result } from 'neverthrow';
import { err, ok } from 'neverthrow';
import type { HypervisorPort } from '../core/hypervisor-port.js';
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import { connectQemu } from '../../adapters/qmp/qemu-adapter.js';
import { connectLibvirt } from '../../adapters/libvirt/adapter.js';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import { UsageError } from './virsh-options.js';

export const HYPERVISOR_ENV = 'BLOCKCOPY_HYPERVISOR';

/** A hypervisor named on the command line or in the environment. */
export type HypervisorSpec =
  | { readonly kind: 'sim' }
  | { readonly kind: 'qmp'; readonly socket: string }
  | { readonly kind: 'libvirt'; readonly uri: string };

/** Everything the choice may come from; later sources (e.g. a --connect URI) are added here. */
export interface HypervisorSources {
  /** --hypervisor as typed. */
  readonly option: string | undefined;
  /** --connect URI (libvirt). */
  readonly connect?: string | undefined;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export function parseHypervisorSpec(text: string, from: string): Result<HypervisorSpec, UsageError> {
  if (text === 'sim') return ok({ kind: 'sim' });
  if (text.startsWith('qmp:')) {
    const socket = text.slice('qmp:'.length);
    if (socket === '') return err(new UsageError(`${from} qmp: needs a socket path, e.g. qmp:/run/qsd/qmp.sock`));
    return ok({ kind: 'qmp', socket });
  }
  return err(new UsageError(`unknown hypervisor '${text}' in ${from}: use sim or qmp:SOCKET`));
}

/** The hypervisor `command` runs on: the first source that names one; none is a usage error. */
export function selectHypervisor(command: string, sources: HypervisorSources): Result<HypervisorSpec, UsageError> {
  if (sources.connect !== undefined) return ok({ kind: 'libvirt', uri: sources.connect });
  if (sources.option !== undefined) return parseHypervisorSpec(sources.option, '--hypervisor');
  const fromEnv = sources.env[HYPERVISOR_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return parseHypervisorSpec(fromEnv, HYPERVISOR_ENV);
  return err(new UsageError(noHypervisor(command)));
}

/**
 * The hypervisor named as the daemon and the store name it ('libvirt:URI' for --connect), from the
 * first source that names one; undefined when none does (a usage error, never the simulator).
 */
export function hypervisorName(sources: HypervisorSources): string | undefined {
  if (sources.connect !== undefined) return `libvirt:${sources.connect}`;
  if (sources.option !== undefined) return sources.option;
  const fromEnv = sources.env[HYPERVISOR_ENV];
  return fromEnv === '' ? undefined : fromEnv;
}

/** What a command that needs a hypervisor says when none is named. */
export function noHypervisor(command: string): string {
  return `${command} needs a hypervisor: --hypervisor sim|qmp:SOCKET, --connect URI or the ${HYPERVISOR_ENV} environment variable`;
}

/** Opens a hypervisor named as text, as --hypervisor or the daemon's requests name it (libvirt: 'libvirt:URI'). */
export async function openHypervisorByName(
  text: string,
  options: OpenOptions = {},
): Promise<Result<HypervisorPort, string>> {
  const spec: Result<HypervisorSpec, UsageError> = text.startsWith('libvirt:')
    ? ok({ kind: 'libvirt', uri: text.slice('libvirt:'.length) })
    : parseHypervisorSpec(text, 'the hypervisor name');
  if (spec.isErr()) return err(spec.error.message);
  return openHypervisor(spec.value, options);
}

export function describeSpec(spec: HypervisorSpec): string {
  return spec.kind === 'sim' ? 'sim' : spec.kind === 'qmp' ? `qmp:${spec.socket}` : `libvirt:${spec.uri}`;
}

/** The domain a command means when --domain is not given: the hypervisor's only one. */
export function defaultDomain(hypervisor: HypervisorPort): string {
  return hypervisor.name === 'sim' ? 'demo' : 'qemu';
}

/** What a command on the simulator prints on stderr, whatever the output mode. */
export const SIMULATOR_NOTICE =
  'blockcopy: hypervisor sim is the in-process simulator: nothing is read or written on this host';

export interface OpenOptions {
  readonly clock?: Clock;
  /** Simulator only: how fast it copies, bytes/s. */
  readonly copyRate?: number;
}

/** Opens the hypervisor; an error here (e.g. no QEMU on the socket) is an operation failure. */
export async function openHypervisor(
  spec: HypervisorSpec,
  options: OpenOptions = {},
): Promise<Result<HypervisorPort, string>> {
  if (spec.kind === 'sim') {
    return ok(
      new SimulatedHypervisor({
        clock: options.clock ?? systemClock,
        ...(options.copyRate !== undefined ? { copyRate: options.copyRate } : {}),
      }),
    );
  }
  if (spec.kind === 'libvirt') {
    const opened = await connectLibvirt({
      uri: spec.uri,
      ...(options.clock ? { clock: options.clock } : {}),
      // A CLI run rides out a libvirtd restart of up to about a minute.
      reconnect: { attempts: 60, initialDelayMs: 100, maxDelayMs: 1000 },
    });
    return opened.isOk() ? ok(opened.value) : err(`cannot connect to ${spec.uri}: ${opened.error.desc}`);
  }
  const opened = await connectQemu({
    socket: spec.socket,
    domain: 'qemu',
    ...(options.clock ? { clock: options.clock } : {}),
    // A CLI run survives a short monitor hiccup; a dead QEMU fails the job.
    reconnect: { attempts: 5, delayMs: 200 },
  });
  return opened.isOk() ? ok(opened.value) : err(`cannot connect to qmp:${spec.socket}: ${opened.error.desc}`);
}
