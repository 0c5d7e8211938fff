/**
 * The reference model: a deliberately small description of what the engine must do, written
 * from the seed (../shared/seed/000_*.txt) and the peers' contract, not from the job machine.
 *
 * Per disk the model knows only: is a copy active, did the hypervisor say ready, did the user ask
 * to end it (and how), and which outcomes are still possible given what happened to the
 * hypervisor. It predicts the result code of every API call (a set where the real world leaves
 * a legitimate choice, e.g. a pivot racing an I/O error) and the final status of every job.
 */
export type Status = 'COMPLETED' | 'FAILED' | 'CANCELED';
/** A libvirt error code name, or 'ok' for success. */
export type Code = string;

export interface ModelJob {
  readonly jobId: string;
  readonly dest: string;
  /** The destination did not exist before this job: the engine created it. */
  readonly created: boolean;
  readySeen: boolean;
  /** A user end request the engine accepted. */
  end: 'pivot' | 'abort' | null;
  /** The hypervisor may end the job on its own (I/O error under report, kill, lost job). */
  hvMayEnd: boolean;
  /** The hypervisor may refuse a request (disconnected, dead, paused by an error). */
  hvTrouble: boolean;
}

export interface DiskModel {
  job: ModelJob | null;
}

export interface DestinationFacts {
  readonly exists: boolean;
  readonly format?: 'qcow2' | 'raw';
  readonly virtualSize?: number;
  readonly empty?: boolean;
  readonly backing?: string | null;
}

export interface StartArgs {
  readonly shallow: boolean;
  readonly reuse: boolean;
  readonly raw: boolean;
}

export class Model {
  readonly disks = new Map<string, DiskModel>();
  /** Files that existed before the engine touched them: never to be removed. */
  readonly foreignFiles = new Set<string>();
  alive = true;
  connected = true;
  /** Armed target faults that have not been consumed. */
  faultArmed = false;
  /** Events may be lost or duplicated or held back: only timing changes, never outcomes. */
  noisy = false;

  constructor(keys: readonly string[]) {
    for (const k of keys) this.disks.set(k, { job: null });
  }

  disk(key: string): DiskModel {
    const d = this.disks.get(key);
    if (!d) throw new Error(`model: unknown disk ${key}`);
    return d;
  }

  activeOn(domain: string): boolean {
    return [...this.disks.entries()].some(([k, d]) => k.startsWith(`${domain}/`) && d.job !== null);
  }

  /**
   * The seed's rules for a new copy, in its words: one job per disk; without REUSE_EXT the
   * destination must not exist; with it, it must exist, match the disk's size and be empty (full
   * copy) or be backed by the source's backing file (shallow); a shallow copy cannot create a
   * raw file. A dead or unreachable hypervisor refuses everything.
   */
  expectStart(
    key: string,
    args: StartArgs,
    dest: DestinationFacts,
    disk: { size: number; backing: string | null },
  ): string {
    if (this.disk(key).job !== null) return 'VIR_ERR_BLOCK_COPY_ACTIVE';
    if (!this.alive || !this.connected) return 'any-error';
    const shallow = args.shallow && disk.backing !== null;
    if (!dest.exists) {
      if (args.reuse) return 'VIR_ERR_SYSTEM_ERROR';
      if (shallow && args.raw) return 'VIR_ERR_CONFIG_UNSUPPORTED';
      return 'ok';
    }
    if (!args.reuse) return 'VIR_ERR_CONFIG_UNSUPPORTED';
    const format = args.raw ? 'raw' : dest.format;
    if (format === 'raw')
      return dest.format === 'raw' && dest.virtualSize === disk.size ? 'ok' : 'VIR_ERR_CONFIG_UNSUPPORTED';
    if (dest.virtualSize !== disk.size) return 'VIR_ERR_CONFIG_UNSUPPORTED';
    if (!shallow) return dest.empty ? 'ok' : 'VIR_ERR_CONFIG_UNSUPPORTED';
    return dest.backing === disk.backing ? 'ok' : 'VIR_ERR_CONFIG_UNSUPPORTED';
  }

  /** Pivot or abort: no job → INVALID_ARG; being ended → OPERATION_INVALID; pivot before ready → BLOCK_COPY_ACTIVE. */
  expectEnd(key: string, pivot: boolean): Set<Code> {
    const job = this.disk(key).job;
    if (job === null) return new Set(['VIR_ERR_INVALID_ARG']);
    if (job.end !== null) return new Set(['VIR_ERR_OPERATION_INVALID']);
    const out = new Set<Code>();
    if (pivot && !job.readySeen) out.add('VIR_ERR_BLOCK_COPY_ACTIVE');
    else out.add('ok');
    if (job.hvMayEnd || job.hvTrouble || this.noisy || !this.alive || !this.connected) {
      // The hypervisor ended the job already (the chart is finishing), refused the command, or
      // the READY the model saw was for a job that then ran into an error.
      for (const c of ['VIR_ERR_OPERATION_INVALID', 'VIR_ERR_OPERATION_FAILED', 'VIR_ERR_INTERNAL_ERROR', 'ok'])
        out.add(c);
      if (pivot) out.add('VIR_ERR_BLOCK_COPY_ACTIVE');
    }
    return out;
  }

  /** Final statuses still possible for a job. */
  allowedFinal(job: ModelJob): Set<Status> {
    const out = new Set<Status>();
    if (job.end === 'pivot') out.add('COMPLETED');
    if (job.end === 'abort') out.add('CANCELED');
    if (job.hvMayEnd || job.end === null || job.hvTrouble) out.add('FAILED');
    return out;
  }
}
