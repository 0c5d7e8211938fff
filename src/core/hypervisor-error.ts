/**
 * Maps a hypervisor adapter's error to the libvirt-style error the public API reports, as
 * libvirt's QEMU driver does (DeviceNotActive → "No active block job", any other QMP error →
 * "unable to execute QEMU command").
 */
import type { HypervisorError } from './hypervisor-port.js';
import type { BlockCopyError } from './errors.js';
import { blockCopyError, errors, libvirtError } from './errors.js';

export function fromHypervisorError(error: HypervisorError, jobId?: string): BlockCopyError {
  switch (error.kind) {
    case 'qmp':
      if (error.errorClass === 'DeviceNotActive') return errors.noActiveQemuJob(jobId ?? error.command);
      return errors.hypervisorCommand(error.command, error.desc);
    case 'libvirt':
      // libvirt's own refusal: its code and message reach the caller unchanged.
      return error.libvirt
        ? libvirtError(error.libvirt.code, error.libvirt.message)
        : errors.hypervisorCommand(error.command, error.desc);
    case 'io':
      return blockCopyError('VIR_ERR_SYSTEM_ERROR', `${error.command}: ${error.desc}`);
    case 'invalid':
      return blockCopyError('VIR_ERR_INVALID_ARG', error.desc);
    case 'timeout':
      return blockCopyError('VIR_ERR_OPERATION_FAILED', `${error.command} timed out: ${error.desc}`);
    case 'connection':
      return blockCopyError('VIR_ERR_OPERATION_FAILED', `lost connection to the hypervisor: ${error.desc}`);
  }
}
