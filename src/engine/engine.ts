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
import { resolveDisk } from '../core/disk-identity.js';
import type { Clock } from '../core/clock.js';
import { interval$, systemClock } from '../core/clock.js';
import type { BlockCopyError } from '../core/errors.js';
import { blockCopyError, errors } from '../core/errors.js';
import type { BlockJobStatusName } from '../core/flags.js';
import { fromHypervisorError } from '../core/hypervisor-error.js';
import type { JobProgress, JobResult } from './job-runner.js';
import { JobRunner, gatherFacts, provideJobMachine } from './job-runner.js';
import { checkEngineOptions, checkJobId, refusingEngine } from './options.js';
import type { CopyPlan, CopyRequest } from '../core/plan.js';
import type { BlockJobInfo, CopyOptions } from '../core/validate.js';
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
}

/** A block-job event, as libvirt's VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2 (keyed by disk target). */
export interface BlockJobEvent {
  readonly domain: string;
  readonly disk: string;
  readonly jobId: string;
  readonly type: 'COPY';
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
  readonly progress$: Observable<JobProgress>;
  readonly stateChanges$: Observable<string>;
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
  options?: CopyOptions,
];

export interface BlockCopyEngine {
  /** virDomainBlockRebase with VIR_DOMAIN_BLOCK_REBASE_COPY: resolves once the job has started. */
  blockRebase(...args: RebaseCall): ResultAsync<BlockCopyJob, BlockCopyError>;
  /** virDomainBlockCopy: destination {path, format}, params in bytes. */
  blockCopy(
    domain: string,
    disk: string | null,
    destination: { readonly path: string | null; readonly format?: 'qcow2' | 'raw' } | null,
    params: { readonly bandwidth?: number; readonly granularity?: number; readonly bufSize?: number },
    flags: number,
    options?: CopyOptions,
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
  jobs(): readonly BlockCopyJob[];
  readonly events$: Observable<BlockJobEvent>;
  readonly jobStates$: Observable<JobStateChange>;
  /** Stops every job actor (the hypervisor jobs go on; the port stays open). */
  close(): void;
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
  // One poll timer for the whole engine, running only while some job listens.
  const machine = provideJobMachine(hypervisor);
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
  const key = (domain: string, disk: string) => `${domain}\u0000${disk}`;
  /** Every name each job's disk answered to when the job started: any spelling finds the job. */
  const diskNames = new Map<JobRunner, DiskNames>();

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

  /**
   * Resolves the typed disk to its canonical identity, then reserves it synchronously: two
   * requests under two spellings of one disk cannot both start. A name that resolves to nothing
   * still goes through the job, whose planner refuses it with the names that would work.
   */
  function startJob(request: CopyRequest): ResultAsync<BlockCopyJob, BlockCopyError> {
    const early = heldBy(request.domain, request.disk);
    if (early) return errAsync(errors.diskInCopyJob(early.disk));
    const resolved: Promise<Result<DiskNames | null, BlockCopyError>> = (async () => {
      const listed = await hypervisor.listDisks(request.domain);
      const found = listed.isOk() && listed.value !== null ? resolveDisk(listed.value, request.disk) : null;
      return ok(found?.isOk() ? found.value : null);
    })();
    return new ResultAsync(resolved).andThen((names) =>
      launch(names ? { ...request, disk: names.disk } : request, names),
    );
  }

  function launch(request: CopyRequest, names: DiskNames | null): ResultAsync<BlockCopyJob, BlockCopyError> {
    const k = key(request.domain, request.disk);
    const held = heldBy(request.domain, request.disk);
    if (held) return errAsync(errors.diskInCopyJob(held.disk));
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
    const routed = new Subject<HypervisorEvent>();
    jobEvents.set(jobId, routed);
    routeEvents();
    const runner = new JobRunner({
      jobId,
      events$: routed,
      request,
      hypervisor,
      clock,
      pollTicks$,
      inspect: options.inspect,
      machine,
    });
    runners.set(k, runner);
    if (names) diskNames.set(runner, names);
    let readyAnnounced = false;
    runner.stateChanges$.subscribe((state) => {
      jobStates$.next({ jobId: runner.jobId, domain: runner.domain, disk: runner.disk, state });
      if (!readyAnnounced && state.startsWith('ready')) {
        readyAnnounced = true;
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
      }
    });
    void runner.result.then((result) => {
      if (runners.get(k) === runner) runners.delete(k);
      diskNames.delete(runner);
      jobEvents.delete(jobId);
      handles.delete(runner);
      // libvirt emits no event for a job that never started.
      if (runner.snapshot.context.started) {
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
    });
    runner.start();
    return wrapPromise(started);
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
    return withRunner(domain, disk, (runner) => abortJob(runner, async, pivot, abortOptions));
  }

  function abortJob(
    runner: JobRunner,
    async: boolean,
    pivot: boolean,
    abortOptions: AbortOptions,
  ): ResultAsync<void, BlockCopyError> {
    const disk = runner.disk;
    // A paused job's pivot waits for a resume (QEMU acts on complete only once it runs): refuse
    // it, even before the chart has seen the pause (issue 11). The engine's own record of the
    // pause decides, not the chart's standby, which a lost resume event could leave behind.
    if (pivot && runner.isPaused() && runner.snapshot.matches('ready')) return errAsync(errors.jobPaused(disk));
    const requestType = pivot ? 'PIVOT' : 'ABORT';
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
    ...[domain, disk, base, bandwidth, flags, copyOptions]: RebaseCall
  ): Result<CopyRequest, BlockCopyError> {
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
    planBlockCopy: (domain, disk, destination, params, flags, copyOptions) =>
      validateCopy({
        domain,
        disk,
        destination,
        params,
        flags,
        ...(copyOptions ? { options: copyOptions } : {}),
      }).asyncAndThen(plan),
    blockRebase: (...args) => rebaseRequest(...args).asyncAndThen(startJob),
    blockCopy(domain, disk, destination, params, flags, copyOptions) {
      return validateCopy({
        domain,
        disk,
        destination,
        params,
        flags,
        ...(copyOptions ? { options: copyOptions } : {}),
      }).asyncAndThen(startJob);
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
      const runner = heldBy(domain, disk);
      // No job of ours: libvirt answers 0 for a disk without a job, an error for no such disk.
      if (!runner)
        return find(domain, disk).andThen((f) => (f.runner ? jobInfo(f.runner, flags, checked.value) : okAsync(null)));
      return jobInfo(runner, flags, checked.value);
    },
    blockJobSetSpeed(domain, disk, bandwidth, flags) {
      const speed = validateSetSpeed(bandwidth, flags);
      if (speed.isErr()) return errAsync(speed.error);
      return withRunner(domain, disk, (runner) =>
        hypervisor.setJobSpeed(runner.jobId, speed.value).mapErr((e) => fromHypervisorError(e, runner.jobId)),
      );
    },
    blockJobPause(domain, disk) {
      return withRunner(domain, disk, (runner) => {
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
        hypervisor
          .resumeJob(runner.jobId)
          .map(() => runner.setUserPause(false))
          .mapErr((e) => fromHypervisorError(e, runner.jobId)),
      );
    },
    checkDomainOperation(domain, operation, disk) {
      const active = [...runners.values()].filter((r) => r.domain === domain);
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
      return runner && runner.snapshot.context.started ? handleOf(runner) : undefined;
    },
    jobs() {
      return [...runners.values()].filter((r) => r.snapshot.context.started).map(handleOf);
    },
    events$: events$.asObservable(),
    jobStates$: jobStates$.asObservable(),
    close() {
      for (const runner of runners.values()) runner.actor.stop();
      runners.clear();
      diskNames.clear();
      jobEvents.clear();
      hypervisorSubscription?.unsubscribe();
      hypervisorSubscription = null;
    },
  };
  return engine;
}
