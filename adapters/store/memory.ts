/**
 * In-memory job store: the same contract as the SQLite store (compare-and-set revisions, leases,
 * records kept as JSON text so that only plain data survives), for fast tests and benchmarks.
 */
import { errAsync, okAsync, type ResultAsync } from 'neverthrow';
import type { JobListFilter, JobRecord, JobStore, LeaseOwner, StoreError } from '../../src/core/job-store.js';
import type { WorkflowListFilter, WorkflowRecord, WorkflowStore } from '../../src/core/workflow-store.js';

export class MemoryJobStore implements JobStore, WorkflowStore {
  readonly location = 'memory';
  private readonly rows = new Map<string, string>();
  private readonly workflows = new Map<string, string>();
  private closed = false;

  save(record: JobRecord): ResultAsync<JobRecord, StoreError> {
    const open = this.check();
    if (open) return errAsync(open);
    const stored = this.rows.get(record.jobId);
    const current = stored === undefined ? 0 : (JSON.parse(stored) as JobRecord).revision;
    if (current !== record.revision) return errAsync(conflict(record.jobId, record.revision, current));
    const next = { ...record, revision: record.revision + 1 };
    this.rows.set(record.jobId, JSON.stringify(next));
    return okAsync(next);
  }

  load(jobId: string): ResultAsync<JobRecord | null, StoreError> {
    const open = this.check();
    if (open) return errAsync(open);
    const stored = this.rows.get(jobId);
    return okAsync(stored === undefined ? null : (JSON.parse(stored) as JobRecord));
  }

  list(filter: JobListFilter = {}): ResultAsync<readonly JobRecord[], StoreError> {
    const open = this.check();
    if (open) return errAsync(open);
    const out: JobRecord[] = [];
    for (const text of this.rows.values()) {
      const r = JSON.parse(text) as JobRecord;
      if (!filter.includeEnded && r.end !== null) continue;
      if (filter.hypervisor !== undefined && r.hypervisor !== filter.hypervisor) continue;
      out.push(r);
    }
    return okAsync(out.sort((a, b) => b.createdAt - a.createdAt || (a.jobId < b.jobId ? -1 : 1)));
  }

  claim(
    jobId: string,
    expectedOwner: string | null,
    owner: LeaseOwner,
    leaseUntil: number,
  ): ResultAsync<JobRecord, StoreError> {
    const open = this.check();
    if (open) return errAsync(open);
    const stored = this.rows.get(jobId);
    if (stored === undefined) return errAsync(missing(jobId));
    const r = JSON.parse(stored) as JobRecord;
    if (r.owner !== expectedOwner && r.owner !== owner.id)
      return errAsync({ kind: 'conflict', location: this.location, message: `job '${jobId}' is held by ${r.owner}` });
    const next = { ...r, owner: owner.id, leaseUntil, revision: r.revision + 1 };
    this.rows.set(jobId, JSON.stringify(next));
    return okAsync(next);
  }

  prune(endedBefore: number): ResultAsync<number, StoreError> {
    let n = 0;
    for (const [id, text] of this.rows) {
      const r = JSON.parse(text) as JobRecord;
      if (r.end !== null && r.updatedAt < endedBefore) {
        this.rows.delete(id);
        n++;
      }
    }
    return okAsync(n);
  }

  size(): ResultAsync<number, StoreError> {
    let n = 0;
    for (const text of this.rows.values()) n += Buffer.byteLength(text);
    return okAsync(n);
  }

  saveWorkflow(record: WorkflowRecord): ResultAsync<WorkflowRecord, StoreError> {
    const open = this.check();
    if (open) return errAsync(open);
    const stored = this.workflows.get(record.workflowId);
    const current = stored === undefined ? 0 : (JSON.parse(stored) as WorkflowRecord).revision;
    if (current !== record.revision) return errAsync(conflict(record.workflowId, record.revision, current));
    const next = { ...record, revision: record.revision + 1 };
    this.workflows.set(record.workflowId, JSON.stringify(next));
    return okAsync(next);
  }

  loadWorkflow(workflowId: string): ResultAsync<WorkflowRecord | null, StoreError> {
    const open = this.check();
    if (open) return errAsync(open);
    const stored = this.workflows.get(workflowId);
    return okAsync(stored === undefined ? null : (JSON.parse(stored) as WorkflowRecord));
  }

  listWorkflows(filter: WorkflowListFilter = {}): ResultAsync<readonly WorkflowRecord[], StoreError> {
    const open = this.check();
    if (open) return errAsync(open);
    const out: WorkflowRecord[] = [];
    for (const text of this.workflows.values()) {
      const r = JSON.parse(text) as WorkflowRecord;
      if (!filter.includeEnded && r.ended) continue;
      if (filter.hypervisor !== undefined && r.hypervisor !== filter.hypervisor) continue;
      if (filter.kind !== undefined && r.kind !== filter.kind) continue;
      out.push(r);
    }
    return okAsync(out.sort((a, b) => b.createdAt - a.createdAt || (a.workflowId < b.workflowId ? -1 : 1)));
  }

  claimWorkflow(
    workflowId: string,
    expectedOwner: string | null,
    owner: LeaseOwner,
    leaseUntil: number,
  ): ResultAsync<WorkflowRecord, StoreError> {
    const open = this.check();
    if (open) return errAsync(open);
    const stored = this.workflows.get(workflowId);
    if (stored === undefined)
      return errAsync({
        kind: 'conflict',
        location: this.location,
        message: `no workflow '${workflowId}' in the store`,
      });
    const r = JSON.parse(stored) as WorkflowRecord;
    if (r.owner !== expectedOwner && r.owner !== owner.id)
      return errAsync({
        kind: 'conflict',
        location: this.location,
        message: `workflow '${workflowId}' is held by ${r.owner}`,
      });
    const next = { ...r, owner: owner.id, leaseUntil, revision: r.revision + 1 };
    this.workflows.set(workflowId, JSON.stringify(next));
    return okAsync(next);
  }

  close(): void {
    this.closed = true;
  }

  private check(): StoreError | null {
    return this.closed ? { kind: 'io', location: this.location, message: 'job store is closed' } : null;
  }
}

function conflict(jobId: string, expected: number, found: number): StoreError {
  return {
    kind: 'conflict',
    location: 'memory',
    message: `job '${jobId}' was saved by someone else (revision ${found}, expected ${expected})`,
  };
}

function missing(jobId: string): StoreError {
  return { kind: 'conflict', location: 'memory', message: `no job '${jobId}' in the store` };
}
