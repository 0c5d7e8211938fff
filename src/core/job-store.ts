/**
 * The job store port: where the engine keeps each job's record so that a job outlives the
 * process that runs it. Types only. Implementations live in adapters/store/ (memory, SQLite).
 *
 * Designed for a fleet later: every call is asynchronous (a PostgreSQL store fits behind the same
 * interface), every write is a compare-and-set on the record's revision, and each unfinished job
 * carries a lease (owner + expiry) that an engine process must hold before it acts on the job.
 * A local store decides "the owner is gone" from the owner's process identity (see LeaseOwner);
 * a shared store would use the expiry alone.
 */
import type { Result, ResultAsync } from 'neverthrow';
import type { BlockCopyError } from './errors.js';
import type { CopyPlan, CopyRequest } from './plan.js';
import type { PullPlan, PullRequest } from './pull.js';
import type { ResolvedConvergencePolicy } from './convergence.js';

/** Version of the record layout below (not of the chart, which has its own). */
export const JOB_RECORD_FORMAT = 1;

/** What the engine does when the mirror is ready, on behalf of a caller that may be gone. */
export type EndIntent = 'pivot' | 'finish' | null;

/** Engine state kept beside the chart (it changes too often, or is not the chart's business). */
export interface JobSideState {
  /** Dotted names of the chart states entered so far. */
  readonly states: readonly string[];
  /** The public READY event went out (it must never go out twice, restarts included). */
  readonly readyAnnounced: boolean;
  readonly pause: { readonly userPauseRequested: boolean; readonly stoppedOnError: boolean };
  readonly progress: { readonly cur: number; readonly end: number; readonly speed: number; readonly at: number } | null;
  /**
   * The copy's convergence policy (src/core/convergence.ts), when it has one: the policy, when
   * the copy started (epoch ms, for the deadline after a restart) and the policy chart's snapshot.
   */
  readonly convergence?: {
    readonly policy: ResolvedConvergencePolicy;
    readonly startedAt: number;
    readonly snapshot: unknown;
  } | null;
}

/** Final outcome, once the job has ended. */
export interface JobEnd {
  readonly outcome: 'completed' | 'canceled' | 'failed';
  readonly pivoted: boolean;
  readonly destinationConsistent: boolean;
  readonly error: BlockCopyError | null;
}

export interface JobRecord {
  readonly format: typeof JOB_RECORD_FORMAT;
  readonly jobId: string;
  /** The hypervisor connection the job runs on (the port's name, e.g. "qmp:/run/vm1.qmp"). */
  readonly hypervisor: string;
  readonly domain: string;
  /** Canonical disk identity (the name every engine decision keys on). */
  readonly disk: string;
  /** 'engine': blockcopy started it; 'adopted': found running on the hypervisor, started elsewhere. */
  readonly origin: 'engine' | 'adopted';
  readonly request: CopyRequest | null;
  readonly plan: CopyPlan | null;
  /** 'pull': a block pull (request and plan in `pull`, not above). Absent: a copy (older records). */
  readonly jobType?: 'copy' | 'pull';
  readonly pull?: { readonly request: PullRequest; readonly plan: PullPlan | null };
  /** Version of the job chart that wrote `snapshot`; a reader refuses versions it cannot read. */
  readonly chartVersion: number;
  /** The chart's persisted snapshot (XState getPersistedSnapshot), plain JSON; null for adopted jobs. */
  readonly snapshot: unknown;
  /** Current chart state, dotted (also a column, for listing without parsing the snapshot). */
  readonly state: string;
  readonly side: JobSideState;
  readonly endIntent: EndIntent;
  readonly end: JobEnd | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** Incremented by every successful save; a save with a stale revision is refused. */
  readonly revision: number;
  /** Lease holder (LeaseOwner.id) while the job is unfinished; null once released. */
  readonly owner: string | null;
  /** Lease expiry (epoch ms); meaningful for stores shared between hosts. */
  readonly leaseUntil: number | null;
}

/** An engine process, as a lease holder: "<host>:<pid>:<process start time>". */
export interface LeaseOwner {
  readonly id: string;
}

export type StoreErrorKind =
  /** The file is not a blockcopy store, or is damaged. */
  | 'corrupt'
  /** Written by a newer blockcopy (schema version above what this one reads). */
  | 'too-new'
  /** A compare-and-set lost: someone else saved the record or holds its lease. */
  | 'conflict'
  /** The store could not be read or written (permissions, disk full, closed). */
  | 'io';

export interface StoreError {
  readonly kind: StoreErrorKind;
  /** Where the store is (a path, or "memory"). */
  readonly location: string;
  readonly message: string;
}

export interface JobListFilter {
  /** Include ended jobs (default false). */
  readonly includeEnded?: boolean;
  readonly hypervisor?: string;
}

export interface JobStore {
  /** "memory", or the database path. */
  readonly location: string;
  /**
   * Inserts (revision 0 expected: the job must be new) or updates (the stored revision must equal
   * record.revision) a record and returns it with revision + 1. Durable when it resolves.
   */
  save(record: JobRecord): ResultAsync<JobRecord, StoreError>;
  load(jobId: string): ResultAsync<JobRecord | null, StoreError>;
  /** Newest first. */
  list(filter?: JobListFilter): ResultAsync<readonly JobRecord[], StoreError>;
  /**
   * Takes the lease of a job if its current holder is `expectedOwner` (null: nobody, or a holder
   * the caller judged gone). Returns the record as now stored; a conflict if someone else moved first.
   */
  claim(
    jobId: string,
    expectedOwner: string | null,
    owner: LeaseOwner,
    leaseUntil: number,
  ): ResultAsync<JobRecord, StoreError>;
  /**
   * save() for many records at once (recovery takes every lease this way: one transaction where
   * the store has them, not one per job). Each record is its own compare-and-set and succeeds or
   * fails alone; the answers come in the order given. An error of the whole call saved nothing.
   */
  saveAll(records: readonly JobRecord[]): ResultAsync<readonly Result<JobRecord, StoreError>[], StoreError>;
  /** Deletes ended records older than the given epoch ms; returns how many. */
  prune(endedBefore: number): ResultAsync<number, StoreError>;
  /** Bytes the store occupies (for reports and the benchmark). */
  size(): ResultAsync<number, StoreError>;
  close(): void;
}
