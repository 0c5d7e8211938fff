/**
 * The workflow store port: records of multi-step workflows (the whole-chain storage migration)
 * beside the job records of the job-store port, so that a workflow outlives the process that
 * runs it. Types only; the SQLite and memory stores implement it next to JobStore.
 *
 * Same rules as job records: every write is a compare-and-set on the revision, a workflow step is
 * recorded before its side effect, and an unfinished workflow carries a lease (LeaseOwner).
 */
import type { ResultAsync } from 'neverthrow';
import type { JobStore, LeaseOwner, StoreError } from './job-store.js';

/** Version of the record layout below. */
export const WORKFLOW_RECORD_FORMAT = 1;

export interface WorkflowRecord {
  readonly format: typeof WORKFLOW_RECORD_FORMAT;
  readonly workflowId: string;
  /** What kind of workflow: 'migrate-storage'. */
  readonly kind: string;
  /** The hypervisor connection (the port's name). */
  readonly hypervisor: string;
  readonly domain: string;
  /** The workflow chart's current state, dotted (a column, for listing). */
  readonly state: string;
  /** The workflow's own plain-JSON data (its chart context): what it created, where it stands. */
  readonly data: unknown;
  /** True once the workflow has ended (completed, rolled back or failed). */
  readonly ended: boolean;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** Incremented by every successful save; a save with a stale revision is refused. */
  readonly revision: number;
  /** Lease holder while unfinished. */
  readonly owner: string | null;
  readonly leaseUntil: number | null;
}

export interface WorkflowListFilter {
  readonly includeEnded?: boolean;
  readonly hypervisor?: string;
  readonly kind?: string;
}

export interface WorkflowStore {
  /** Inserts (revision 0) or updates (revision must match) and returns the record at revision + 1. */
  saveWorkflow(record: WorkflowRecord): ResultAsync<WorkflowRecord, StoreError>;
  loadWorkflow(workflowId: string): ResultAsync<WorkflowRecord | null, StoreError>;
  /** Newest first. */
  listWorkflows(filter?: WorkflowListFilter): ResultAsync<readonly WorkflowRecord[], StoreError>;
  /** Takes the lease if its holder is `expectedOwner` (or already `owner`); a conflict otherwise. */
  claimWorkflow(
    workflowId: string,
    expectedOwner: string | null,
    owner: LeaseOwner,
    leaseUntil: number,
  ): ResultAsync<WorkflowRecord, StoreError>;
}

/** A job store that also keeps workflow records (both bundled stores do). */
export function isWorkflowStore(store: JobStore | null | undefined): store is JobStore & WorkflowStore {
  return (
    store != null &&
    typeof (store as Partial<WorkflowStore>).saveWorkflow === 'function' &&
    typeof (store as Partial<WorkflowStore>).loadWorkflow === 'function' &&
    typeof (store as Partial<WorkflowStore>).listWorkflows === 'function' &&
    typeof (store as Partial<WorkflowStore>).claimWorkflow === 'function'
  );
}
