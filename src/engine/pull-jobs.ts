/**
 * The engine's block-pull jobs: start (virDomainBlockRebase without COPY, virDomainBlockPull),
 * abort (synchronous by default, ASYNC returns once QEMU accepted; PIVOT refused), info, speed,
 * the job record in the store and its recovery. Kept beside engine.ts, which routes a disk's
 * request here when a pull holds it; one job per disk across copy and pull is enforced by both
 * sides asking each other before reserving the disk.
 */
import type { Result } from 'neverthrow';
import { ResultAsync, err, errAsync, ok, okAsync } from 'neverthrow';
import type { Observable, Subject } from 'rxjs';
import type { InspectionEvent } from 'xstate';
import type { Clock } from '../core/clock.js';
import type { BlockCopyError } from '../core/errors.js';
import { blockCopyError, errors } from '../core/errors.js';
import type { DiskNames, HypervisorEvent, HypervisorPort } from '../core/hypervisor-port.js';
import { fromHypervisorError } from '../core/hypervisor-error.js';
import type { EndIntent, JobEnd, JobRecord, JobStore, LeaseOwner } from '../core/job-store.js';
import { JOB_RECORD_FORMAT } from '../core/job-store.js';
import type { PullPlan, PullRequest } from '../core/pull.js';
import { resolveDisk } from '../core/disk-identity.js';
import type { BlockJobInfo } from '../core/validate.js';
import { translateJobInfo } from '../core/validate.js';
import { PULL_CHART_VERSION } from '../../machines/chart-version.js';
import { JobJournal } from './journal.js';
import type { JobProgress, JobResult } from './job-runner.js';
import { stateName } from './job-runner.js';
import { PullRunner, providePullMachine } from './pull-runner.js';
import type { BlockJobEvent } from './engine.js';

/** A running block pull (VIR_DOMAIN_BLOCK_JOB_TYPE_PULL). */
export interface BlockPullJob {
  readonly type: 'PULL';
  readonly jobId: string;
  readonly domain: string;
  readonly disk: string;
  /** What the engine does for this request (null until planned). */
  readonly plan: PullPlan | null;
  state(): string;
  states(): readonly string[];
  progress(): JobProgress | null;
  readonly progress$: Observable<JobProgress>;
  readonly stateChanges$: Observable<string>;
  readonly origin: 'engine' | 'recovered';
  /** Resolves once the job has ended; never rejects (pivoted is always false). */
  readonly result: Promise<JobResult>;
}

/** What the registry needs from its engine. */
export interface PullDeps {
  readonly hypervisor: HypervisorPort;
  readonly clock: Clock;
  readonly pollTicks$: Observable<unknown>;
  readonly inspect?: ((event: InspectionEvent) => void) | undefined;
  readonly store: JobStore | null;
  readonly owner: LeaseOwner;
  readonly now: () => number;
  /** This job's hypervisor events, routed by id (registered until the job ends). */
  readonly route: (jobId: string) => Observable<HypervisorEvent>;
  readonly unroute: (jobId: string) => void;
  readonly makeJobId: (domain: string, disk: string) => Result<string, BlockCopyError>;
  /** The engine's copy job holds this disk (any spelling). */
  readonly copyHolds: (domain: string, disk: string) => boolean;
  readonly events$: Subject<BlockJobEvent>;
  readonly jobStates$: Subject<{ jobId: string; domain: string; disk: string; state: string }>;
  readonly closed: () => boolean;
}

const key = (domain: string, disk: string) => `${domain}\u0000${disk}`;

export class PullJobs {
  private readonly runners = new Map<string, PullRunner>();
  private readonly byId = new Map<string, PullRunner>();
  private readonly names = new Map<PullRunner, DiskNames>();
  private readonly handles = new Map<PullRunner, BlockPullJob>();
  private readonly journals = new Map<string, JobJournal>();
  private readonly recovered = new Set<PullRunner>();
  private readonly ended: BlockPullJob[] = [];
  private readonly machine;

  constructor(private readonly deps: PullDeps) {
    this.machine = providePullMachine(
      deps.hypervisor,
      (disk, jobId) => {
        const mine = this.runners.get(key(this.byId.get(jobId)?.domain ?? '', disk));
        if (mine && mine.jobId !== jobId) return 'other';
        const domain = this.byId.get(jobId)?.domain;
        return domain !== undefined && deps.copyHolds(domain, disk) ? 'mirror' : null;
      },
      async (jobId) => {
        const failed = await this.journals.get(jobId)?.checkpoint();
        if (failed) throw blockCopyError('VIR_ERR_INTERNAL_ERROR', `job store ${failed.location}: ${failed.message}`);
      },
    );
  }

  /** The pull job on the disk `typed` names (any spelling), if this engine runs one. */
  held(domain: string, typed: string): PullRunner | undefined {
    const direct = this.runners.get(key(domain, typed));
    if (direct) return direct;
    const mine = [...this.names].filter(([r]) => r.domain === domain && this.runners.get(key(domain, r.disk)) === r);
    const hit = resolveDisk(
      mine.map(([, n]) => n),
      typed,
    );
    return hit.isOk() ? mine.find(([, n]) => n === hit.value)?.[0] : undefined;
  }

  /** Starts a pull: resolves the disk's canonical name, reserves it, runs the chart to its start. */
  start(request: PullRequest, copyBusy: (disk: string) => boolean): ResultAsync<BlockPullJob, BlockCopyError> {
    const { hypervisor } = this.deps;
    if (this.deps.closed()) return errAsync(blockCopyError('VIR_ERR_OPERATION_INVALID', 'the engine is closed'));
    const resolved = (async (): Promise<Result<DiskNames | null, BlockCopyError>> => {
      const listed = await hypervisor.listDisks(request.domain);
      const found = listed.isOk() && listed.value !== null ? resolveDisk(listed.value, request.disk) : null;
      return ok(found?.isOk() ? found.value : null);
    })();
    return new ResultAsync(resolved).andThen((names) => {
      const req: PullRequest = names ? { ...request, disk: names.disk } : request;
      // One job per disk: a copy holds it (BLOCK_COPY_ACTIVE), or another pull (OPERATION_UNSUPPORTED).
      if (copyBusy(req.disk)) return errAsync(errors.diskInCopyJob(req.disk));
      const other = this.held(req.domain, req.disk);
      if (other)
        return errAsync(
          blockCopyError('VIR_ERR_OPERATION_UNSUPPORTED', `disk '${other.disk}' already in active block job`),
        );
      const id = this.deps.makeJobId(req.domain, req.disk);
      if (id.isErr()) return errAsync(id.error);
      const runner = this.newRunner(id.value, req);
      const journal = this.register(runner, this.deps.store ? this.newRecord(id.value, req) : null, names);
      const started = new Promise<Result<BlockPullJob, BlockCopyError>>((resolve) => {
        const sub = runner.actor.subscribe((snapshot) => {
          if (snapshot.context.started) {
            resolve(ok(this.handleOf(runner)));
            queueMicrotask(() => sub.unsubscribe());
          } else if (snapshot.status === 'done') {
            resolve(err(snapshot.context.error ?? blockCopyError('VIR_ERR_INTERNAL_ERROR', 'job failed to start')));
            queueMicrotask(() => sub.unsubscribe());
          }
        });
        void runner.result.then((result) => {
          if (result.outcome === 'detached')
            resolve(
              err(
                blockCopyError('VIR_ERR_OPERATION_ABORTED', `block pull of disk '${req.disk}': the engine was closed`),
              ),
            );
        });
      });
      const inserted = journal ? journal.checkpoint() : Promise.resolve(null);
      return new ResultAsync(
        inserted.then((failed) => {
          if (failed) {
            this.unregister(runner);
            return err(blockCopyError('VIR_ERR_INTERNAL_ERROR', `job store ${failed.location}: ${failed.message}`));
          }
          if (!this.deps.closed()) runner.start();
          return started;
        }),
      );
    });
  }

  /**
   * virDomainBlockJobAbort on a pull: PIVOT refused (not ready, never); otherwise block-job-cancel,
   * then wait for the job's end unless ASYNC (libvirt: synchronous by default for a pull).
   */
  abort(runner: PullRunner, async: boolean, pivot: boolean): ResultAsync<void, BlockCopyError> {
    const type = pivot ? 'PIVOT' : 'ABORT';
    const later = runner.nextRefusal(type);
    const refused = runner.request(pivot ? { type: 'PIVOT' } : { type: 'ABORT', force: false });
    if (refused || pivot) {
      later.cancel();
      return refused ? errAsync(refused) : errAsync(blockCopyError('VIR_ERR_INTERNAL_ERROR', 'pivot not refused'));
    }
    const done = new Promise<Result<void, BlockCopyError>>((resolve) => {
      void later.promise.then((error) => resolve(err(error)));
      if (async) {
        const sub = runner.actor.subscribe((snapshot) => {
          if (snapshot.context.endAccepted || snapshot.status === 'done') {
            resolve(ok(undefined));
            queueMicrotask(() => sub.unsubscribe());
          }
        });
      }
      // A plain abort returns 0 whatever the outcome (libvirt qemuDomainBlockJobAbort).
      void runner.result.then(() => resolve(ok(undefined)));
    });
    return new ResultAsync(done.finally(() => later.cancel()));
  }

  /** virDomainGetBlockJobInfo for a pull: type 1, QEMU's offset/len. */
  info(runner: PullRunner, flags: number): ResultAsync<BlockJobInfo | null, BlockCopyError> {
    const checked = translateJobInfo(null, flags);
    if (checked.isErr()) return errAsync(checked.error);
    if (!runner.snapshot.context.started) return okAsync({ ...checked.value, type: 1 as const });
    return this.deps.hypervisor
      .queryJob(runner.jobId)
      .mapErr((e) => fromHypervisorError(e, runner.jobId))
      .andThen((info) => translateJobInfo(info, flags))
      .map((info) => ({ ...info, type: 1 as const }));
  }

  setSpeed(runner: PullRunner, bytes: number): ResultAsync<void, BlockCopyError> {
    return this.deps.hypervisor.setJobSpeed(runner.jobId, bytes).mapErr((e) => fromHypervisorError(e, runner.jobId));
  }

  /** Active pulls; with includeEnded also those that ended in this process. */
  jobs(includeEnded = false): readonly BlockPullJob[] {
    const active = [...this.runners.values()].filter((r) => r.snapshot.context.started).map((r) => this.handleOf(r));
    return includeEnded ? [...this.ended, ...active] : active;
  }

  jobById(jobId: string): BlockPullJob | undefined {
    const runner = this.byId.get(jobId);
    return runner ? this.handleOf(runner) : undefined;
  }

  /** Domain has any pull running (save/snapshot guard). */
  active(domain: string): boolean {
    return [...this.runners.values()].some((r) => r.domain === domain);
  }

  running(jobId: string): boolean {
    const r = this.byId.get(jobId);
    return r !== undefined && this.runners.get(key(r.domain, r.disk)) === r;
  }

  /** Resumes a recorded pull from its snapshot (recovery): the chart meets the hypervisor's state. */
  async resume(record: JobRecord): Promise<BlockPullJob> {
    const request = record.pull!.request;
    const runner = this.newRunner(record.jobId, request, { snapshot: record.snapshot, side: record.side });
    this.recovered.add(runner);
    this.register(runner, record, null);
    runner.start();
    await runner.refresh();
    return this.handleOf(runner);
  }

  async settled(): Promise<void> {
    await Promise.all([...this.journals.values()].map((j) => j.settled()));
  }

  close(): void {
    for (const journal of this.journals.values()) journal.close();
    for (const runner of [...this.runners.values()]) runner.detach();
    this.runners.clear();
    this.names.clear();
  }

  // ---------------------------------------------------------------- internals

  private newRunner(jobId: string, request: PullRequest, restore?: { snapshot: unknown; side: JobRecord['side'] }) {
    return new PullRunner({
      jobId,
      request,
      hypervisor: this.deps.hypervisor,
      machine: this.machine,
      clock: this.deps.clock,
      pollTicks$: this.deps.pollTicks$,
      events$: this.deps.route(jobId),
      inspect: this.deps.inspect,
      restore,
      onChange: () => void this.journals.get(jobId)?.checkpoint(),
    });
  }

  private newRecord(jobId: string, request: PullRequest): JobRecord {
    const at = this.deps.now();
    const endIntent: EndIntent = null;
    return {
      format: JOB_RECORD_FORMAT,
      jobId,
      hypervisor: this.deps.hypervisor.name,
      domain: request.domain,
      disk: request.disk,
      origin: 'engine',
      request: null,
      plan: null,
      jobType: 'pull',
      pull: { request, plan: null },
      chartVersion: PULL_CHART_VERSION,
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
      owner: this.deps.owner.id,
      leaseUntil: null,
    };
  }

  private register(runner: PullRunner, record: JobRecord | null, names: DiskNames | null): JobJournal | null {
    const k = key(runner.domain, runner.disk);
    this.runners.set(k, runner);
    this.byId.set(runner.jobId, runner);
    if (names) this.names.set(runner, names);
    const store = this.deps.store;
    const journal =
      store && record
        ? new JobJournal(
            store,
            record,
            () => {
              const snapshot = runner.snapshot;
              return {
                snapshot: runner.actor.getPersistedSnapshot(),
                state: stateName(snapshot.value),
                side: runner.side(),
                plan: null,
                endIntent: null,
                // The pull's plan rides in `pull` (JobJournal spreads these fields over the record).
                pull: { request: snapshot.context.request, plan: snapshot.context.plan },
              };
            },
            this.deps.now,
          )
        : null;
    if (journal) this.journals.set(runner.jobId, journal);
    runner.stateChanges$.subscribe((state) =>
      this.deps.jobStates$.next({ jobId: runner.jobId, domain: runner.domain, disk: runner.disk, state }),
    );
    void runner.result.then(async (result) => {
      if (this.runners.get(k) === runner) this.runners.delete(k);
      this.names.delete(runner);
      this.deps.unroute(runner.jobId);
      if (result.outcome === 'detached') return;
      if (journal) {
        await journal.checkpoint(endOf(result));
        this.journals.delete(runner.jobId);
      }
      this.ended.push(this.handleOf(runner));
      if (this.ended.length > 100) {
        const dropped = this.ended.shift()!;
        const old = this.byId.get(dropped.jobId);
        if (old) this.handles.delete(old);
        this.byId.delete(dropped.jobId);
      }
      if (runner.snapshot.context.started && !this.deps.closed()) {
        this.deps.events$.next({
          domain: result.domain,
          disk: result.disk,
          jobId: result.jobId,
          type: 'PULL',
          status: result.outcome === 'completed' ? 'COMPLETED' : result.outcome === 'canceled' ? 'CANCELED' : 'FAILED',
          pivoted: false,
          destinationConsistent: false,
          error: result.error,
        });
      }
    });
    return journal;
  }

  private unregister(runner: PullRunner): void {
    const k = key(runner.domain, runner.disk);
    if (this.runners.get(k) === runner) this.runners.delete(k);
    this.byId.delete(runner.jobId);
    this.names.delete(runner);
    this.journals.delete(runner.jobId);
    this.deps.unroute(runner.jobId);
  }

  private handleOf(runner: PullRunner): BlockPullJob {
    let handle = this.handles.get(runner);
    if (!handle) {
      handle = {
        type: 'PULL',
        jobId: runner.jobId,
        domain: runner.domain,
        disk: runner.disk,
        get plan() {
          return runner.snapshot.context.plan;
        },
        state: () => runner.states[runner.states.length - 1] ?? 'validating',
        states: () => [...runner.states],
        progress: () => runner.progress,
        progress$: runner.progress$.asObservable(),
        stateChanges$: runner.stateChanges$.asObservable(),
        origin: this.recovered.has(runner) ? 'recovered' : 'engine',
        result: runner.result,
      };
      this.handles.set(runner, handle);
    }
    return handle;
  }
}

function endOf(result: JobResult): JobEnd {
  return {
    outcome: result.outcome === 'detached' ? 'failed' : result.outcome,
    pivoted: false,
    destinationConsistent: false,
    error: result.error,
  };
}
