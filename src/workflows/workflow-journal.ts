/**
 * Write-ahead journal of one workflow: saves its record (compare-and-set on the revision) one
 * save at a time, with the fields read at save time, so that the store always holds the latest
 * step before that step's side effect runs. Without a store it records nothing and never fails.
 */
import type { StoreError } from '../core/job-store.js';
import type { WorkflowRecord, WorkflowStore } from '../core/workflow-store.js';

export type WorkflowFields = Pick<WorkflowRecord, 'state' | 'data' | 'ended'>;

export class WorkflowJournal {
  private chain: Promise<StoreError | null> = Promise.resolve(null);
  private failed: StoreError | null = null;

  constructor(
    private readonly store: WorkflowStore | null,
    private record: WorkflowRecord,
    private readonly fields: () => WorkflowFields,
    private readonly now: () => number,
  ) {}

  /** Saves the current fields; resolves with the first store error (then every later call too). */
  checkpoint(): Promise<StoreError | null> {
    const store = this.store;
    if (store === null) return Promise.resolve(null);
    this.chain = this.chain.then(async () => {
      if (this.failed) return this.failed;
      const next: WorkflowRecord = { ...this.record, ...this.fields(), updatedAt: this.now() };
      const saved = await store.saveWorkflow(next);
      if (saved.isErr()) {
        this.failed = saved.error;
        return saved.error;
      }
      this.record = saved.value;
      return null;
    });
    return this.chain;
  }

  /** The last saved record. */
  get current(): WorkflowRecord {
    return this.record;
  }
}
