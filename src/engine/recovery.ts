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
 *
 * Every lease is taken in one saveAll (one transaction), and the claimed jobs are reconciled
 * RECOVERY_CONCURRENCY at a time; each job still goes through every rule above on its own.
 */
import { ResultAsync, err, ok, type Result } from 'neverthrow';
import type { HypervisorJobInfo, HypervisorPort } from '../core/hypervisor-port.js';
import type { JobEnd, JobRecord, JobStore, LeaseOwner, StoreError } from '../core/job-store.js';
import { JOB_RECORD_FORMAT } from '../core/job-store.js';
import { READABLE_CHART_VERSIONS, READABLE_PULL_CHART_VERSIONS } from '../../machines/chart-version.js';
import type { BlockCopyJobContext } from '../../machines/block-copy-job.js';
import { LEASE_MS, ownersAlive } from './lease.js';

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
  /**
   * Starts a runner from the record's snapshot. `known`: what the hypervisor said of the job
   * during reconciliation (the runner's first poll, without asking again); undefined if not asked.
   */
  readonly resume: (record: JobRecord, known: HypervisorJobInfo | null | undefined) => Promise<unknown>;
  /** Jobs reconciled at once (hypervisor round trips in flight). Default RECOVERY_CONCURRENCY. */
  readonly concurrency?: number;
  /** Starts a block pull's runner from its record (its chart reconciles with the hypervisor). */
  readonly resumePull?: (record: JobRecord) => Promise<unknown>;
}

/**
 * Jobs reconciled at once: enough to hide a monitor's round-trip time over thousands of jobs,
 * few enough not to flood one QEMU monitor or libvirtd with queries.
 */
export const RECOVERY_CONCURRENCY = 32;

/** States in which the hypervisor job exists and nobody has asked it to end. */
const MIRRORING = /^(mirroring|ready)(\.|$)/;

export function recoverJobs(ctx: RecoveryContext): ResultAsync<RecoveryReport, StoreError> {
  return new ResultAsync(run(ctx));
}

type Outcome =
  | { readonly resumed: RecoveredJob & { state: string } }
  | { readonly finished: RecoveredJob & { end: JobEnd; reason: string } }
  | { readonly skipped: RecoveredJob & { reason: string } };

/**
 * In three steps, so that 10,000 jobs take one store transaction, not 10,000: the checks that
 * need no IO, then every lease taken in one saveAll, then each claimed job reconciled with
 * the hypervisor, a bounded number at a time.
 */
async function run(ctx: RecoveryContext): Promise<Result<RecoveryReport, StoreError>> {
  const { store, hypervisor, owner } = ctx;
  const skipped: (RecoveredJob & { reason: string })[] = [];
  const listed = await store.list({ hypervisor: hypervisor.name });
  if (listed.isErr()) return err(listed.error);
  const candidates: JobRecord[] = [];
  // One look at /proc per holder on this host, not per job.
  const alive = ownersAlive(ctx.now());
  /** Disks a newer unfinished record already claims in this recovery (newest first). */
  const disks = new Set<string>();
  for (const stored of listed.value) {
    const id = idOf(stored);
    if (ctx.running(stored.jobId)) continue;
    const readable = stored.jobType === 'pull' ? READABLE_PULL_CHART_VERSIONS : READABLE_CHART_VERSIONS;
    if (stored.format !== JOB_RECORD_FORMAT || !readable.includes(stored.chartVersion)) {
      skipped.push({
        ...id,
        reason: `record format ${stored.format}, chart version ${stored.chartVersion}: this blockcopy reads format ${JOB_RECORD_FORMAT}, chart versions ${readable.join(', ')}; left untouched`,
      });
      continue;
    }
    if (stored.owner !== owner.id && alive(stored.owner, stored.leaseUntil)) {
      skipped.push({ ...id, reason: `run by a live process (${stored.owner})` });
      continue;
    }
    const disk = `${stored.domain}\u0000${stored.disk}`;
    if (ctx.diskTaken(stored.domain, stored.disk) || disks.has(disk)) {
      skipped.push({ ...id, reason: 'this engine already runs another job on the disk' });
      continue;
    }
    disks.add(disk);
    candidates.push(stored);
  }
  // Each lease taken by a compare-and-set on the revision just listed: whoever saved the job
  // since (its holder, alive after all, or another engine recovering) keeps it.
  const leaseUntil = ctx.now() + LEASE_MS;
  const claims = await store.saveAll(candidates.map((r) => ({ ...r, owner: owner.id, leaseUntil })));
  if (claims.isErr()) return err(claims.error);
  const claimed: JobRecord[] = [];
  for (const [i, answer] of claims.value.entries()) {
    if (answer.isOk()) claimed.push(answer.value);
    else if (answer.error.kind === 'conflict') skipped.push({ ...idOf(candidates[i]!), reason: answer.error.message });
    else return err(answer.error);
  }
  const outcomes: Outcome[] = new Array<Outcome>(claimed.length);
  let failure: StoreError | null = null;
  let next = 0;
  const worker = async () => {
    while (failure === null && next < claimed.length) {
      const i = next++;
      const outcome = await reconcile(ctx, claimed[i]!);
      if (outcome.isErr()) failure ??= outcome.error;
      else outcomes[i] = outcome.value;
    }
  };
  const width = Math.max(1, Math.min(ctx.concurrency ?? RECOVERY_CONCURRENCY, claimed.length));
  await Promise.all(Array.from({ length: width }, worker));
  if (failure !== null) return err(failure);
  return ok({
    resumed: outcomes.flatMap((o) => ('resumed' in o ? [o.resumed] : [])),
    finished: outcomes.flatMap((o) => ('finished' in o ? [o.finished] : [])),
    skipped: [...skipped, ...outcomes.flatMap((o) => ('skipped' in o ? [o.skipped] : []))],
  });
}

const idOf = (r: JobRecord): RecoveredJob => ({ jobId: r.jobId, domain: r.domain, disk: r.disk });

/** One claimed job against the hypervisor: finished here, resumed in a runner, or left alone. */
async function reconcile(ctx: RecoveryContext, record: JobRecord): Promise<Result<Outcome, StoreError>> {
  const { store, hypervisor } = ctx;
  const id = idOf(record);
  const context = (record.snapshot as { context?: BlockCopyJobContext } | null)?.context;
  const finish = async (end: JobEnd, reason: string): Promise<Result<Outcome, StoreError>> => {
    const saved = await store.save({ ...record, end, owner: null, leaseUntil: null, updatedAt: ctx.now() });
    return saved.map(() => ({ finished: { ...id, end, reason } }));
  };
  // A block pull: its chart polls the hypervisor and settles the job (completed, cancelled,
  // or vanished); a pull that never started is started again from its recorded step.
  if (record.jobType === 'pull' && record.pull && record.snapshot !== null && ctx.resumePull) {
    await ctx.resumePull(record);
    return ok({ resumed: { ...id, state: record.state } });
  }
  if (record.state === 'queued' && record.request) {
    // Waiting for a slot: nothing was done for it; it queues again, in its place.
    await ctx.resume(record, undefined);
    return ok({ resumed: { ...id, state: record.state } });
  }
  if (!context || !record.request) {
    // Nothing was ever done for it: the first record is written before the first side effect.
    return finish(
      { outcome: 'failed', pivoted: false, destinationConsistent: false, error: null },
      'the record holds no chart snapshot; nothing had been done',
    );
  }
  // libvirt names jobs by disk: tell a fresh adapter which job the recorded id is.
  if (context.plan && hypervisor.reattachJob) {
    const reattached = await hypervisor.reattachJob({
      jobId: record.jobId,
      domain: context.plan.domain,
      disk: context.plan.disk,
      destination: context.plan.destination.path,
    });
    if (reattached.isErr())
      return ok({ skipped: { ...id, reason: `hypervisor unreachable: ${reattached.error.desc}` } });
  }
  let known: HypervisorJobInfo | null | undefined;
  if (MIRRORING.test(record.state) && context.plan) {
    const queried = await hypervisor.queryJob(record.jobId);
    if (queried.isErr()) return ok({ skipped: { ...id, reason: `hypervisor unreachable: ${queried.error.desc}` } });
    known = queried.value;
    if (known === null) {
      const active = await hypervisor.activeImage(record.domain, record.disk);
      if (active.isOk() && active.value === context.plan.destination.path) {
        // Pivoted while no engine watched (by another tool): the copy is the disk now.
        await hypervisor.dismissJob(record.jobId);
        if (context.destinationCreated && hypervisor.releaseDestination)
          await hypervisor.releaseDestination(context.plan.destination.path, record.jobId);
        return finish(
          { outcome: 'completed', pivoted: true, destinationConsistent: true, error: null },
          'the hypervisor no longer knows the job and the guest reads the destination',
        );
      }
    }
  }
  await ctx.resume(record, known);
  return ok({ resumed: { ...id, state: record.state } });
}
