/**
 * Fault injection for the simulator: I/O errors on the mirror's target writes (QEMU's blkdebug
 * inject-error, qemu-mirror.md §3 h) or source reads, and a lossy/duplicating event channel
 * (events lost over a flaky monitor, or delivered twice by a retrying adapter).
 */
import type { HypervisorEvent, IoErrorPolicy } from '../../src/core/hypervisor-port.js';

export type Errno = 'EIO' | 'ENOSPC';

/** strerror() text QEMU puts in BLOCK_JOB_COMPLETED.error. */
export const ERRNO_TEXT: Readonly<Record<Errno, string>> = {
  EIO: 'Input/output error',
  ENOSPC: 'No space left on device',
};

export interface IoFaultSpec {
  readonly errno: Errno;
  /** true: fail once, then the region copies fine (blkdebug once=true); false: fail on every try. */
  readonly once: boolean;
  /** Job offset (bytes) of the failing region. Default 0: the next write fails. */
  readonly atOffset?: number;
  /** Only jobs whose target (or, for source faults, whose source chain) contains this path. */
  readonly path?: string;
  /** Only this job. */
  readonly jobId?: string;
}

export type FaultSide = 'source' | 'target';

export interface FaultHit {
  readonly side: FaultSide;
  readonly errno: Errno;
  /** Offset where the failing region starts; data before it was copied. */
  readonly at: number;
}

interface ArmedFault extends IoFaultSpec {
  readonly side: FaultSide;
}

/** The action QEMU takes for a policy and errno (block_job_error_action / blk_get_error_action). */
export function errorAction(policy: IoErrorPolicy, errno: Errno): 'report' | 'stop' | 'ignore' {
  switch (policy) {
    case 'report':
      return 'report';
    case 'stop':
      return 'stop';
    case 'ignore':
      return 'ignore';
    case 'enospc':
      return errno === 'ENOSPC' ? 'stop' : 'report';
  }
}

export class FaultPlan {
  private faults: ArmedFault[] = [];

  arm(side: FaultSide, spec: IoFaultSpec): void {
    this.faults.push({ ...spec, side });
  }

  clear(): void {
    this.faults = [];
  }

  get armed(): number {
    return this.faults.length;
  }

  /**
   * The first armed fault that a copy of job bytes [from, to) runs into; a `once` fault is used
   * up by it. A fault whose offset was already passed fails the next write (like a rule that
   * matches any later request).
   */
  take(jobId: string, sourcePaths: readonly string[], targetPath: string, from: number, to: number): FaultHit | null {
    if (this.faults.length === 0 || to <= from) return null;
    for (let i = 0; i < this.faults.length; i++) {
      const f = this.faults[i]!;
      if (f.jobId !== undefined && f.jobId !== jobId) continue;
      if (f.path !== undefined && (f.side === 'target' ? f.path !== targetPath : !sourcePaths.includes(f.path)))
        continue;
      const at = f.atOffset ?? 0;
      if (at >= to) continue;
      if (f.once) this.faults.splice(i, 1);
      return { side: f.side, errno: f.errno, at: Math.max(from, at) };
    }
    return null;
  }
}

export type EventPredicate = (event: HypervisorEvent) => boolean;

/** Loss and duplication of job events, decided by a seedable random source. */
export class EventNoise {
  private loss: EventPredicate | null = null;
  private duplication: EventPredicate | null = null;

  constructor(private readonly random: () => number) {}

  setLoss(rule: number | EventPredicate | null): void {
    this.loss = this.toPredicate(rule);
  }

  setDuplication(rule: number | EventPredicate | null): void {
    this.duplication = this.toPredicate(rule);
  }

  /** How many times to deliver the event: 0 (lost), 1, or 2 (duplicated). */
  copies(event: HypervisorEvent): 0 | 1 | 2 {
    if (this.loss?.(event) === true) return 0;
    return this.duplication?.(event) === true ? 2 : 1;
  }

  private toPredicate(rule: number | EventPredicate | null): EventPredicate | null {
    if (rule === null) return null;
    if (typeof rule === 'function') return rule;
    const p = rule;
    return p <= 0 ? null : () => this.random() < p;
  }
}

/** mulberry32: a tiny seedable PRNG, the default random source (deterministic runs). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
