/**
 * Adoption of a foreign job: a mirror on a disk that blockcopy did not start (another tool, or a
 * blockcopy process without a store). The engine builds the chart's snapshot for where the job
 * stands (mirroring or ready) and runs it like its own, with libvirt's rules (pivot only when
 * ready). What it does not know it never acts on: the destination is not the engine's (it is
 * never removed), and a pivot is confirmed by the guest no longer reading its source.
 */
import { err, ok, type Result } from 'neverthrow';
import type { BlockCopyJobContext } from '../../machines/block-copy-job.js';
import type { BlockCopyError } from '../core/errors.js';
import { blockCopyError, errors } from '../core/errors.js';
import type { DiskNames } from '../core/hypervisor-port.js';
import type { CopyPlan, CopyRequest } from '../core/plan.js';

/** The destination path of an adopted job: unknown to the engine. */
export const UNKNOWN_DESTINATION = '';

export interface Adoption {
  readonly jobId: string;
  readonly request: CopyRequest;
  /** A persisted chart snapshot (plain JSON), as the job store keeps them. */
  readonly snapshot: unknown;
  readonly state: string;
}

export function adoptionOf(names: DiskNames, speed: number): Result<Adoption, BlockCopyError> {
  const job = names.job;
  if (!job) return err(errors.noActiveJob(names.disk));
  if (job.type !== 'mirror')
    return err(
      blockCopyError(
        'VIR_ERR_OPERATION_INVALID',
        `disk '${names.disk}' has a ${job.type} job '${job.jobId}'; blockcopy adopts mirror (copy) jobs only`,
      ),
    );
  const where: Record<string, [value: unknown, state: string, ready: boolean]> = {
    created: [{ mirroring: 'running' }, 'mirroring.running', false],
    running: [{ mirroring: 'running' }, 'mirroring.running', false],
    paused: [{ mirroring: 'paused' }, 'mirroring.paused', false],
    ready: [{ ready: 'synced' }, 'ready.synced', true],
    standby: [{ ready: 'standby' }, 'ready.standby', true],
  };
  const at = where[job.status];
  if (!at)
    return err(
      blockCopyError(
        'VIR_ERR_OPERATION_INVALID',
        `block job '${job.jobId}' on disk '${names.disk}' is ${job.status}; only a running or ready mirror can be adopted`,
      ),
    );
  const virtualSize = names.chain[0]?.virtualSize ?? 0;
  const request: CopyRequest = {
    api: 'virDomainBlockRebase',
    domain: names.domain,
    disk: names.disk,
    destination: UNKNOWN_DESTINATION,
    format: undefined,
    shallow: false,
    reuseExternal: true,
    transientJob: false,
    synchronousWrites: false,
    bandwidth: speed,
    granularity: 0,
    bufSize: 0,
    onTargetError: 'report',
    onSourceError: 'report',
    flags: 0,
  };
  const plan: CopyPlan = {
    domain: names.domain,
    disk: names.disk,
    sync: 'full',
    destination: { path: UNKNOWN_DESTINATION, format: 'raw' },
    destinationAction: 'reuse',
    backing: null,
    virtualSize,
    speed,
    copyMode: 'background',
    onTargetError: 'report',
    onSourceError: 'report',
    source: names.source,
  };
  const context: BlockCopyJobContext = {
    jobId: job.jobId,
    request,
    plan,
    destinationCreated: false,
    started: true,
    readySeen: at[2],
    endRequest: null,
    endAccepted: false,
    outcome: null,
    pivoted: false,
    destinationConsistent: false,
    error: null,
    lastIoError: null,
    cleanupError: null,
  };
  const snapshot = { status: 'active', value: at[0], historyValue: {}, context, children: {} };
  return ok({ jobId: job.jobId, request, snapshot, state: at[1] });
}
