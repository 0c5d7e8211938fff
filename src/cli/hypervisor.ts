/**
 * Opens the hypervisor a command names: `sim` (the in-process simulator, the default) or
 * `qmp:SOCKET` (a QEMU monitor socket: domain 'qemu', DISK = an export id or a root node name), or
 * `libvirt:URI` (from --connect URI: libvirtd, DISK = a target such as vda or its source path).
 */
import type { Result } from 'neverthrow';
import { err, ok } from 'neverthrow';
import type { HypervisorPort } from '../core/hypervisor-port.js';
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import { connectQemu } from '../../adapters/qmp/qemu-adapter.js';
import { connectLibvirt } from '../../adapters/libvirt/adapter.js';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';

export interface OpenOptions {
  readonly clock?: Clock;
  /** Simulator only: how fast it copies, bytes/s. */
  readonly copyRate?: number;
}

export async function openHypervisor(spec: string, options: OpenOptions = {}): Promise<Result<HypervisorPort, string>> {
  if (spec === 'sim') {
    return ok(
      new SimulatedHypervisor({
        clock: options.clock ?? systemClock,
        ...(options.copyRate !== undefined ? { copyRate: options.copyRate } : {}),
      }),
    );
  }
  if (spec.startsWith('qmp:')) {
    const socket = spec.slice('qmp:'.length);
    if (socket === '') return err('--hypervisor qmp: needs a socket path, e.g. qmp:/run/qsd/qmp.sock');
    const opened = await connectQemu({
      socket,
      domain: 'qemu',
      ...(options.clock ? { clock: options.clock } : {}),
      // A CLI run survives a short monitor hiccup; a dead QEMU fails the job.
      reconnect: { attempts: 5, delayMs: 200 },
    });
    return opened.isOk() ? ok(opened.value) : err(`cannot open ${spec}: ${opened.error.desc}`);
  }
  if (spec.startsWith('libvirt:')) {
    // --connect URI: libvirtd, as virsh -c URI.
    const uri = spec.slice('libvirt:'.length);
    const opened = await connectLibvirt({
      uri,
      ...(options.clock ? { clock: options.clock } : {}),
      // A CLI run rides out a libvirtd restart of up to about a minute.
      reconnect: { attempts: 60, initialDelayMs: 100, maxDelayMs: 1000 },
    });
    return opened.isOk() ? ok(opened.value) : err(`cannot connect to ${uri}: ${opened.error.desc}`);
  }
  return err(`unknown hypervisor '${spec}': use sim, qmp:SOCKET or --connect URI`);
}
