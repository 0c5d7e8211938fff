/**
 * A job's write-ahead journal: its record in the job store, saved after every state change and
 * awaited before every side effect. Saves are queued one at a time per job (each is a
 * compare-and-set on the last revision) and coalesced: a save asked for while one is queued
 * writes the newest state once. Every save of an unfinished job extends its lease (lease.ts).
 * A barrier (before a side effect) writes only if something may have changed since the last
 * durable record: a restored job's record was just loaded and claimed, and is the job as it
 * stands until its first checkpoint.
 */
import type { JobEnd, JobRecord, JobStore, StoreError } from '../core/job-store.js';
import { LEASE_MS, leaseDue } from './lease.js';
import type { WriteBatch } from './write-batch.js';

export type RecordFields = Pick<JobRecord, 'snapshot' | 'state' | 'side' | 'plan' | 'endIntent'> &
  Partial<Pick<JobRecord, 'pull'>>;

export class JobJournal {
  private last: JobRecord;
  private tail: Promise<StoreError | null> = Promise.resolve(null);
  private queued: Promise<StoreError | null> | null = null;
  private failure: StoreError | null = null;
  private closed = false;
  /** `last` is durable and is the job as it stands (restored, nothing asked to be saved since). */
  private current: boolean;

  constructor(
    private readonly store: JobStore,
    initial: JobRecord,
    /** The job's current fields, read at the moment each save runs. */
    private readonly read: () => RecordFields,
    private readonly now: () => number,
    /** `initial` is stored already and describes the job exactly (a restored job's claimed record). */
    stored = false,
    /** Saves through the engine's group commit (write-batch.ts) instead of one store.save each. */
    private readonly batch: WriteBatch | null = null,
  ) {
    this.last = initial;
    this.current = stored && initial.revision > 0;
  }

  get record(): JobRecord {
    return this.last;
  }

  /** The last save that failed (the next successful one clears it). */
  get error(): StoreError | null {
    return this.failure;
  }

  /**
   * Write-ahead barrier before a side effect: resolves once the job's current state is durable,
   * without a write when the last record already is the job as it stands.
   */
  barrier(): Promise<StoreError | null> {
    if (this.current && !this.closed) return Promise.resolve(null);
    return this.checkpoint();
  }

  /** Saves the job's current state; resolves once it is durable (null) or failed. */
  checkpoint(end: JobEnd | null = null): Promise<StoreError | null> {
    this.current = false;
    if (end === null && this.queued) return this.queued;
    const run = this.tail.then(() => {
      if (run === this.queued) this.queued = null;
      return this.write(end);
    });
    if (end === null) this.queued = run;
    this.tail = run;
    return run;
  }

  /** Saves again if the job's lease runs out soon (a long job with no state change). */
  renewLease(): Promise<StoreError | null> | null {
    if (this.closed || this.last.end !== null || !leaseDue(this.last.leaseUntil, this.now())) return null;
    return this.checkpoint();
  }

  /** Refuses every later save (the engine closed: nothing more is done for the job here). */
  close(): void {
    this.closed = true;
  }

  /** Waits for every queued save. */
  settled(): Promise<StoreError | null> {
    return this.tail;
  }

  private async write(end: JobEnd | null): Promise<StoreError | null> {
    if (this.closed) return { kind: 'io', location: this.store.location, message: 'the engine was closed' };
    if (this.last.end !== null) return null;
    const fields = this.read();
    const at = this.now();
    const next: JobRecord = {
      ...this.last,
      ...fields,
      end,
      updatedAt: at,
      ...(end !== null ? { owner: null, leaseUntil: null } : { leaseUntil: at + LEASE_MS }),
    };
    const saved = await (this.batch ? this.batch.save(next) : this.store.save(next));
    if (saved.isErr()) {
      this.failure = saved.error;
      return saved.error;
    }
    this.failure = null;
    this.last = saved.value;
    return null;
  }
}
