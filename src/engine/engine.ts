/**
 * The block-copy engine: libvirt's block-job API (blockRebase, blockCopy, blockJobAbort,
 * getBlockJobInfo, blockJobSetSpeed) over a hypervisor port, one job machine per disk, and the
 * domain guard that refuses save, snapshot, detach and define while a copy is active.
 * Nothing here throws: every call returns a neverthrow Result.
 */
import type { Result } from 'neverthrow';
import { ResultAsync, err, errAsync, ok, okAsync } from 'neverthrow';
import type { Observable } from 'rxjs';
import type { Subscription } from 'rxjs';
import { Subject, share } from 'rxjs';
import type { InspectionEvent } from 'xstate';
import type { DiskNames, HypervisorEvent, HypervisorPort } from '../core/hypervisor-port.js';
import type { Clock } from '../core/clock.js';
import { interval$, systemClock } from '../core/clock.js';
import type { BlockCopyError } from '../core/errors.js';
import { blockCopyError, errors } from '../core/errors.js';
import type { BlockJobStatusName } from '../core/flags.js';
import { fromHypervisorError } from '../core/hypervisor-error.js';
import type { JobProgress, JobResult } from './job-runner.js';
import type { RestoreInput } from './job-runner.js';
import { JobRunner, domainFacts, gatherFacts, provideJobMachine, stateName, type KnownFacts } from './job-runner.js';
import type { EndIntent, JobEnd, JobRecord, JobStore, LeaseOwner, StoreError } from '../core/job-store.js';
import { JOB_RECORD_FORMAT } from '../core/job-store.js';
import { JOB_CHART_VERSION } from '../../machines/chart-version.js';
import { JobJournal } from './journal.js';
import { WriteBatch } from './write-batch.js';
import { RENEW_EVERY_MS, localOwner } from './lease.js';
import type { RecoveryReport } from './recovery.js';
import { recoverJobs } from './recovery.js';
import { adoptionOf } from './adoption.js';
import type { BlockPullJob } from './pull-jobs.js';
import { PullJobs } from './pull-jobs.js';
import { isPullRebase, validateBlockPull, validateRebasePull } from '../core/pull.js';
import { resolveDisk } from '../core/disk-identity.js';
import { checkEngineOptions, checkJobId, refusingEngine } from './options.js';
import type { ConvergencePolicy } from '../core/convergence.js';
import { checkConvergencePolicy } from '../core/convergence.js';
import { provideConvergenceMachine, watchConvergence } from './convergence.js';
import { JobSlots } from './job-slots.js';
import type { CopyPlan, CopyRequest } from '../core/plan.js';
import type { BlockJobInfo, CopyArgs, CopyOptions } from '../core/validate.js';
import {
  planCopy,
  translateJobInfo,
  validateAbort,
  validateCopy,
  validateRebase,
  validateSetSpeed,
} from '../core/validate.js';

export interface EngineOptions {
  readonly hypervisor: HypervisorPort;
  /** Time source for polling (default: the system clock). */
  readonly clock?: Clock;
  /** How often each active job's info is polled, in ms (default 500, as virsh and Nova). */
  readonly pollIntervalMs?: number;
  /** XState inspection observer, installed on every job actor. */
  readonly inspect?: (event: InspectionEvent) => void;
  /**
   * Job id factory (default: "copy-<disk>-<random>", the canonical disk name with characters QEMU
   * refuses in ids replaced). Ids must be unique on the hypervisor and valid QEMU ids.
   */
  readonly jobId?: (domain: string, disk: string) => string;
  /**
   * Job store: with one, every job's record is written ahead of each side effect and after each
   * state change, and recover() resumes unfinished jobs. Without one, jobs live in memory only.
   */
  readonly store?: JobStore;
  /** This process as a lease holder (default: host, pid and process start time). */
  readonly owner?: LeaseOwner;
  /** Wall-clock time for records (default Date.now). */
  readonly now?: () => number;
  /**
   * Do what a recovered job's recorded intent says at ready (default true: the daemon). A
   * one-shot command (blockjob --info) passes false: it only looks, the user's verb acts.
   */
  readonly actOnIntents?: boolean;
  /**
   * Convergence policy of every copy that does not set its own (JobControls.convergence):
   * detect a mirror the guest outruns, escalate, give up at the deadline (src/core/convergence.ts).
   */
  readonly convergence?: ConvergencePolicy;
  /** At most this many copies run at once; the others wait, queued in order (src/engine/job-slots.ts). */
  readonly maxJobs?: number;
  /** At most this many copies into one filesystem run at once. */
  readonly maxJobsPerFilesystem?: number;
  /** Slots shared with other engines (one host limit for several connections); wins over maxJobs*. */
  readonly slots?: JobSlots;
}

/** What the engine does about a job beyond libvirt's call, for one submission. */
export interface JobControls {
  /** Cancels the job while it has not started mirroring (ignored afterwards). */
  readonly signal?: AbortSignal;
  /**
   * What the caller will do at ready ('pivot' or 'finish'), recorded so that a restarted engine
   * does it if the caller is gone. The engine itself acts on it only for recovered jobs.
   */
  readonly endIntent?: EndIntent;
  /** This copy's convergence policy; null: none, whatever the engine's default. */
  readonly convergence?: ConvergencePolicy | null;
}

/** A block-job event, as libvirt's VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2 (keyed by disk target). */
export interface BlockJobEvent {
  readonly domain: string;
  readonly disk: string;
  readonly jobId: string;
  readonly type: 'COPY' | 'PULL';
  readonly status: BlockJobStatusName;
  readonly pivoted: boolean;
  readonly destinationConsistent: boolean;
  readonly error: BlockCopyError | null;
}

export interface JobStateChange {
  readonly jobId: string;
  readonly domain: string;
  readonly disk: string;
  readonly state: string;
}

/** A running copy job. */
export interface BlockCopyJob {
  readonly jobId: string;
  readonly domain: string;
  readonly disk: string;
  /** What the engine is doing for this request. */
  readonly plan: CopyPlan;
  /** Current chart state, e.g. "mirroring.running". */
  state(): string;
  /** Every state entered so far, in order. */
  states(): readonly string[];
  /** Latest progress seen (polls and events), or null before the first. */
  progress(): JobProgress | null;
  /** Progress; a late subscriber gets the latest value first. Completes when the job ends. */
  readonly progress$: Observable<JobProgress>;
  /** State names; a late subscriber gets the current one first. Completes when the job ends. */
  readonly stateChanges$: Observable<string>;
  /** 'engine', or 'recovered' when this process resumed it from the job store. */
  readonly origin: 'engine' | 'recovered';
  /** Resolves once the job has ended; never rejects. */
  readonly result: Promise<JobResult>;
}

/** Domain operations the seed refuses while a copy is active. */
export type DomainOperation = 'save' | 'snapshot-create' | 'detach' | 'define';

export interface AbortOptions {
  /** Force-cancel (QEMU force=true): no consistent copy is left. */
  readonly force?: boolean;
}

/** virDomainBlockRebase's arguments: domain, disk, base (the destination), bandwidth, flags. */
export type RebaseCall = [
  domain: string,
  disk: string | null,
  base: string | null,
  bandwidth: number,
  flags: number,
  options?: CopyOptions & JobControls,
];

export interface BlockCopyEngine {
  /**
   * virDomainBlockRebase: resolves once the job has started. With VIR_DOMAIN_BLOCK_REBASE_COPY a
   * copy job; without it a block pull into the active image from `base` (null: the whole chain),
   * whose handle has `type: 'PULL'`. The type parameter names the handle for pull callers; the
   * default is the copy's (blockPullRebase is the typed pull entry).
   */
  blockRebase<J extends BlockCopyJob | BlockPullJob = BlockCopyJob>(
    ...args: RebaseCall
  ): ResultAsync<J, BlockCopyError>;
  /** virDomainBlockRebase without COPY (RELATIVE, BANDWIDTH_BYTES): a block pull. */
  blockPullRebase(
    domain: string,
    disk: string | null,
    base: string | null,
    bandwidth: number,
    flags: number,
  ): ResultAsync<BlockPullJob, BlockCopyError>;
  /** virDomainBlockPull: the whole chain pulled into the active image (flags: BANDWIDTH_BYTES). */
  blockPull(
    domain: string,
    disk: string | null,
    bandwidth: number,
    flags: number,
  ): ResultAsync<BlockPullJob, BlockCopyError>;
  /** The engine's block pull on the disk (any of its names), if one runs. */
  pullJob(domain: string, disk: string): BlockPullJob | undefined;
  /** Block pull jobs (active; with includeEnded also those that ended in this process). */
  pullJobs(filter?: { readonly includeEnded?: boolean }): readonly BlockPullJob[];
  /** virDomainBlockCopy: destination {path, format, type ('block': a block device)}, params in bytes. */
  blockCopy(
    domain: string,
    disk: string | null,
    destination: CopyArgs['destination'],
    params: { readonly bandwidth?: number; readonly granularity?: number; readonly bufSize?: number },
    flags: number,
    options?: CopyOptions & JobControls,
  ): ResultAsync<BlockCopyJob, BlockCopyError>;
  /** Validates a rebase request and reports the plan, touching nothing (dry run). */
  planRebase(...args: RebaseCall): ResultAsync<CopyPlan, BlockCopyError>;
  /** The same for a virDomainBlockCopy request (blockCopy's arguments). */
  planBlockCopy(...args: Parameters<BlockCopyEngine['blockCopy']>): ResultAsync<CopyPlan, BlockCopyError>;
  /** virDomainBlockJobAbort: ASYNC returns once the hypervisor accepted; PIVOT switches to the copy. */
  blockJobAbort(domain: string, disk: string, flags: number, options?: AbortOptions): ResultAsync<void, BlockCopyError>;
  /** virDomainGetBlockJobInfo: null when the disk has no job (libvirt returns 0). */
  getBlockJobInfo(domain: string, disk: string, flags: number): ResultAsync<BlockJobInfo | null, BlockCopyError>;
  /** virDomainBlockJobSetSpeed (MiB/s unless BANDWIDTH_BYTES). */
  blockJobSetSpeed(domain: string, disk: string, bandwidth: number, flags: number): ResultAsync<void, BlockCopyError>;
  /** QEMU block-job-pause (not in libvirt's API). */
  blockJobPause(domain: string, disk: string): ResultAsync<void, BlockCopyError>;
  /** QEMU block-job-resume, e.g. to retry after an I/O error stopped the job. */
  blockJobResume(domain: string, disk: string): ResultAsync<void, BlockCopyError>;
  /** Asks before save, snapshot, detach or define: refused with VIR_ERR_BLOCK_COPY_ACTIVE while a copy is active. */
  checkDomainOperation(domain: string, operation: DomainOperation, disk?: string): ResultAsync<void, BlockCopyError>;
  /** The domain's disks by every name that refers to each, with any block job (virsh domblklist). */
  listDisks(domain: string): ResultAsync<readonly DiskNames[], BlockCopyError>;
  job(domain: string, disk: string): BlockCopyJob | undefined;
  /** A job of this engine by its id (ended ones too, while remembered). */
  jobById(jobId: string): BlockCopyJob | undefined;
  /** Active jobs; with includeEnded, also the jobs that ended in this process (most recent last). */
  jobs(filter?: { readonly includeEnded?: boolean }): readonly BlockCopyJob[];
  /**
   * Loads every unfinished job of this hypervisor from the store, reconciles it with the
   * hypervisor and resumes it (src/engine/recovery.ts). Without a store: an empty report.
   */
  recover(): ResultAsync<RecoveryReport, BlockCopyError>;
  /**
   * Takes over a mirror job on the disk that this engine did not start (another tool, or a
   * blockcopy process without a store), so that it can be pivoted or aborted like its own.
   * Returns this engine's job if it already runs one on the disk.
   */
  adopt(domain: string, disk: string): ResultAsync<BlockCopyJob, BlockCopyError>;
  readonly store: JobStore | null;
  readonly events$: Observable<BlockJobEvent>;
  readonly jobStates$: Observable<JobStateChange>;
  /**
   * Stops every job actor (the hypervisor jobs go on; the port stays open): each pending result
   * settles as 'detached', every stream completes. Recorded jobs stay in the store for recover().
   */
  close(): void;
  /** Waits for in-flight store writes, then close(). */
  shutdown(): Promise<void>;
}

const DEFAULT_POLL_MS = 500;

function randomSuffix(): string {
  return Math.floor(Math.random() * 0xffffffff)
    .toString(16)
    .padStart(8, '0');
}

/** A QEMU id must start with a letter and hold only letters, digits, '-', '.', '_'. */
function qemuIdPart(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9._-]/g, '_');
  return safe === '' ? 'disk' : safe;
}

function statusOf(result: JobResult): BlockJobStatusName {
  return result.outcome === 'completed' ? 'COMPLETED' : result.outcome === 'canceled' ? 'CANCELED' : 'FAILED';
}

function wrapPromise<T>(promise: Promise<Result<T, BlockCopyError>>): ResultAsync<T, BlockCopyError> {
  return new ResultAsync(
    promise.catch((e: unknown) =>
      err(blockCopyError('VIR_ERR_INTERNAL_ERROR', e instanceof Error ? e.message : String(e))),
    ),
  );
}

/** createEngine, with bad options reported up front instead of by every call. */
export function tryCreateEngine(options: EngineOptions): Result<BlockCopyEngine, BlockCopyError> {
  return checkEngineOptions(options).map(() => createEngine(options));
}

/**
 * The engine. Bad options (a poll interval that is not a positive number of ms, a missing port,
 * a clock or job id factory of the wrong shape) give an engine whose every call returns that
 * VIR_ERR_INVALID_ARG: nothing throws, nothing polls.
 */
export function createEngine(options: EngineOptions): BlockCopyEngine {
  const checked = checkEngineOptions(options);
  if (checked.isErr()) return refusingEngine<BlockCopyEngine>(checked.error);
  const hypervisor = options.hypervisor;
  const clock = options.clock ?? systemClock;
  const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_MS;
  const makeJobId = options.jobId ?? ((_domain: string, disk: string) => `copy-${qemuIdPart(disk)}-${randomSuffix()}`);
  const store = options.store ?? null;
  const owner = options.owner ?? localOwner();
  const now = options.now ?? Date.now;
  const actOnIntents = options.actOnIntents ?? true;
  const journals = new Map<string, JobJournal>();
  const writeBatch = store ? new WriteBatch(store) : null;
  const slots =
    options.slots ??
    (options.maxJobs !== undefined || options.maxJobsPerFilesystem !== undefined
      ? new JobSlots({
          ...(options.maxJobs !== undefined ? { maxJobs: options.maxJobs } : {}),
          ...(options.maxJobsPerFilesystem !== undefined ? { maxJobsPerFilesystem: options.maxJobsPerFilesystem } : {}),
        })
      : null);
  /** Write-ahead barrier of the IO actors: the job's record is durable before the effect. */
  const beforeEffect = async (jobId: string): Promise<void> => {
    const journal = journals.get(jobId);
    if (!journal) return;
    const failed = await journal.barrier();
    if (failed) throw storeFailure(failed);
  };
  /** Renews the lease of every job this engine runs (lease.ts); a timer only while there are some. */
  let leaseRenewal: Subscription | null = null;
  const watchLeases = () => {
    if (journals.size > 0 && !closed) {
      leaseRenewal ??= interval$(clock, RENEW_EVERY_MS).subscribe(() => {
        for (const journal of journals.values()) void journal.renewLease();
      });
    } else if (leaseRenewal) {
      leaseRenewal.unsubscribe();
      leaseRenewal = null;
    }
  };
  // One poll timer for the whole engine, running only while some job listens.
  const convergenceMachine = provideConvergenceMachine(hypervisor, (jobId) => byId.get(jobId));
  /** What startJob's busy check read, handed to the job's planner so it is not asked twice. */
  const knownFacts = new Map<string, KnownFacts>();
  const machine = provideJobMachine(hypervisor, beforeEffect, (jobId) => {
    const known = knownFacts.get(jobId);
    knownFacts.delete(jobId);
    return known;
  });
  const pollTicks$ = interval$(clock, pollIntervalMs).pipe(share());
  // Hypervisor events routed to their job by id, once, instead of every job filtering them all.
  const jobEvents = new Map<string, Subject<HypervisorEvent>>();
  let hypervisorSubscription: Subscription | null = null;
  const routeEvents = () => {
    hypervisorSubscription ??= hypervisor.events$.subscribe((event) => {
      if ('jobId' in event) jobEvents.get(event.jobId)?.next(event);
      else for (const subject of jobEvents.values()) subject.next(event);
    });
  };
  const events$ = new Subject<BlockJobEvent>();
  const jobStates$ = new Subject<JobStateChange>();
  /** The domain guard: at most one job per disk, reserved synchronously before any IO. */
  const runners = new Map<string, JobRunner>();
  const handles = new Map<JobRunner, BlockCopyJob>();
  const byId = new Map<string, JobRunner>();
  const ended: BlockCopyJob[] = [];
  const ENDED_KEPT = 100;
  const recovered = new Set<JobRunner>();
  /** Recovered jobs whose end the engine requested itself, on their recorded intent. */
  const endedOnIntent = new Map<JobRunner, 'pivot' | 'finish'>();
  let closed = false;
  const key = (domain: string, disk: string) => `${domain}\u0000${disk}`;
  /** Every name each job's disk answered to when the job started: any spelling finds the job. */
  const diskNames = new Map<JobRunner, DiskNames>();
  /** Block pulls (src/engine/pull-jobs.ts): one job per disk across copy and pull. */
  const pulls = new PullJobs({
    hypervisor,
    clock,
    pollTicks$,
    inspect: options.inspect,
    store,
    owner,
    now,
    route: (jobId) => {
      const routed = new Subject<HypervisorEvent>();
      jobEvents.set(jobId, routed);
      routeEvents();
      return routed;
    },
    unroute: (jobId) => jobEvents.delete(jobId),
    makeJobId: (domain, disk) => {
      try {
        return checkJobId(options.jobId ? makeJobId(domain, disk) : `pull-${qemuIdPart(disk)}-${randomSuffix()}`);
      } catch (e) {
        return err(
          blockCopyError('VIR_ERR_INVALID_ARG', `job id factory failed: ${e instanceof Error ? e.message : String(e)}`),
        );
      }
    },
    copyHolds: (domain, disk) => heldBy(domain, disk) !== undefined,
    events$,
    jobStates$,
    closed: () => closed,
  });
  /** Jobs waiting for a slot (their chart has not started). */
  const queuedRunners = new Set<JobRunner>();
  const queuedRefusal = (runner: JobRunner) =>
    blockCopyError('VIR_ERR_OPERATION_INVALID', `block job on disk '${runner.disk}' is queued and has not started`);

  /** The engine's job on the disk `typed` names, by its canonical name or any other name. */
  function heldBy(domain: string, typed: string): JobRunner | undefined {
    const direct = runners.get(key(domain, typed));
    if (direct) return direct;
    const mine = [...diskNames].filter(([r]) => r.domain === domain && runners.get(key(domain, r.disk)) === r);
    const hit = resolveDisk(
      mine.map(([, n]) => n),
      typed,
    );
    return hit.isOk() ? mine.find(([, n]) => n === hit.value)?.[0] : undefined;
  }

  /**
   * The engine's job on the disk, whatever the spelling; else not found, or no active job. As
   * libvirt (which looks in its own definition), a hypervisor that cannot be asked does not
   * turn "no active job" into a hypervisor error.
   */
  function locate(domain: string, typed: string): ResultAsync<JobRunner, BlockCopyError> {
    return find(domain, typed).andThen((f) => (f.runner ? ok(f.runner) : err(errors.noActiveJob(f.disk))));
  }

  /** The disk's canonical name and the engine's job on it, if any. */
  function find(
    domain: string,
    typed: string,
  ): ResultAsync<{ readonly disk: string; readonly runner: JobRunner | undefined }, BlockCopyError> {
    const held = heldBy(domain, typed);
    if (held) return okAsync({ disk: held.disk, runner: held });
    return new ResultAsync(
      (async () => {
        const listed = await hypervisor.listDisks(domain);
        if (listed.isErr()) return ok({ disk: typed, runner: undefined });
        if (listed.value === null) return err(errors.noDomain(domain));
        const d = resolveDisk(listed.value, typed);
        if (d.isErr()) return err(d.error);
        return ok({ disk: d.value.disk, runner: runners.get(key(domain, d.value.disk)) });
      })(),
    );
  }

  function handleOf(runner: JobRunner): BlockCopyJob {
    let handle = handles.get(runner);
    if (!handle) {
      handle = {
        jobId: runner.jobId,
        domain: runner.domain,
        disk: runner.disk,
        get plan() {
          return runner.snapshot.context.plan!;
        },
        state: () => runner.states[runner.states.length - 1] ?? 'validating',
        states: () => [...runner.states],
        progress: () => runner.progress,
        progress$: runner.progress$.asObservable(),
        stateChanges$: runner.stateChanges$.asObservable(),
        origin: recovered.has(runner) ? 'recovered' : 'engine',
        result: runner.result,
      };
      handles.set(runner, handle);
    }
    return handle;
  }

  /** Runs `fn` on the disk's job: at once (the chart decides synchronously) when the engine holds it. */
  function withRunner<T>(
    domain: string,
    typed: string,
    fn: (runner: JobRunner) => ResultAsync<T, BlockCopyError>,
  ): ResultAsync<T, BlockCopyError> {
    const held = heldBy(domain, typed);
    return held ? fn(held) : locate(domain, typed).andThen(fn);
  }

  /** The first record of a new job (revision 0: inserted by its first checkpoint). */
  function newRecord(jobId: string, request: CopyRequest, endIntent: EndIntent): JobRecord {
    const at = now();
    return {
      format: JOB_RECORD_FORMAT,
      jobId,
      hypervisor: hypervisor.name,
      domain: request.domain,
      disk: request.disk,
      origin: 'engine',
      request,
      plan: null,
      chartVersion: JOB_CHART_VERSION,
      snapshot: null,
      state: 'validating',
      side: {
        states: [],
        readyAnnounced: false,
        pause: { userPauseRequested: false, stoppedOnError: false },
        progress: null,
      },
      endIntent,
      end: null,
      createdAt: at,
      updatedAt: at,
      revision: 0,
      owner: owner.id,
      leaseUntil: null,
    };
  }

  /** Registers a runner (new or restored), its journal, its events and its end; the caller starts it. */
  function register(
    runner: JobRunner,
    record: JobRecord | null,
    endIntent: EndIntent,
    names: DiskNames | null = null,
    /** `record` is the job's stored record, claimed by this engine, from which the runner was restored. */
    restored = false,
  ): JobJournal | null {
    const k = key(runner.domain, runner.disk);
    runners.set(k, runner);
    byId.set(runner.jobId, runner);
    if (names) diskNames.set(runner, names);
    const journal =
      store && record
        ? new JobJournal(store, record, () => fieldsOf(runner, endIntent), now, restored, writeBatch)
        : null;
    if (journal) journals.set(runner.jobId, journal);
    watchLeases();
    let intentSent = false;
    runner.stateChanges$.subscribe((state) => {
      jobStates$.next({ jobId: runner.jobId, domain: runner.domain, disk: runner.disk, state });
      if (!runner.readyAnnounced && state.startsWith('ready')) {
        runner.readyAnnounced = true;
        const announce = () =>
          events$.next({
            domain: runner.domain,
            disk: runner.disk,
            jobId: runner.jobId,
            type: 'COPY',
            status: 'READY',
            pivoted: false,
            destinationConsistent: false,
            error: null,
          });
        // Recorded before it goes out: never announced twice, restarts included.
        if (journal) void journal.checkpoint().then((failed) => failed === null && announce());
        else announce();
      }
      // A recovered job whose caller is gone: do what the caller said it would at ready.
      if (actOnIntents && recovered.has(runner) && endIntent && !intentSent && state === 'ready.synced') {
        intentSent = true;
        endedOnIntent.set(runner, endIntent);
        queueMicrotask(() =>
          runner.request(endIntent === 'pivot' ? { type: 'PIVOT' } : { type: 'ABORT', force: false }),
        );
      }
    });
    void runner.result.then(async (result) => {
      slots?.release(runner.jobId);
      if (runners.get(k) === runner) runners.delete(k);
      diskNames.delete(runner);
      jobEvents.delete(runner.jobId);
      if (result.outcome === 'detached') return;
      if (journal) {
        await journal.checkpoint(endOf(result));
        journals.delete(runner.jobId);
        watchLeases();
      }
      ended.push(handleOf(runner));
      if (ended.length > ENDED_KEPT) {
        const dropped = ended.shift()!;
        const old = byId.get(dropped.jobId);
        if (old) handles.delete(old);
        byId.delete(dropped.jobId);
      }
      // libvirt emits no event for a job that never started.
      if (runner.snapshot.context.started && !closed) {
        events$.next({
          domain: result.domain,
          disk: result.disk,
          jobId: result.jobId,
          type: 'COPY',
          status: statusOf(result),
          pivoted: result.pivoted,
          destinationConsistent: result.destinationConsistent,
          error: result.error,
        });
      }
    });
    return journal;
  }

  /** Undoes register() for a job that never started (its first record could not be written). */
  function unregister(runner: JobRunner): void {
    slots?.release(runner.jobId);
    const k = key(runner.domain, runner.disk);
    if (runners.get(k) === runner) runners.delete(k);
    byId.delete(runner.jobId);
    diskNames.delete(runner);
    journals.delete(runner.jobId);
    watchLeases();
    jobEvents.delete(runner.jobId);
  }

  function newRunner(jobId: string, request: CopyRequest, restore?: RestoreInput): JobRunner {
    const routed = new Subject<HypervisorEvent>();
    jobEvents.set(jobId, routed);
    routeEvents();
    return new JobRunner({
      jobId,
      events$: routed,
      request,
      hypervisor,
      clock,
      pollTicks$,
      inspect: options.inspect,
      machine,
      restore,
      onChange: () => void journals.get(jobId)?.checkpoint(),
    });
  }

  /** A queued job's slot came: it starts now, as if just asked for. */
  function beginQueued(runner: JobRunner): void {
    queuedRunners.delete(runner);
    if (
      closed ||
      runner.actorStarted ||
      runner.snapshot.status !== 'active' ||
      !runners.has(key(runner.domain, runner.disk))
    )
      return;
    runner.start();
    superviseConvergence(runner);
  }

  /** Runs the job's convergence policy beside it, if it has one; its state goes into the job's record. */
  function superviseConvergence(runner: JobRunner): void {
    const c = runner.convergence;
    if (!c || runner.snapshot.status !== 'active') return;
    watchConvergence({
      machine: convergenceMachine,
      runner,
      policy: c.policy,
      clock,
      elapsedMs: Math.max(0, now() - c.startedAt),
      ...(c.snapshot ? { snapshot: c.snapshot } : {}),
      // The policy is its own actor system: the inspector files it as "JOB/convergence".
      inspect: options.inspect,
      onChange: (snapshot) => {
        if (runner.convergence) runner.convergence = { ...runner.convergence, snapshot };
        void journals.get(runner.jobId)?.checkpoint();
      },
    });
  }

  /**
   * Resolves the typed disk to its canonical identity, then reserves it synchronously: two
   * requests under two spellings of one disk cannot both start. A name that resolves to nothing
   * still goes through the job, whose planner refuses it with the names that would work.
   */
  function startJob(request: CopyRequest, controls: JobControls = {}): ResultAsync<BlockCopyJob, BlockCopyError> {
    if (closed) return errAsync(blockCopyError('VIR_ERR_OPERATION_INVALID', 'the engine is closed'));
    const early = heldBy(request.domain, request.disk);
    if (early) return errAsync(errors.diskInCopyJob(early.disk));
    const pulling = pulls.held(request.domain, request.disk);
    if (pulling) return errAsync(pullBusy(pulling.disk));
    // The domain and its disks in one go (one batch of QMP queries): the busy check and the
    // job's plan both read this answer.
    const resolved: Promise<
      Result<{ names: DiskNames | null; known: KnownFacts | null; filesystem: string }, BlockCopyError>
    > = (async () => {
      const facts = await domainFacts(hypervisor, request.domain);
      const filesystem = slots ? await slots.filesystemOf(request.destination) : '';
      if (facts.isErr()) return ok({ names: null, known: null, filesystem });
      const disks = facts.value.disks;
      const found = disks !== null ? resolveDisk(disks, request.disk) : null;
      return ok({ names: found?.isOk() ? found.value : null, known: facts.value, filesystem });
    })();
    return new ResultAsync(resolved).andThen(({ names, known, filesystem }) =>
      launch(names ? { ...request, disk: names.disk } : request, names, controls, filesystem, known),
    );
  }

  function launch(
    request: CopyRequest,
    names: DiskNames | null,
    controls: JobControls,
    filesystem = '',
    known: KnownFacts | null = null,
  ): ResultAsync<BlockCopyJob, BlockCopyError> {
    if (closed) return errAsync(blockCopyError('VIR_ERR_OPERATION_INVALID', 'the engine is closed'));
    const k = key(request.domain, request.disk);
    const held = heldBy(request.domain, request.disk);
    if (held) return errAsync(errors.diskInCopyJob(held.disk));
    const pulling = pulls.held(request.domain, request.disk);
    if (pulling) return errAsync(pullBusy(pulling.disk));
    if (controls.signal?.aborted) return errAsync(aborted(request.disk));
    let made: unknown;
    try {
      made = makeJobId(request.domain, request.disk);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      return errAsync(blockCopyError('VIR_ERR_INVALID_ARG', `job id factory failed: ${why}`));
    }
    const checkedId = checkJobId(made);
    if (checkedId.isErr()) return errAsync(checkedId.error);
    const jobId = checkedId.value;
    if (jobEvents.has(jobId))
      return errAsync(blockCopyError('VIR_ERR_INVALID_ARG', `job id '${jobId}' is already in use`));
    const endIntent = controls.endIntent ?? null;
    const wanted = controls.convergence === undefined ? options.convergence : controls.convergence;
    const policy = wanted ? checkConvergencePolicy(wanted) : null;
    if (policy?.isErr()) return errAsync(policy.error);
    const runner = newRunner(jobId, request);
    if (policy?.isOk()) runner.convergence = { policy: policy.value, startedAt: now(), snapshot: null };
    // A slot now, or a place in the queue (recorded as 'queued' in the first record).
    const runNow = slots ? slots.admit({ jobId, filesystem, order: now(), start: () => beginQueued(runner) }) : true;
    if (!runNow) runner.markQueued();
    // A queued job plans when its slot frees: by then these facts are stale; it asks again.
    if (known && runNow) knownFacts.set(jobId, known);
    void runner.result.then(() => knownFacts.delete(jobId));
    const journal = register(runner, store ? newRecord(jobId, request, endIntent) : null, endIntent, names);
    if (!runNow) queuedRunners.add(runner);
    const started = new Promise<Result<BlockCopyJob, BlockCopyError>>((resolve) => {
      const sub = runner.actor.subscribe((snapshot) => {
        if (snapshot.context.started) {
          resolve(ok(handleOf(runner)));
          queueMicrotask(() => sub.unsubscribe());
        } else if (snapshot.status === 'done') {
          resolve(err(snapshot.context.error ?? blockCopyError('VIR_ERR_INTERNAL_ERROR', 'job failed to start')));
          queueMicrotask(() => sub.unsubscribe());
        }
      });
      void runner.result.then((result) => {
        if (result.outcome === 'detached') resolve(err(aborted(request.disk, 'the engine was closed')));
      });
      // Cancel before mirroring: nothing started yet is simply stopped; a start under way is
      // let land and then force-cancelled, so a destination the engine created is removed.
      controls.signal?.addEventListener(
        'abort',
        () => {
          const snap = runner.snapshot;
          if (snap.status !== 'active' || snap.context.started) return;
          if (snap.matches('validating')) {
            runner.detach();
            if (runners.get(k) === runner) runners.delete(k);
            void journals.get(jobId)?.checkpoint({
              outcome: 'canceled',
              pivoted: false,
              destinationConsistent: false,
              error: aborted(request.disk),
            });
            resolve(err(aborted(request.disk)));
            return;
          }
          const cancel = runner.stateChanges$.subscribe((state) => {
            if (state.startsWith('mirroring') || state.startsWith('ready')) {
              queueMicrotask(() => {
                cancel.unsubscribe();
                runner.request({ type: 'ABORT', force: true });
              });
            }
          });
          resolve(err(aborted(request.disk)));
        },
        { once: true },
      );
    });
    // The job's first record is durable before anything happens for it.
    const inserted = journal ? journal.checkpoint() : Promise.resolve(null);
    return wrapPromise(
      inserted.then((failed) => {
        if (failed) {
          unregister(runner);
          return err(storeFailure(failed));
        }
        if (!runNow) return ok(handleOf(runner));
        if (!closed) {
          runner.start();
          superviseConvergence(runner);
        }
        return started;
      }),
    );
  }

  function abort(
    domain: string,
    disk: string,
    flags: number,
    abortOptions: AbortOptions = {},
  ): ResultAsync<void, BlockCopyError> {
    const parsed = validateAbort(flags);
    if (parsed.isErr()) return errAsync(parsed.error);
    const { async, pivot } = parsed.value;
    const pull = pulls.held(domain, disk);
    if (pull) return pulls.abort(pull, async, pivot);
    return withRunner(domain, disk, (runner) => abortJob(runner, async, pivot, abortOptions));
  }

  function abortJob(
    runner: JobRunner,
    async: boolean,
    pivot: boolean,
    abortOptions: AbortOptions,
  ): ResultAsync<void, BlockCopyError> {
    const disk = runner.disk;
    if (runner.queued) {
      // Nothing was done for a queued job: cancelling it creates and removes nothing.
      if (pivot) return errAsync(errors.notReadyForPivot(disk));
      queuedRunners.delete(runner);
      slots?.release(runner.jobId);
      runner.cancelQueued();
      return wrapPromise(runner.result.then(() => ok(undefined)));
    }
    // A paused job's pivot waits for a resume (QEMU acts on complete only once it runs): refuse
    // it, even before the chart has seen the pause (issue 11). The engine's own record of the
    // pause decides, not the chart's standby, which a lost resume event could leave behind.
    if (pivot && runner.isPaused() && runner.snapshot.matches('ready')) return errAsync(errors.jobPaused(disk));
    const requestType = pivot ? 'PIVOT' : 'ABORT';
    // The same end the engine already requested for a recovered job: wait for it, not refuse.
    const intent = endedOnIntent.get(runner);
    if (intent !== undefined && (intent === 'pivot') === pivot && runner.snapshot.context.endRequest !== null) {
      return wrapPromise(
        runner.result.then((result) =>
          pivot && !result.pivoted ? err(result.error ?? errors.failedWhilePivoting(disk)) : ok(undefined),
        ),
      );
    }
    const later = runner.nextRefusal(requestType);
    const refused = runner.request(pivot ? { type: 'PIVOT' } : { type: 'ABORT', force: abortOptions.force ?? false });
    if (refused) {
      later.cancel();
      return errAsync(refused);
    }
    const accepted = new Promise<Result<void, BlockCopyError>>((resolve) => {
      void later.promise.then((error) => resolve(err(error)));
      if (async) {
        // libvirt returns from an ASYNC abort once QEMU accepted the command.
        const sub = runner.actor.subscribe((snapshot) => {
          if (snapshot.context.endAccepted || snapshot.status === 'done') {
            resolve(ok(undefined));
            queueMicrotask(() => sub.unsubscribe());
          }
        });
      }
      void runner.result.then((result) => {
        // A synchronous pivot that did not pivot is an error; a plain abort returns 0 whatever
        // the outcome (libvirt qemuDomainBlockJobAbort).
        if (pivot && !result.pivoted) {
          resolve(err(result.error ?? errors.failedWhilePivoting(disk)));
        } else resolve(ok(undefined));
      });
    });
    return wrapPromise(accepted.finally(() => later.cancel()));
  }

  function rebaseRequest(
    ...[domain, disk, base, bandwidth, flags, options]: RebaseCall
  ): Result<CopyRequest, BlockCopyError> {
    const [copyOptions] = splitControls(options);
    return validateRebase({ domain, disk, base, bandwidth, flags, ...(copyOptions ? { options: copyOptions } : {}) });
  }

  /** The read-only half of a job: the facts and the planner, without starting anything. */
  function plan(request: CopyRequest): ResultAsync<CopyPlan, BlockCopyError> {
    return gatherFacts(hypervisor, request, (disk) => runners.has(key(request.domain, disk)))
      .mapErr((e) => fromHypervisorError(e))
      .andThen((facts) => planCopy(request, facts));
  }

  function jobInfo(
    runner: JobRunner,
    flags: number,
    notStarted: BlockJobInfo | null,
  ): ResultAsync<BlockJobInfo | null, BlockCopyError> {
    if (!runner.snapshot.context.started) return okAsync(notStarted);
    return hypervisor
      .queryJob(runner.jobId)
      .mapErr((e) => fromHypervisorError(e, runner.jobId))
      .andThen((info) => translateJobInfo(info, flags));
  }

  const engine: BlockCopyEngine = {
    planRebase: (...args) => rebaseRequest(...args).asyncAndThen(plan),
    planBlockCopy: (domain, disk, destination, params, flags, copyOptions) => {
      const [copy] = splitControls(copyOptions);
      return validateCopy(
        {
          domain,
          disk,
          destination,
          params,
          flags,
          ...(copy ? { options: copy } : {}),
        },
        { hypervisorLimits: hypervisor.checksCopyLimits === true },
      ).asyncAndThen(plan);
    },
    blockRebase: <J extends BlockCopyJob | BlockPullJob = BlockCopyJob>(...args: RebaseCall) =>
      (isPullRebase(args[4])
        ? engine.blockPullRebase(args[0], args[1], args[2], args[3], args[4])
        : rebaseRequest(...args).asyncAndThen((request) => startJob(request, args[5]))) as ResultAsync<
        J,
        BlockCopyError
      >,
    blockPullRebase: (domain, disk, base, bandwidth, flags) =>
      validateRebasePull({ domain, disk, base, bandwidth, flags }).asyncAndThen((request) =>
        closed
          ? errAsync(blockCopyError('VIR_ERR_OPERATION_INVALID', 'the engine is closed'))
          : pulls.start(request, (d) => heldBy(domain, d) !== undefined),
      ),
    blockPull: (domain, disk, bandwidth, flags) =>
      validateBlockPull({ domain, disk, bandwidth, flags }).asyncAndThen((request) =>
        closed
          ? errAsync(blockCopyError('VIR_ERR_OPERATION_INVALID', 'the engine is closed'))
          : pulls.start(request, (d) => heldBy(domain, d) !== undefined),
      ),
    pullJobs: (filter = {}) => pulls.jobs(filter.includeEnded ?? false),
    pullJob: (domain, disk) => {
      const runner = pulls.held(domain, disk);
      return runner ? pulls.jobById(runner.jobId) : undefined;
    },
    blockCopy(domain, disk, destination, params, flags, copyOptions) {
      const [copy, controls] = splitControls(copyOptions);
      return validateCopy(
        {
          domain,
          disk,
          destination,
          params,
          flags,
          ...(copy ? { options: copy } : {}),
        },
        { hypervisorLimits: hypervisor.checksCopyLimits === true },
      ).asyncAndThen((request) => startJob(request, controls));
    },
    blockJobAbort: abort,
    listDisks(domain) {
      return hypervisor
        .listDisks(domain)
        .mapErr((e) => fromHypervisorError(e))
        .andThen((disks) => (disks === null ? errAsync(errors.noDomain(domain)) : okAsync(disks)));
    },
    getBlockJobInfo(domain, disk, flags) {
      const checked = translateJobInfo(null, flags);
      if (checked.isErr()) return errAsync(checked.error);
      const pull = pulls.held(domain, disk);
      if (pull) return pulls.info(pull, flags);
      const runner = heldBy(domain, disk);
      // No job of ours: libvirt answers 0 for a disk without a job, an error for no such disk.
      if (!runner)
        return find(domain, disk).andThen((f) => (f.runner ? jobInfo(f.runner, flags, checked.value) : okAsync(null)));
      return jobInfo(runner, flags, checked.value);
    },
    blockJobSetSpeed(domain, disk, bandwidth, flags) {
      const speed = validateSetSpeed(bandwidth, flags);
      if (speed.isErr()) return errAsync(speed.error);
      const pull = pulls.held(domain, disk);
      if (pull) return pulls.setSpeed(pull, speed.value);
      return withRunner(domain, disk, (runner) =>
        runner.queued
          ? errAsync(queuedRefusal(runner))
          : hypervisor.setJobSpeed(runner.jobId, speed.value).mapErr((e) => fromHypervisorError(e, runner.jobId)),
      );
    },
    blockJobPause(domain, disk) {
      return withRunner(domain, disk, (runner) => {
        if (runner.queued) return errAsync(queuedRefusal(runner));
        // Pausing a job being ended would hold its pivot or cancel until a resume.
        if (runner.isEnding()) return errAsync(errors.stillBeingEnded(runner.disk));
        // A second pause refused as "already paused" must not forget the first (issue 11 races).
        const alreadyPaused = runner.isPaused();
        runner.setUserPause(true);
        return hypervisor.pauseJob(runner.jobId).mapErr((e) => {
          if (!alreadyPaused) runner.setUserPause(false);
          return fromHypervisorError(e, runner.jobId);
        });
      });
    },
    blockJobResume(domain, disk) {
      return withRunner(domain, disk, (runner) =>
        runner.queued
          ? errAsync(queuedRefusal(runner))
          : hypervisor
              .resumeJob(runner.jobId)
              .map(() => runner.setUserPause(false))
              .mapErr((e) => fromHypervisorError(e, runner.jobId)),
      );
    },
    checkDomainOperation(domain, operation, disk) {
      const active = [...runners.values()].filter((r) => r.domain === domain);
      // A block pull: libvirt refuses save/snapshot for any block job, detach for the disk's job.
      if (operation === 'save' || operation === 'snapshot-create' || operation === 'detach') {
        const pull = operation === 'detach' ? (disk === undefined ? undefined : pulls.held(domain, disk)) : undefined;
        if (pull) return errAsync(pullBusy(pull.disk));
        if (operation !== 'detach' && active.length === 0 && pulls.active(domain))
          return errAsync(blockCopyError('VIR_ERR_OPERATION_INVALID', 'domain has active block job'));
      }
      switch (operation) {
        case 'save':
        case 'snapshot-create':
          return active.length > 0
            ? errAsync(errors.domainOperationRefused('domain has active block copy job'))
            : okAsync(undefined);
        case 'detach':
          if (disk === undefined) return errAsync(errors.diskNull('virDomainDetachDeviceFlags'));
          {
            // Any spelling of the disk finds its job.
            const held = heldBy(domain, disk);
            return held
              ? errAsync(errors.domainOperationRefused(`disk '${held.disk}' is in an active block copy job`))
              : okAsync(undefined);
          }
        case 'define':
          if (active.length === 0) return okAsync(undefined);
          // Only the definition of a transient domain with a copy running is refused (seed).
          return hypervisor
            .getDomain(domain)
            .mapErr((e) => fromHypervisorError(e))
            .andThen((info) =>
              info && !info.persistent
                ? err(errors.domainOperationRefused('domain has active block copy job'))
                : ok(undefined),
            );
        default:
          return errAsync(blockCopyError('VIR_ERR_INVALID_ARG', `unknown domain operation '${String(operation)}'`));
      }
    },
    job(domain, disk) {
      const runner = heldBy(domain, disk);
      return runner && (runner.snapshot.context.started || runner.queued) ? handleOf(runner) : undefined;
    },
    jobs(filter = {}) {
      const active = [...runners.values()].filter((r) => r.snapshot.context.started || r.queued).map(handleOf);
      return filter.includeEnded ? [...ended, ...active] : active;
    },
    jobById(jobId) {
      const runner = byId.get(jobId);
      return runner ? handleOf(runner) : undefined;
    },
    recover() {
      if (!store) return okAsync({ resumed: [], finished: [], skipped: [] });
      if (closed) return errAsync(blockCopyError('VIR_ERR_OPERATION_INVALID', 'the engine is closed'));
      /** Queued jobs found in the store: they take their places in order once every running job counts. */
      const stillQueued: { runner: JobRunner; record: JobRecord; filesystem: string }[] = [];
      return recoverJobs({
        store,
        hypervisor,
        owner,
        now,
        running: (jobId) =>
          pulls.running(jobId) ||
          (byId.has(jobId) && runners.get(key(byId.get(jobId)!.domain, byId.get(jobId)!.disk)) !== undefined),
        diskTaken: (domain, disk) => heldBy(domain, disk) !== undefined || pulls.held(domain, disk) !== undefined,
        resumePull: (record) => pulls.resume(record),
        resume: async (record, known) => {
          if (record.state === 'queued') {
            const runner = newRunner(record.jobId, record.request!);
            runner.convergence = record.side.convergence ?? null;
            recovered.add(runner);
            runner.markQueued();
            register(runner, record, record.endIntent);
            queuedRunners.add(runner);
            const filesystem = slots ? await slots.filesystemOf(record.request!.destination) : '';
            stillQueued.push({ runner, record, filesystem });
            return handleOf(runner);
          }
          const runner = newRunner(record.jobId, record.request!, { snapshot: record.snapshot, side: record.side });
          recovered.add(runner);
          if (slots)
            slots.occupy({
              jobId: record.jobId,
              filesystem: await slots.filesystemOf(record.plan?.destination.path ?? record.request!.destination),
              order: record.createdAt,
              start: () => undefined,
            });
          register(runner, record, record.endIntent, null, true);
          runner.start();
          superviseConvergence(runner);
          await runner.refresh(known);
          return handleOf(runner);
        },
      })
        .map((report) => {
          stillQueued.sort((a, b) => a.record.createdAt - b.record.createdAt);
          for (const { runner, record, filesystem } of stillQueued) {
            const runNow = slots
              ? slots.admit({
                  jobId: record.jobId,
                  filesystem,
                  order: record.createdAt,
                  start: () => beginQueued(runner),
                })
              : true;
            if (runNow) beginQueued(runner);
          }
          return report;
        })
        .mapErr(storeFailure);
    },
    adopt(domain, disk) {
      const mine = heldBy(domain, disk);
      if (mine) return okAsync(handleOf(mine));
      if (closed) return errAsync(blockCopyError('VIR_ERR_OPERATION_INVALID', 'the engine is closed'));
      return hypervisor
        .listDisks(domain)
        .mapErr((e) => fromHypervisorError(e))
        .andThen((disks) => {
          if (disks === null) return err(errors.noDomain(domain));
          return resolveDisk(disks, disk).map((names) => ({ names, speed: 0 }));
        })
        .andThen(({ names, speed }) =>
          (names.job
            ? hypervisor.queryJob(names.job.jobId).mapErr((e) => fromHypervisorError(e))
            : okAsync(null)
          ).andThen((info) => adoptionOf(names, info?.speed ?? speed)),
        )
        .andThen((adoption) => {
          const now2 = runners.get(key(domain, adoption.request.disk));
          if (now2) return okAsync(handleOf(now2));
          const side = {
            states: [adoption.state],
            readyAnnounced: adoption.state.startsWith('ready'),
            pause: { userPauseRequested: false, stoppedOnError: false },
            progress: null,
          };
          const runner = newRunner(adoption.jobId, adoption.request, { snapshot: adoption.snapshot, side });
          recovered.add(runner);
          const record: JobRecord | null = store
            ? {
                ...newRecord(adoption.jobId, adoption.request, null),
                origin: 'adopted',
                state: adoption.state,
                snapshot: adoption.snapshot,
                side,
              }
            : null;
          const journal = register(runner, record, null);
          const inserted = journal ? journal.checkpoint() : Promise.resolve(null);
          return wrapPromise(
            inserted.then((failed) => {
              if (failed) {
                unregister(runner);
                return err(storeFailure(failed));
              }
              runner.start();
              return ok(handleOf(runner));
            }),
          );
        });
    },
    store,
    events$: events$.asObservable(),
    jobStates$: jobStates$.asObservable(),
    close() {
      if (closed) return;
      closed = true;
      for (const journal of journals.values()) journal.close();
      watchLeases();
      for (const runner of [...runners.values()]) runner.detach();
      pulls.close();
      runners.clear();
      diskNames.clear();
      jobEvents.clear();
      hypervisorSubscription?.unsubscribe();
      hypervisorSubscription = null;
      events$.complete();
      jobStates$.complete();
    },
    async shutdown() {
      await Promise.all([...journals.values()].map((j) => j.settled()));
      await pulls.settled();
      engine.close();
    },
  };
  return engine;
}

/** The record fields a job's journal reads at each checkpoint. */
function fieldsOf(runner: JobRunner, endIntent: EndIntent) {
  const snapshot = runner.snapshot;
  return {
    snapshot: runner.persistedSnapshot(),
    state: runner.actorStarted ? stateName(snapshot.value) : runner.recordState(),
    side: runner.side(),
    plan: snapshot.context.plan,
    endIntent,
  };
}

function endOf(result: JobResult): JobEnd {
  return {
    outcome: result.outcome === 'detached' ? 'failed' : result.outcome,
    pivoted: result.pivoted,
    destinationConsistent: result.destinationConsistent,
    error: result.error,
  };
}

/** A store that cannot be written is an internal error: the engine does nothing unrecorded. */
export function storeFailure(e: StoreError): BlockCopyError {
  return blockCopyError('VIR_ERR_INTERNAL_ERROR', `job store ${e.location}: ${e.message}`);
}

/** libvirt's qemuDomainDiskBlockJobIsActive for a disk whose job is not a mirror. */
function pullBusy(disk: string): BlockCopyError {
  return blockCopyError('VIR_ERR_OPERATION_UNSUPPORTED', `disk '${disk}' already in active block job`);
}

function aborted(disk: string, why = 'cancelled before mirroring started'): BlockCopyError {
  return blockCopyError('VIR_ERR_OPERATION_ABORTED', `block copy of disk '${disk}' ${why}`);
}

function splitControls(
  options: (CopyOptions & JobControls) | undefined,
): [CopyOptions | undefined, JobControls | undefined] {
  if (!options) return [undefined, undefined];
  const { signal, endIntent, convergence, ...copy } = options;
  return [
    Object.keys(copy).length > 0 ? copy : undefined,
    {
      ...(signal ? { signal } : {}),
      ...(endIntent !== undefined ? { endIntent } : {}),
      ...(convergence !== undefined ? { convergence } : {}),
    },
  ];
}
