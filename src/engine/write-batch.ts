/**
 * Group commit for job records: the saves that the jobs of one engine ask for in the same turn
 * of the microtask queue go to the store as one saveAll (one SQLite transaction, one commit)
 * instead of one transaction each. Recovery resumes thousands of jobs whose charts all move at
 * once; a lone save (a running copy's checkpoint) goes alone, as store.save, one microtask later.
 * Each record stays its own compare-and-set and each save resolves only once it is durable, so
 * write-ahead is unchanged: the caller still awaits its own record before its side effect.
 */
import { err, type Result } from 'neverthrow';
import type { JobRecord, JobStore, StoreError } from '../core/job-store.js';

interface Pending {
  readonly record: JobRecord;
  readonly resolve: (saved: Result<JobRecord, StoreError>) => void;
}

export class WriteBatch {
  private pending: Pending[] = [];

  constructor(private readonly store: JobStore) {}

  save(record: JobRecord): Promise<Result<JobRecord, StoreError>> {
    return new Promise((resolve) => {
      if (this.pending.push({ record, resolve }) === 1) queueMicrotask(() => this.flush());
    });
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 1) {
      const only = batch[0]!;
      void this.store.save(only.record).then(only.resolve);
      return;
    }
    void this.store.saveAll(batch.map((p) => p.record)).then((saved) => {
      if (saved.isErr()) for (const p of batch) p.resolve(err(saved.error));
      else saved.value.forEach((answer, i) => batch[i]!.resolve(answer));
    });
  }
}
