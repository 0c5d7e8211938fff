/**
 * HypervisorError constructors for the simulator, with QEMU's exact QMP error classes and texts
 * (qemu-mirror.md §3 d). Kept in one place so the port methods and the QMP-flavoured layer
 * (qmp.ts) report the same words.
 */
import type { HypervisorError } from '../../src/core/hypervisor-port.js';

export function qmpError(command: string, desc: string, errorClass = 'GenericError'): HypervisorError {
  return { kind: 'qmp', errorClass, command, desc };
}

/** block-job-* on an unknown job (blockdev.c find_block_job_locked). */
export function blockJobNotFound(command: string, jobId: string): HypervisorError {
  return qmpError(command, `Block job '${jobId}' not found`, 'DeviceNotActive');
}

/** job-* on an unknown job (job-qmp.c find_job_locked). */
export function jobNotFound(command: string): HypervisorError {
  return qmpError(command, 'Job not found');
}

export function connectionError(command: string, desc: string): HypervisorError {
  return { kind: 'connection', command, desc };
}

export function ioError(command: string, desc: string): HypervisorError {
  return { kind: 'io', command, desc };
}

export function invalidError(command: string, desc: string): HypervisorError {
  return { kind: 'invalid', command, desc };
}

/** "Cannot find device=… nor node-name=…" (bdrv_lookup_bs). */
export function deviceNotFound(command: string, name: string): HypervisorError {
  return qmpError(command, `Cannot find device='${name}' nor node-name='${name}'`);
}
