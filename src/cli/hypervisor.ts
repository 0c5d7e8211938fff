/**
 * Opens the hypervisor a command names: `sim` (the in-process simulator, the default) or
 * `qmp:SOCKET` (a QEMU monitor socket).
 */
import type { Result } from 'neverthrow';
import { err, ok } from 'neverthrow';
import type { HypervisorPort } from '../../adapters/port.js';
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';

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
    return err('the QMP adapter is not available in this build');
  }
  return err(`unknown hypervisor '${spec}': use sim or qmp:SOCKET`);
}
