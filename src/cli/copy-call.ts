/**
 * Which engine call a `blockcopy copy` makes, chosen as virsh's cmdBlockcopy chooses between
 * libvirt's two APIs: virDomainBlockCopy (typed parameters in bytes) when --granularity,
 * --buf-size, a non-raw --format, --transient-job or --synchronous-writes asks for what only it
 * can express; otherwise virDomainBlockRebase with the COPY flag (and COPY_RAW, COPY_DEV,
 * BANDWIDTH_BYTES). Both then go through the same validation and job in the engine.
 */
import type { ResultAsync } from 'neverthrow';
import type { BlockCopyEngine, BlockCopyJob } from '../engine/engine.js';
import type { BlockCopyError } from '../core/errors.js';
import { CopyFlags, RebaseFlags } from '../core/flags.js';
import type { ImageFormat } from '../core/hypervisor-port.js';
import type { CopyPlan } from '../core/plan.js';
import type { CopyCommand } from './args.js';
import { usesBlockCopyApi } from './args.js';

export type CopyCall =
  | {
      readonly api: 'virDomainBlockRebase';
      readonly domain: string;
      readonly disk: string;
      readonly base: string;
      /** MiB/s, or bytes/s with BANDWIDTH_BYTES. */
      readonly bandwidth: number;
      readonly flags: number;
      readonly onTargetError: CopyCommand['onTargetError'];
    }
  | {
      readonly api: 'virDomainBlockCopy';
      readonly domain: string;
      readonly disk: string;
      /** destxml: `<disk type='file|block'><source file|dev=…/><driver type=…/></disk>`. */
      readonly destination: { readonly path: string; readonly format?: string; readonly blockdev: boolean };
      /** Typed parameters (bytes); only the ones virsh sets (non-zero). */
      readonly params: { readonly bandwidth?: number; readonly granularity?: number; readonly bufSize?: number };
      readonly flags: number;
      readonly onTargetError: CopyCommand['onTargetError'];
    };

export function copyCall(cmd: CopyCommand, domain: string): CopyCall {
  if (usesBlockCopyApi(cmd)) {
    const bandwidth = cmd.bytes ? cmd.bandwidth : cmd.bandwidth * 2 ** 20;
    return {
      api: 'virDomainBlockCopy',
      domain,
      disk: cmd.disk,
      destination: {
        path: cmd.destination,
        ...(cmd.format !== null ? { format: cmd.format } : {}),
        blockdev: cmd.blockdev,
      },
      params: {
        ...(bandwidth !== 0 ? { bandwidth } : {}),
        ...(cmd.granularity !== 0 ? { granularity: cmd.granularity } : {}),
        ...(cmd.bufSize !== 0 ? { bufSize: cmd.bufSize } : {}),
      },
      flags:
        (cmd.shallow ? CopyFlags.SHALLOW : 0) |
        (cmd.reuseExternal ? CopyFlags.REUSE_EXT : 0) |
        (cmd.transientJob ? CopyFlags.TRANSIENT_JOB : 0) |
        (cmd.synchronousWrites ? CopyFlags.SYNCHRONOUS_WRITES : 0),
      onTargetError: cmd.onTargetError,
    };
  }
  return {
    api: 'virDomainBlockRebase',
    domain,
    disk: cmd.disk,
    base: cmd.destination,
    bandwidth: cmd.bandwidth,
    flags:
      RebaseFlags.COPY |
      (cmd.shallow ? RebaseFlags.SHALLOW : 0) |
      (cmd.reuseExternal ? RebaseFlags.REUSE_EXT : 0) |
      (cmd.blockdev ? RebaseFlags.COPY_DEV : 0) |
      (cmd.format === 'raw' ? RebaseFlags.COPY_RAW : 0) |
      (cmd.bytes ? RebaseFlags.BANDWIDTH_BYTES : 0),
    onTargetError: cmd.onTargetError,
  };
}

/** destxml's host side as the engine takes it; the format is checked by the engine at runtime. */
function destinationOf(call: Extract<CopyCall, { api: 'virDomainBlockCopy' }>) {
  return {
    path: call.destination.path,
    ...(call.destination.format !== undefined ? { format: call.destination.format as ImageFormat } : {}),
    ...(call.destination.blockdev ? { type: 'block' as const } : {}),
  };
}

/** Starts the job the call describes; endIntent is recorded so a restarted engine can finish it. */
export function startCopy(
  engine: BlockCopyEngine,
  call: CopyCall,
  endIntent: 'pivot' | 'finish' | null = null,
  convergeTimeoutSeconds: number | null = null,
): ResultAsync<BlockCopyJob, BlockCopyError> {
  const options = {
    onTargetError: call.onTargetError,
    endIntent,
    // --converge-timeout: the engine's default escalation (lift the limit, then write-blocking).
    ...(convergeTimeoutSeconds !== null ? { convergence: { timeoutMs: convergeTimeoutSeconds * 1000 } } : {}),
  };
  if (call.api === 'virDomainBlockRebase') {
    return engine.blockRebase(call.domain, call.disk, call.base, call.bandwidth, call.flags, options);
  }
  return engine.blockCopy(call.domain, call.disk, destinationOf(call), call.params, call.flags, options);
}

/** The plan the call would execute, touching nothing (--dry-run). */
export function planCopy(engine: BlockCopyEngine, call: CopyCall): ResultAsync<CopyPlan, BlockCopyError> {
  const options = { onTargetError: call.onTargetError };
  if (call.api === 'virDomainBlockRebase') {
    return engine.planRebase(call.domain, call.disk, call.base, call.bandwidth, call.flags, options);
  }
  return engine.planBlockCopy(call.domain, call.disk, destinationOf(call), call.params, call.flags, options);
}
