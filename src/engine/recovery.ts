/**
 * Recovery: what an engine does with the unfinished jobs it finds in its store at start, as
 * libvirt's qemuBlockJobRefreshJobs does after a daemon restart, before anything else:
 *
 * - a record from a chart version or record format this build cannot read is reported and left
 *   untouched; a job whose lease a live process holds is left to it;
 * - otherwise the lease is taken (compare-and-set), and the job is reconciled with the
 *   hypervisor: a running or ready mirror is adopted where it stands (the restored chart polls
 *   it; READY is not announced again); a concluded job is confirmed in the block graph by the
 *   chart's own steps; a job the hypervisor no longer knows is judged by what the guest reads
 *   (the destination: it was pivoted, and is finished as such without touching the file; the
 *   source: the chart ends it as vanished and removes only a destination it created);
 * - a job that had not started is resumed from its last recorded step, each of which is
 *   idempotent, so a destination it created is reused, or removed if the start then fails.
 */
import { ResultAsync } from 'neverthrow';
import type { HypervisorPort } from '../core/hypervisor-port.js';
import type { JobEnd, JobRecord, JobStore, LeaseOwner, StoreError } from '../core/job-store.js';
import { JOB_RECORD_FORMAT } from '../core/job-store.js';
import { READABLE_CHART_VERSIONS } from '../../machines/chart-version.js';
import type { BlockCopyJobContext } from '../../machines/block-copy-job.js';
import { ownerAlive } from './lease.js';

export interface RecoveredJob {
  readonly jobId: string;
  readonly domain: string;
  readonly disk: string;
}

export interface RecoveryReport {
  /** Resumed in this engine, from the state recorded. */
  readonly resumed: readonly (RecoveredJob & { readonly state: string })[];
  /** Ended during recovery, without a chart to run (the hypervisor had already decided). */
  readonly finished: readonly (RecoveredJob & { readonly end: JobEnd; readonly reason: string })[];
  /** Left as they are, with the reason. */
  readonly skipped: readonly (RecoveredJob & { readonly reason: string })[];
}

export interface RecoveryContext {
  readonly store: JobStore;
  readonly hypervisor: HypervisorPort;
  readonly owner: LeaseOwner;
  readonly now: () => number;
  /** This engine already runs the job. */
  readonly running: (jobId: string) => boolean;
  /** This engine already runs another job on the disk. */
  readonly diskTaken: (domain: string, disk: string) => boolean;
  /** Starts a runner from the record's snapshot. */
  readonly resume: (record: JobRecord) => Promise<unknown>;
}

/** Lease length for stores shared between hosts; local holders are judged by their process. */
const LEASE_MS = 60_000;

/** States in which the hypervisor job exists and nobody has asked it to end. */
const MIRRORING = /^(mirroring|ready)(\.|$)/;

export function recoverJobs(ctx: RecoveryContext): ResultAsync<RecoveryReport, StoreError> {
  return new ResultAsync(run(ctx));
}

async function run(ctx: RecoveryContext) {
  const { store, hypervisor, owner } = ctx;
  const resumed: (RecoveredJob & { state: string })[] = [];
  const finished: (RecoveredJob & { end: JobEnd; reason: string })[] = [];
  const skipped: (RecoveredJob & { reason: string })[] = [];
  const listed = await store.list({ hypervisor: hypervisor.name });
  if (listed.isErr()) return listed.map(() => ({ resumed, finished, skipped }));
  for (const stored of listed.value) {
    const id = { jobId: stored.jobId, domain: stored.domain, disk: stored.disk };
    if (ctx.running(stored.jobId)) continue;
    if (stored.format !== JOB_RECORD_FORMAT || !READABLE_CHART_VERSIONS.includes(stored.chartVersion)) {
      skipped.push({
        ...id,
        reason: `record format ${stored.format}, chart version ${stored.chartVersion}: this blockcopy reads format ${JOB_RECORD_FORMAT}, chart versions ${READABLE_CHART_VERSIONS.join(', ')}; left untouched`,
      });
      continue;
    }
    if (stored.owner !== owner.id && ownerAlive(stored.owner, stored.leaseUntil, ctx.now())) {
      skipped.push({ ...id, reason: `run by a live process (${stored.owner})` });
      continue;
    }
    if (ctx.diskTaken(stored.domain, stored.disk)) {
      skipped.push({ ...id, reason: 'this engine already runs another job on the disk' });
      continue;
    }
    const claimed = await store.claim(stored.jobId, stored.owner, owner, ctx.now() + LEASE_MS);
    if (claimed.isErr()) {
      if (claimed.error.kind !== 'conflict') return claimed.map(() => ({ resumed, finished, skipped }));
      skipped.push({ ...id, reason: claimed.error.message });
      continue;
    }
    const record = claimed.value;
    if (record.state === 'queued' && record.request) {
      // Waiting for a slot: nothing was done for it; it queues again, in its place.
      await ctx.resume(record);
      resumed.push({ ...id, state: record.state });
      continue;
    }
    const context = (record.snapshot as { context?: BlockCopyJobContext } | null)?.context;
    if (!context || !record.request) {
      // Nothing was ever done for it: the first record is written before the first side effect.
      const end: JobEnd = {
        outcome: 'failed',
        pivoted: false,
        destinationConsistent: false,
        error: null,
      };
      const saved = await store.save({ ...record, end, owner: null, leaseUntil: null, updatedAt: ctx.now() });
      if (saved.isErr()) return saved.map(() => ({ resumed, finished, skipped }));
      finished.push({ ...id, end, reason: 'the record holds no chart snapshot; nothing had been done' });
      continue;
    }
    if (MIRRORING.test(record.state) && context.plan) {
      const known = await hypervisor.queryJob(record.jobId);
      if (known.isErr()) {
        skipped.push({ ...id, reason: `hypervisor unreachable: ${known.error.desc}` });
        continue;
      }
      if (known.value === null) {
        const active = await hypervisor.activeImage(record.domain, record.disk);
        if (active.isOk() && active.value === context.plan.destination.path) {
          // Pivoted while no engine watched (by another tool): the copy is the disk now.
          await hypervisor.dismissJob(record.jobId);
          if (context.destinationCreated && hypervisor.releaseDestination)
            await hypervisor.releaseDestination(context.plan.destination.path, record.jobId);
          const end: JobEnd = { outcome: 'completed', pivoted: true, destinationConsistent: true, error: null };
          const saved = await store.save({ ...record, end, owner: null, leaseUntil: null, updatedAt: ctx.now() });
          if (saved.isErr()) return saved.map(() => ({ resumed, finished, skipped }));
          finished.push({
            ...id,
            end,
            reason: 'the hypervisor no longer knows the job and the guest reads the destination',
          });
          continue;
        }
      }
    }
    await ctx.resume(record);
    resumed.push({ ...id, state: record.state });
  }
  return listed.map(() => ({ resumed, finished, skipped }));
}
