/**
 * Runs one block-copy job: the job machine's actor, with its IO actors bound to a hypervisor
 * port, fed by the hypervisor's events merged with polled job info. Progress counters stay here,
 * beside the chart: they change on every poll and would only cost the chart events.
 */
import { ResultAsync, okAsync } from 'neverthrow';
import type { Observable } from 'rxjs';
import { EMPTY, ReplaySubject, Subject, Subscription, exhaustMap, filter, from, merge } from 'rxjs';
import type { Actor, InspectionEvent } from 'xstate';
import { createActor, fromPromise } from 'xstate';
import type {
  DiskNames,
  DomainInfo,
  HypervisorError,
  HypervisorEvent,
  HypervisorJobInfo,
  HypervisorPort,
} from '../core/hypervisor-port.js';
import type { BlockCopyJobContext, BlockCopyJobOutput, FinishInput } from '../../machines/block-copy-job.js';
import { blockCopyJobMachine } from '../../machines/block-copy-job.js';
import type { ConvergenceRequest, ObservationEvent, RefusedEmitted, UserEvent } from '../../machines/events.js';
import type { Clock } from '../core/clock.js';
import type { BlockCopyError } from '../core/errors.js';
import { fromHypervisorError } from '../core/hypervisor-error.js';
import { needsPoll, observeEvent, observeJobInfo } from '../core/observe.js';
import type { CopyFacts, CopyPlan, CopyRequest } from '../core/plan.js';
import type { JobSideState } from '../core/job-store.js';
import { resolveDisk } from '../core/disk-identity.js';

export interface JobProgress {
  /** Bytes copied (QEMU offset). */
  readonly cur: number;
  /** Bytes to copy, growing with guest writes (QEMU len). */
  readonly end: number;
  /** Current speed limit in bytes/s (0 = unlimited). */
  readonly speed: number;
  /** Clock time (ms) of the observation. */
  readonly at: number;
}

export interface JobResult extends Omit<BlockCopyJobOutput, 'outcome'> {
  /**
   * 'detached': the engine was closed before the job ended; the job goes on on the hypervisor and
   * in the job store, and recover() in any process picks it up.
   */
  readonly outcome: BlockCopyJobOutput['outcome'] | 'detached';
  readonly jobId: string;
  readonly domain: string;
  readonly disk: string;
  /** The chart's states in the order entered. */
  readonly states: readonly string[];
}

export type JobActor = Actor<typeof blockCopyJobMachine>;

/** Polled in these states: the hypervisor job exists and its end is not yet settled. */
const POLLED = ['mirroring', 'ready', 'restarting', 'pivoting', 'aborting'] as const;

/** States in which an accepted pivot or abort is being carried out. */
const ENDING = ['pivoting', 'confirmingPivot', 'aborting', 'finishing'] as const;

/** Dotted path of the active leaf state, e.g. "mirroring.errorPaused". */
export function stateName(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null) {
    const [key, child] = Object.entries(value)[0] ?? ['?', undefined];
    return child === undefined ? key : `${key}.${stateName(child)}`;
  }
  return String(value);
}

/** Inside an IO actor: a hypervisor error becomes the actor's rejection, as plain data. */
async function unwrap<T>(result: ResultAsync<T, HypervisorError>, jobId: string): Promise<T> {
  const outcome = await result;
  if (outcome.isOk()) return outcome.value;
  throw fromHypervisorError(outcome.error, jobId);
}

/** What the engine already asked the hypervisor for a job (its busy check): planned from, not asked again. */
export interface KnownFacts {
  readonly domain: DomainInfo | null;
  readonly disks: readonly DiskNames[] | null;
}

/** The domain and its disks, asked together (one batch of queries on QMP). */
export function domainFacts(hv: HypervisorPort, domain: string): ResultAsync<KnownFacts, HypervisorError> {
  return ResultAsync.combine([hv.getDomain(domain), hv.listDisks(domain)] as const).map(([info, disks]) => ({
    domain: info,
    disks: info ? disks : null,
  }));
}

/**
 * The read-only facts the planner needs: the domain, the disk (resolved from any of its names to
 * its canonical identity, with its chain), whether it is busy, the destination. `busy` says
 * whether the engine already holds the canonical disk; a block job on the disk started by anyone
 * else (other than `ownJobId`) makes it busy too. The dry run and the real run both plan from here.
 * `known`: the domain and disks the engine's busy check just read, used instead of asking again.
 */
export function gatherFacts(
  hv: HypervisorPort,
  request: CopyRequest,
  busy: (disk: string) => boolean,
  ownJobId?: string,
  known?: KnownFacts,
): ResultAsync<CopyFacts, HypervisorError> {
  const facts: ResultAsync<KnownFacts, HypervisorError> = known
    ? okAsync(known)
    : hv
        .getDomain(request.domain)
        .andThen((domain) =>
          (domain ? hv.listDisks(request.domain) : okAsync(null)).map((disks) => ({ domain, disks })),
        );
  return facts.andThen(({ domain, disks }) =>
    hv.probeDestination(request.destination).map((destination): CopyFacts => {
      const found = disks === null ? null : resolveDisk(disks, request.disk);
      if (found === null || found.isErr())
        return {
          domain,
          disk: null,
          diskBusy: false,
          destination,
          ...(found?.isErr() ? { diskNotFound: found.error } : {}),
        };
      const d = found.value;
      const foreignJob = d.job !== null && d.job.jobId !== ownJobId;
      const held = busy(d.disk);
      return {
        domain,
        disk: { domain: d.domain, disk: d.disk, chain: d.chain },
        diskBusy: held || foreignJob,
        // libvirt: BLOCK_COPY_ACTIVE for a mirror (copy, active commit), else OPERATION_UNSUPPORTED.
        ...(!held && foreignJob && d.job?.type === 'stream' ? { busyWithOther: true } : {}),
        destination,
      };
    }),
  );
}

/**
 * The job machine with its IO bound to a hypervisor port. Built once per engine: providing
 * actors rebuilds XState's state-node tree, which is far too costly to do per job.
 */
export function provideJobMachine(
  hv: HypervisorPort,
  beforeEffect: (jobId: string) => Promise<void> = noBarrier,
  /** Facts the engine read for this job just before it started (taken once; a restored job asks). */
  takeKnown: (jobId: string) => KnownFacts | undefined = () => undefined,
) {
  /** Write-ahead: the job's record is durable before the side effect runs (rejects if it is not). */
  const effect = async <T>(jobId: string, run: () => Promise<T>): Promise<T> => {
    await beforeEffect(jobId);
    return run();
  };
  return blockCopyJobMachine.provide({
    actors: {
      // The engine reserved the disk before the job started: no other job can hold it.
      inspectFacts: fromPromise<CopyFacts, { jobId: string; request: CopyRequest }>(({ input }) =>
        unwrap(
          gatherFacts(hv, input.request, () => false, input.jobId, takeKnown(input.jobId)),
          input.jobId,
        ),
      ),
      prepareDestination: fromPromise<{ created: boolean }, { jobId: string; plan: CopyPlan }>(async ({ input }) => {
        const { plan } = input;
        if (plan.destinationAction === 'reuse') return { created: false };
        if (plan.destinationAction === 'format') {
          // A block device: its header is written in place; it is never the engine's to remove.
          await effect(input.jobId, () =>
            unwrap(
              hv.createDestination({
                path: plan.destination.path,
                format: plan.destination.format,
                type: 'block',
                virtualSize: plan.virtualSize,
                backing: plan.backing,
              }),
              input.jobId,
            ),
          );
          return { created: false };
        }
        await effect(input.jobId, () =>
          unwrap(
            hv.createDestination({
              path: plan.destination.path,
              format: plan.destination.format,
              virtualSize: plan.virtualSize,
              backing: plan.backing,
              claim: input.jobId,
            }),
            input.jobId,
          ),
        );
        return { created: true };
      }),
      startMirror: fromPromise<undefined, { jobId: string; plan: CopyPlan }>(async ({ input }) => {
        const { plan } = input;
        await effect(input.jobId, () =>
          unwrap(
            hv.startMirror({
              jobId: input.jobId,
              domain: plan.domain,
              disk: plan.disk,
              destination: plan.destination,
              destinationBacking: plan.backing,
              ...(plan.backingFromDestination === true ? { openDestinationBacking: true } : {}),
              sync: plan.sync,
              speed: plan.speed,
              onTargetError: plan.onTargetError,
              onSourceError: plan.onSourceError,
              copyMode: plan.copyMode,
              ...(plan.granularity !== undefined ? { granularity: plan.granularity } : {}),
              ...(plan.bufSize !== undefined ? { bufSize: plan.bufSize } : {}),
            }),
            input.jobId,
          ),
        );
        return undefined;
      }),
      completeJob: fromPromise<undefined, { jobId: string }>(async ({ input }) => {
        await effect(input.jobId, () => unwrap(hv.completeJob(input.jobId), input.jobId));
        return undefined;
      }),
      cancelJob: fromPromise<undefined, { jobId: string; force: boolean }>(async ({ input }) => {
        await effect(input.jobId, () => unwrap(hv.cancelJob(input.jobId, input.force), input.jobId));
        return undefined;
      }),
      confirmPivot: fromPromise<boolean, { jobId: string; plan: CopyPlan }>(async ({ input }) => {
        const active = await unwrap(hv.activeImage(input.plan.domain, input.plan.disk), input.jobId);
        // An adopted job's destination is unknown: pivoted means the guest left its source.
        if (input.plan.destination.path === '') return active !== input.plan.source;
        return active === input.plan.destination.path;
      }),
      finishJob: fromPromise<undefined, FinishInput>(async ({ input }) => {
        await beforeEffect(input.jobId);
        if (input.started) await unwrap(hv.dismissJob(input.jobId), input.jobId);
        if (input.removeDestination !== null) await unwrap(hv.removeDestination(input.removeDestination), input.jobId);
        // The ownership claim of a created destination goes last: until then a restarted engine
        // can still prove the file is its own.
        if (input.releaseDestination && hv.releaseDestination)
          await unwrap(hv.releaseDestination(input.releaseDestination, input.jobId), input.jobId);
        return undefined;
      }),
    },
  });
}

const noBarrier = () => Promise.resolve();

/** What a restored job starts from: the chart's persisted snapshot and the state beside it. */
export interface RestoreInput {
  readonly snapshot: unknown;
  readonly side: JobSideState;
}

export type ProvidedJobMachine = ReturnType<typeof provideJobMachine>;

export interface JobRunnerOptions {
  readonly jobId: string;
  readonly request: CopyRequest;
  readonly hypervisor: HypervisorPort;
  /** From provideJobMachine, shared by every job of an engine. */
  readonly machine: ProvidedJobMachine;
  readonly clock: Clock;
  /** The engine's shared poll tick: one timer for every job, not one per job. */
  readonly pollTicks$: Observable<unknown>;
  /** This job's hypervisor events (and connection-wide ones), demultiplexed by the engine. */
  readonly events$: Observable<HypervisorEvent>;
  readonly inspect?: ((event: InspectionEvent) => void) | undefined;
  /** Restore: the chart's persisted snapshot and the engine state kept beside it. */
  readonly restore?: RestoreInput | undefined;
  /** Called after every change of state or context (the engine checkpoints the job's record). */
  readonly onChange?: (() => void) | undefined;
}

/** What the engine reads of a job's chart: the actor's snapshot, or a restored job's record before its actor exists. */
export type JobSnapshotView = Pick<ReturnType<JobActor['getSnapshot']>, 'status' | 'value' | 'context' | 'matches'>;

/** Restored in these states, a job needs no actor until something happens to it (no step runs in them). */
const IDLE_STATES = /^(mirroring|ready)(\.|$)/;

/** The event types some state of the chart's active configuration has a transition for, by state name. */
const handledEvents = new Map<string, ReadonlySet<string>>();

function eventsHandledIn(machine: ProvidedJobMachine, value: unknown, name: string): ReadonlySet<string> {
  let found = handledEvents.get(name);
  if (!found) {
    const types = new Set<string>();
    const nodes = machine.resolveState({ value: value as never, context: {} as never })._nodes;
    for (const node of nodes) for (const type of Object.keys(node.on)) types.add(type);
    found = types;
    handledEvents.set(name, found);
  }
  return found;
}

export class JobRunner {
  readonly jobId: string;
  readonly domain: string;
  readonly disk: string;
  readonly states: string[] = [];
  readonly result: Promise<JobResult>;
  /** State names; a late subscriber gets the current one first. */
  readonly stateChanges$ = new ReplaySubject<string>(1);
  /** Progress; a late subscriber gets the latest first. */
  readonly progress$ = new ReplaySubject<JobProgress>(1);
  progress: JobProgress | null = null;
  /** The public READY event went out (persisted: never twice, restarts included). */
  readyAnnounced = false;
  /** Waiting for a slot (src/engine/job-slots.ts): the chart has not started. */
  queued = false;
  /** The chart's actor was started (a queued job's is not, until its slot comes). */
  actorStarted = false;
  /** The convergence policy's state, kept in the job's record (src/engine/convergence.ts). */
  convergence: JobSideState['convergence'] = null;

  private readonly pause = { userPauseRequested: false, stoppedOnError: false };
  private settle: ((result: JobResult) => void) | null = null;
  private readonly polls$ = new Subject<void>();
  private readonly subscription = new Subscription();
  private readonly hypervisor: HypervisorPort;
  private made: JobActor | null = null;
  /**
   * A job restored at mirroring or ready: its record's snapshot, standing for the chart until
   * something reaches the chart that it has a transition for (an observation it does not
   * ignore, a user request). 10,000 recovered mirrors then cost no actor each; the chart decides
   * exactly as before, from the same snapshot, once it has something to decide.
   */
  private dormant: {
    readonly snapshot: { value: unknown; context: BlockCopyJobContext };
    readonly name: string;
    view: JobSnapshotView;
  } | null = null;

  constructor(private readonly options: JobRunnerOptions) {
    this.jobId = options.jobId;
    this.domain = options.request.domain;
    this.disk = options.request.disk;
    this.hypervisor = options.hypervisor;
    const restore = options.restore;
    if (restore) {
      this.states.push(...restore.side.states);
      this.readyAnnounced = restore.side.readyAnnounced;
      this.pause.userPauseRequested = restore.side.pause.userPauseRequested;
      this.pause.stoppedOnError = restore.side.pause.stoppedOnError;
      this.progress = restore.side.progress;
      this.convergence = restore.side.convergence ?? null;
      const last = this.states[this.states.length - 1];
      if (last !== undefined) this.stateChanges$.next(last);
      if (this.progress) this.progress$.next(this.progress);
    }
    this.result = new Promise<JobResult>((resolve) => {
      this.settle = resolve;
    });
    const persisted = restore?.snapshot as
      { status?: string; value?: unknown; context?: BlockCopyJobContext } | undefined;
    const restoredName = persisted?.value !== undefined ? stateName(persisted.value) : '';
    // An inspector sees every job's chart: it gets its actors at once.
    if (persisted?.status === 'active' && persisted.context && IDLE_STATES.test(restoredName) && !options.inspect) {
      const snapshot = { value: persisted.value, context: persisted.context };
      this.dormant = {
        snapshot,
        name: restoredName,
        view: {
          status: 'active',
          value: snapshot.value as JobSnapshotView['value'],
          context: snapshot.context,
          matches: (state) =>
            typeof state === 'string' && (restoredName === state || restoredName.startsWith(`${state}.`)),
        },
      };
    } else this.make();
  }

  /** The job's chart actor, made now from the restored snapshot if the job was dormant. */
  get actor(): JobActor {
    return this.made ?? this.make();
  }

  private make(): JobActor {
    const options = this.options;
    const restore = options.restore;
    const jobId = this.jobId;
    const actor = createActor(options.machine, {
      input: { jobId, request: options.request },
      ...(restore ? { snapshot: restore.snapshot as never } : {}),
      ...(options.inspect ? { inspect: options.inspect } : {}),
    });
    this.made = actor;
    this.dormant = null;
    let lastContext: unknown = null;
    let lastState = '';
    /** A restored job's first snapshot is its record, just loaded: nothing new to save. */
    let restoring = restore !== undefined;
    const resolve = (result: JobResult) => this.settle?.(result);
    {
      actor.subscribe({
        next: (snapshot) => {
          const name = stateName(snapshot.value);
          if (this.states[this.states.length - 1] !== name) {
            this.states.push(name);
            this.stateChanges$.next(name);
          }
          if (name !== lastState || snapshot.context !== lastContext) {
            lastState = name;
            lastContext = snapshot.context;
            if (restoring) restoring = false;
            // A final state is recorded with the job's end, the next write (nothing happens in
            // between): one write instead of two.
            else if (snapshot.status !== 'done') options.onChange?.();
          }
          if (snapshot.status === 'done') {
            this.stop();
            resolve({ ...snapshot.output, jobId, domain: this.domain, disk: this.disk, states: [...this.states] });
          }
        },
        error: (err) => {
          // The machine has no throwing actions; this is a defect, reported as a failed job.
          this.stop();
          resolve({
            outcome: 'failed',
            pivoted: false,
            destinationConsistent: false,
            error: fromHypervisorError({ kind: 'invalid', command: 'engine', desc: String(err) }),
            jobId,
            domain: this.domain,
            disk: this.disk,
            states: [...this.states],
          });
        },
      });
    }
    if (this.actorStarted) actor.start();
    return actor;
  }

  /** Waits for a slot: the state 'queued' is shown and recorded; nothing runs yet. */
  markQueued(): void {
    this.queued = true;
    if (this.states[this.states.length - 1] !== 'queued') {
      this.states.push('queued');
      this.stateChanges$.next('queued');
    }
    this.options.onChange?.();
  }

  /** Cancels a job that never left the queue: nothing was done for it, nothing is undone. */
  cancelQueued(): void {
    if (this.actorStarted || !this.settle) return;
    this.queued = false;
    this.states.push('canceled');
    this.stateChanges$.next('canceled');
    this.stop();
    this.settle({
      outcome: 'canceled',
      pivoted: false,
      destinationConsistent: false,
      error: null,
      jobId: this.jobId,
      domain: this.domain,
      disk: this.disk,
      states: [...this.states],
    });
    this.settle = null;
  }

  /** The state for the job's record: the chart's, or 'queued' while it waits. */
  recordState(): string {
    return this.actorStarted ? stateName(this.snapshot.value) : (this.states[this.states.length - 1] ?? 'queued');
  }

  start(): void {
    this.queued = false;
    this.actorStarted = true;
    this.subscription.add(
      this.options.events$.subscribe((event) => {
        this.noteEvent(event);
        for (const observation of observeEvent(event, this.pause)) this.observe(observation);
        if (needsPoll(event)) this.polls$.next();
      }),
    );
    this.subscription.add(
      merge(this.options.pollTicks$, this.polls$)
        .pipe(
          filter(() => this.polled()),
          exhaustMap(() => (this.polled() ? from(this.poll()) : EMPTY)),
        )
        .subscribe(),
    );
    this.made?.start(); // a dormant job's actor starts when it is made
  }

  /** A request of the convergence policy (the chart ignores it where it does not apply). */
  converge(event: ConvergenceRequest): void {
    if (this.snapshot.status === 'active') this.actor.send(event);
  }

  /** Sends a user request; resolves with the machine's refusal, if it refused. */
  request(event: UserEvent): BlockCopyError | null {
    let refused: BlockCopyError | null = null;
    const sub = this.actor.on('refused', (e: RefusedEmitted) => {
      refused = e.error;
    });
    this.actor.send(event);
    sub.unsubscribe();
    return refused;
  }

  /** The next refusal of `request` the machine emits (e.g. QEMU rejected the pivot later). */
  nextRefusal(request: UserEvent['type']): { promise: Promise<BlockCopyError>; cancel: () => void } {
    let cancel = () => {};
    const promise = new Promise<BlockCopyError>((resolve) => {
      const sub = this.actor.on('refused', (e: RefusedEmitted) => {
        if (e.request === request) {
          sub.unsubscribe();
          resolve(e.error);
        }
      });
      cancel = () => sub.unsubscribe();
    });
    return { promise, cancel };
  }

  /** The engine state kept beside the chart, for the job's record. */
  side(): JobSideState {
    return {
      states: [...this.states],
      readyAnnounced: this.readyAnnounced,
      pause: { ...this.pause },
      progress: this.progress,
      ...(this.convergence ? { convergence: this.convergence } : {}),
    };
  }

  /** Stops the actor without ending the job (engine closed): the result settles as 'detached'. */
  detach(): void {
    if (this.snapshot.status !== 'active') return;
    this.made?.stop();
    this.stop();
    this.settle?.({
      outcome: 'detached',
      pivoted: false,
      destinationConsistent: false,
      error: null,
      jobId: this.jobId,
      domain: this.domain,
      disk: this.disk,
      states: [...this.states],
    });
  }

  /** Paused by the user or stopped by an I/O error, as far as the engine knows right now. */
  isPaused(): boolean {
    return this.pause.userPauseRequested || this.pause.stoppedOnError;
  }

  /** A pivot or abort was accepted and the job is on its way out. */
  isEnding(): boolean {
    const snapshot = this.snapshot;
    return ENDING.some((s) => snapshot.matches(s));
  }

  setUserPause(paused: boolean): void {
    this.pause.userPauseRequested = paused;
  }

  get snapshot(): JobSnapshotView {
    return this.dormant?.view ?? this.actor.getSnapshot();
  }

  /** The chart's persisted snapshot, for the job's record (a dormant job's is the one it was restored from). */
  persistedSnapshot(): unknown {
    return this.dormant ? this.options.restore!.snapshot : this.actor.getPersistedSnapshot();
  }

  /**
   * One poll now (recovery: the chart meets the hypervisor's state before anyone acts on it).
   * `known`: the hypervisor's answer recovery just had (null: no such job), used as this poll's.
   */
  async refresh(known?: HypervisorJobInfo | null): Promise<void> {
    if (!this.polled()) return;
    if (known === undefined) return this.poll();
    this.apply(known);
  }

  private polled(): boolean {
    const snapshot = this.snapshot;
    return snapshot.status === 'active' && POLLED.some((s) => snapshot.matches(s));
  }

  private async poll(): Promise<void> {
    const result = await this.hypervisor.queryJob(this.jobId);
    // A failed query (connection down) tells nothing: the next tick tries again.
    if (result.isErr() || !this.polled()) return;
    this.apply(result.value);
  }

  /** What one query-block-jobs answer tells the chart. */
  private apply(info: HypervisorJobInfo | null): void {
    if (info) this.noteProgress(info);
    // A running job is not stopped on an error; a paused one with a bad io-status is (its
    // BLOCK_JOB_ERROR may have been lost).
    if (info && (info.status === 'running' || info.status === 'ready')) this.pause.stoppedOnError = false;
    if (info && (info.status === 'paused' || info.status === 'standby') && info.ioStatus !== 'ok')
      this.pause.stoppedOnError = true;
    const inReady = this.snapshot.matches('ready');
    for (const observation of observeJobInfo(info, this.pause, inReady)) this.observe(observation);
  }

  private noteEvent(event: HypervisorEvent): void {
    if (event.kind === 'job-error') this.pause.stoppedOnError = event.action === 'stop';
    if (event.kind === 'job-status' && event.status === 'running') this.pause.stoppedOnError = false;
    if (event.kind === 'job-ready' || event.kind === 'job-completed' || event.kind === 'job-cancelled') {
      this.setProgress({ cur: event.offset, end: event.len, speed: event.speed, at: this.options.clock.now() });
      // QEMU sends JOB_STATUS_CHANGE(ready) first, which made the chart ready and was recorded
      // with the progress of the last poll: record the copy's full extent once (list shows it).
      if (event.kind === 'job-ready' && this.actorStarted && this.snapshot.matches('ready')) this.options.onChange?.();
    }
  }

  private noteProgress(info: HypervisorJobInfo): void {
    this.setProgress({ cur: info.offset, end: info.len, speed: info.speed, at: this.options.clock.now() });
  }

  private setProgress(progress: JobProgress): void {
    this.progress = progress;
    this.progress$.next(progress);
  }

  private observe(event: ObservationEvent): void {
    const dormant = this.dormant;
    if (dormant) {
      // An event no state of the configuration has a transition for changes nothing in XState:
      // the job stays dormant. Anything else wakes the chart, which decides as always.
      const handled = eventsHandledIn(this.options.machine, dormant.snapshot.value, dormant.name);
      if (!handled.has(event.type) && !handled.has('*')) return;
    }
    if (this.snapshot.status === 'active') this.actor.send(event);
  }

  private stop(): void {
    this.subscription.unsubscribe();
    this.stateChanges$.complete();
    this.progress$.complete();
  }
}
