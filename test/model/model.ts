/**
 * The reference model: a small description of what the engine must do, written from the seed
 * (the 2012 design review), libvirt's rules and the simulator's documented parameters (copy rate,
 * tick, poll interval), never from the job machine and never by reading the system under test.
 *
 * It predicts exactly one outcome for every command: the call's code and the final status of
 * every job. Where the real world leaves a choice that timing decides (is the mirror ready yet,
 * has the job noticed a fault), the model does not guess: the command's check() refuses to run
 * it then. Event loss, duplication and reordering change nothing here but the model's latency
 * margin; only the hypervisor failures the model itself injects change outcomes.
 */
import { MiB } from '../../adapters/sim/index.js';
import { RATE_BURST } from '../../adapters/sim/job.js';

export type Status = 'COMPLETED' | 'FAILED' | 'CANCELED';
export type Policy = 'report' | 'stop' | 'ignore' | 'enospc';
export type Errno = 'EIO' | 'ENOSPC';

/** The simulator's parameters the model relies on (system.ts sets them). */
export const DISK_SIZE = 64 * MiB;
export const COPY_RATE = 32 * MiB; // bytes per second
export const TOP_ALLOCATED = 4 * MiB;
/** How long until the engine has certainly heard of a change: a sim tick, a poll, slack. */
export const LATENCY_MS = 1_200;

/**
 * What becomes of a destination when its job ends: kept (pivot, or a soft abort after ready:
 * a consistent copy), removed if the engine created it (force abort, failure), or left as a
 * killed QEMU leaves it (a qcow2 target consistent but empty; the engine cannot clean up).
 */
export type Fate = 'keep' | 'remove' | 'killed';

export interface FileState {
  readonly format: 'qcow2' | 'raw';
  /** No data in the image: true, false, or not known (a copy may or may not have written). */
  empty: boolean | 'unknown';
  readonly backing: string | null;
  /** Created by the engine (it may remove it); a foreign file never is. */
  readonly created: boolean;
}

export interface ModelJob {
  readonly jobId: string;
  readonly disk: string;
  readonly dest: string;
  readonly created: boolean;
  readonly shallow: boolean;
  readonly raw: boolean;
  readonly policy: Policy;
  /** Bytes to copy so far (grows with guest writes). */
  len: number;
  /** Speed limit in bytes/s before ready (0: none). */
  bw: number;
  /** Copy time (ms) still needed at least / at most before the simulator is ready. */
  minLeft: number;
  maxLeft: number;
  /** Clock time by which the engine has certainly seen READY (null: not yet known). */
  readyKnownAt: number | null;
  /** The simulator's copy is certainly synchronised (all data written). */
  synced: boolean;
  paused: 'user' | 'error' | null;
  /** A persistent 'ignore' fault keeps failing the same write: no progress. */
  frozen: boolean;
  /** The job is ending, and how it will end, by when (clock ms). */
  ending: { status: Status; by: number; fate: Fate } | null;
  /** Until then the engine may not yet have noticed what happened to this job. */
  unsettledUntil: number;
  /** The engine's view, frozen while the monitor is disconnected. */
  frozenView: 'ready' | 'copying' | 'unknown' | null;
}

export interface DiskModel {
  job: ModelJob | null;
  /** A pivot moved the disk onto a copy: the model does not follow it further. */
  pivoted: boolean;
  topAllocated: number;
}

export class Model {
  now = 0;
  alive = true;
  connected = true;
  fault: { errno: Errno; once: boolean } | null = null;
  readonly disks = new Map<string, DiskModel>();
  readonly files = new Map<string, FileState>();
  /** Jobs the model has ended: jobId → the final status the engine must have reported. */
  readonly finals = new Map<string, Status>();

  constructor(keys: readonly string[]) {
    for (const k of keys) this.disks.set(k, { job: null, pivoted: false, topAllocated: TOP_ALLOCATED });
  }

  disk(key: string): DiskModel {
    const d = this.disks.get(key);
    if (!d) throw new Error(`model: unknown disk ${key}`);
    return d;
  }

  jobs(): ModelJob[] {
    return [...this.disks.values()].flatMap((d) => (d.job ? [d.job] : []));
  }

  /** Copy rate a job gets before ready, in bytes/s. */
  static effectiveRate(bw: number): number {
    return bw > 0 ? Math.min(bw, COPY_RATE) : COPY_RATE;
  }

  static copyBounds(len: number, bw: number): { min: number; max: number } {
    const min = (len / COPY_RATE) * 1000 - 150;
    // A limited mirror copies 16 MiB bursts at full rate, then waits for the limit.
    const max = (len / COPY_RATE) * 1000 + (bw > 0 ? (len / bw) * 1000 : 0) + 300;
    return { min, max };
  }

  /** The engine's view of a job now: certainly ready, certainly still copying, or unknown. */
  view(job: ModelJob): 'ready' | 'copying' | 'unknown' {
    if (job.frozenView !== null) return job.frozenView;
    if (job.readyKnownAt !== null && this.now >= job.readyKnownAt) return 'ready';
    if (!job.synced && job.minLeft > 0) return 'copying';
    return 'unknown';
  }

  /** Nothing about this job is in flight: every command on its disk has one outcome. */
  settled(job: ModelJob | null): boolean {
    if (job === null) return true;
    if (job.ending !== null) return false;
    return this.now >= job.unsettledUntil;
  }

  /** Settled and, if it matters, with a known ready state. */
  certain(job: ModelJob | null): boolean {
    return job === null || (this.settled(job) && this.view(job) !== 'unknown');
  }

  activeOn(domain: string): boolean {
    return [...this.disks.entries()].some(([k, d]) => k.startsWith(`${domain}/`) && d.job !== null);
  }

  /** A job that copies data right now (certainly not synced, running, not frozen). */
  copying(job: ModelJob): boolean {
    return job.ending === null && job.paused === null && !job.frozen && !job.synced && job.minLeft > 0;
  }

  /** Time passes: copies progress, endings land. */
  advanceTo(now: number): void {
    const dt = Math.max(0, now - this.now);
    for (const job of this.jobs()) {
      if (job.paused === null && !job.frozen && job.ending === null && this.alive) {
        const crossing = this.now + Math.max(0, job.maxLeft);
        job.minLeft -= dt;
        job.maxLeft -= dt;
        if (job.maxLeft <= 0 && !job.synced) {
          job.synced = true;
          if (this.connected) job.readyKnownAt = crossing + LATENCY_MS;
        }
      }
    }
    this.now = now;
    for (const [key, d] of this.disks) {
      const job = d.job;
      if (job?.ending && now >= job.ending.by) this.endJob(key, job.ending.status, job.ending.fate);
    }
  }

  /** The job is over: record its final status and what became of its destination. */
  endJob(key: string, status: Status, fate: Fate): void {
    const d = this.disk(key);
    const job = d.job!;
    this.finals.set(job.jobId, status);
    d.job = null;
    if (status === 'COMPLETED') d.pivoted = true;
    const file = this.files.get(job.dest);
    if (!file) return;
    const written = job.synced ? false : 'unknown';
    if (fate === 'keep') file.empty = false;
    else if (fate === 'remove') {
      if (file.created) this.files.delete(job.dest);
      else file.empty = file.empty === false ? false : written;
    } else file.empty = file.format === 'qcow2' ? true : file.empty === false ? false : written;
  }

  /** What a fault does to one job that runs into it (QEMU's policy table). */
  hit(job: ModelJob, errno: Errno): void {
    const action = job.policy === 'enospc' ? (errno === 'ENOSPC' ? 'stop' : 'report') : job.policy;
    // The next write fails: at the next tick, or after the rate limiter's pause between bursts.
    const wait = job.bw > 0 ? (RATE_BURST / job.bw) * 1000 : 0;
    const by = this.now + 100 + wait + LATENCY_MS;
    job.unsettledUntil = by;
    job.minLeft = Math.max(job.minLeft, 1);
    switch (action) {
      case 'report':
        // The created destination is removed (the job failed, nothing to keep).
        job.ending = { status: 'FAILED', by, fate: 'remove' };
        return;
      case 'stop':
        job.paused = 'error';
        return;
      case 'ignore':
        if (this.fault && !this.fault.once) job.frozen = true;
        else job.maxLeft += 300;
        return;
    }
  }

  /** An armed fault meets every job that copies now (a once-fault only the first). */
  applyFault(): void {
    if (!this.fault) return;
    for (const job of this.jobs()) {
      if (!this.fault) return;
      if (!this.copying(job)) continue;
      const { errno, once } = this.fault;
      if (once) this.fault = null;
      this.hit(job, errno);
    }
  }
}

/** The monitor is back: the engine catches up within a poll. */
export function reconnected(m: Model, job: ModelJob): void {
  job.frozenView = null;
  if (job.synced && job.readyKnownAt === null) job.readyKnownAt = m.now + LATENCY_MS;
  job.unsettledUntil = Math.max(job.unsettledUntil, m.now + LATENCY_MS);
  if (job.ending) job.ending.by = Math.max(job.ending.by, m.now + LATENCY_MS);
}

/** A paused job runs again; after an error stop, how much is left is not known. */
export function resumed(m: Model, job: ModelJob): void {
  if (job.paused === 'error' && !job.synced) {
    job.minLeft = 0;
    job.maxLeft = Model.copyBounds(job.len, job.bw).max;
  }
  job.paused = null;
  job.unsettledUntil = Math.max(job.unsettledUntil, m.now + LATENCY_MS);
}

/** A persistent 'ignore' fault was cleared: the copy goes on from wherever it was. */
export function unfreeze(job: ModelJob): void {
  job.frozen = false;
  job.minLeft = 0;
  job.maxLeft = Model.copyBounds(job.len, job.bw).max;
}
