/**
 * Runs one block-pull job: the pull chart's actor with its IO bound to a hypervisor port, fed by
 * the job's hypervisor events merged with polled job info (the same observation mapping as a
 * copy, src/core/observe.ts). Progress stays here, beside the chart.
 */
import type { ResultAsync } from 'neverthrow';
import { okAsync } from 'neverthrow';
import type { Observable } from 'rxjs';
import { EMPTY, ReplaySubject, Subject, Subscription, exhaustMap, filter, from, merge } from 'rxjs';
import type { Actor, InspectionEvent } from 'xstate';
import { createActor, fromPromise } from 'xstate';
import type { HypervisorError, HypervisorEvent, HypervisorPort } from '../core/hypervisor-port.js';
import { blockPullJobMachine } from '../../machines/block-pull-job.js';
import type { ObservationEvent, RefusedEmitted, UserEvent } from '../../machines/events.js';
import type { Clock } from '../core/clock.js';
import type { BlockCopyError } from '../core/errors.js';
import { fromHypervisorError } from '../core/hypervisor-error.js';
import { needsPoll, observeEvent, observeJobInfo } from '../core/observe.js';
import type { PullFacts, PullPlan, PullRequest } from '../core/pull.js';
import { pullErrors } from '../core/pull.js';
import type { JobSideState } from '../core/job-store.js';
import { resolveDisk } from '../core/disk-identity.js';
import type { JobProgress, JobResult, RestoreInput } from './job-runner.js';
import { stateName } from './job-runner.js';

/** The images a pull drops from the chain: those between the top and its base, top first. */
export function pulledOut(plan: PullPlan | null | undefined): string[] {
  if (!plan) return [];
  const below = plan.chainBefore.slice(1);
  const base = plan.base === null ? -1 : below.indexOf(plan.base.path);
  return base < 0 ? below : below.slice(0, base);
}

/** Polled while the hypervisor job exists and its end is not settled. */
const POLLED = ['streaming', 'aborting'] as const;

async function unwrap<T>(result: ResultAsync<T, HypervisorError>, jobId: string): Promise<T> {
  const outcome = await result;
  if (outcome.isOk()) return outcome.value;
  throw fromHypervisorError(outcome.error, jobId);
}

/**
 * The facts a pull is planned on. `busy` says which kind of job of this engine holds the disk
 * (another job on the hypervisor, other than `ownJobId`, counts too).
 */
export function gatherPullFacts(
  hv: HypervisorPort,
  request: PullRequest,
  busy: (disk: string) => 'mirror' | 'other' | null,
  ownJobId?: string,
): ResultAsync<PullFacts, HypervisorError> {
  return hv.getDomain(request.domain).andThen((domain) =>
    (domain ? hv.listDisks(request.domain) : okAsync(null)).andThen((disks) => {
      const found = disks === null ? null : resolveDisk(disks, request.disk);
      if (found === null || found.isErr())
        return okAsync<PullFacts, HypervisorError>({
          domain,
          disk: null,
          busy: null,
          ...(found?.isErr() ? { diskNotFound: found.error } : {}),
        });
      const d = found.value;
      const foreign = d.job !== null && d.job.jobId !== ownJobId ? d.job : null;
      const held = busy(d.disk);
      const kind: PullFacts['busy'] =
        held ?? (foreign ? (foreign.type === 'mirror' || foreign.type === 'commit' ? 'mirror' : 'other') : null);
      const facts: PullFacts = { domain, disk: { disk: d.disk, chain: d.chain }, busy: kind };
      if (!request.keepRelative || !hv.backingNames) return okAsync<PullFacts, HypervisorError>(facts);
      return hv
        .backingNames(request.domain, d.disk)
        .map((written): PullFacts => ({ ...facts, writtenBacking: written }));
    }),
  );
}

/** The pull chart with its IO bound to a port (built once per engine). */
export function providePullMachine(
  hv: HypervisorPort,
  busy: (disk: string, jobId: string) => 'mirror' | 'other' | null,
  beforeEffect: (jobId: string) => Promise<void>,
) {
  return blockPullJobMachine.provide({
    actors: {
      inspectFacts: fromPromise<PullFacts, { jobId: string; request: PullRequest }>(({ input }) =>
        unwrap(
          gatherPullFacts(hv, input.request, (disk) => busy(disk, input.jobId), input.jobId),
          input.jobId,
        ),
      ),
      startStream: fromPromise<undefined, { jobId: string; plan: PullPlan }>(async ({ input }) => {
        if (!hv.startStream) throw pullErrors.noStream(hv.name);
        const stream = hv.startStream.bind(hv);
        const { plan } = input;
        await beforeEffect(input.jobId);
        await unwrap(
          stream({
            jobId: input.jobId,
            domain: plan.domain,
            disk: plan.disk,
            base: plan.base,
            backingFile: plan.backingFile,
            speed: plan.speed,
          }),
          input.jobId,
        );
        return undefined;
      }),
      cancelJob: fromPromise<undefined, { jobId: string; force: boolean }>(async ({ input }) => {
        await beforeEffect(input.jobId);
        await unwrap(hv.cancelJob(input.jobId, input.force), input.jobId);
        return undefined;
      }),
      finishJob: fromPromise<undefined, { jobId: string; started: boolean; plan?: PullPlan | null }>(
        async ({ input }) => {
          await beforeEffect(input.jobId);
          if (input.started)
            await unwrap(hv.dismissJob(input.jobId, { pulledOut: pulledOut(input.plan) }), input.jobId);
          return undefined;
        },
      ),
    },
  });
}

export type ProvidedPullMachine = ReturnType<typeof providePullMachine>;
export type PullActor = Actor<typeof blockPullJobMachine>;

export interface PullRunnerOptions {
  readonly jobId: string;
  readonly request: PullRequest;
  readonly hypervisor: HypervisorPort;
  readonly machine: ProvidedPullMachine;
  readonly clock: Clock;
  readonly pollTicks$: Observable<unknown>;
  readonly events$: Observable<HypervisorEvent>;
  readonly inspect?: ((event: InspectionEvent) => void) | undefined;
  readonly restore?: RestoreInput | undefined;
  readonly onChange?: (() => void) | undefined;
}

export class PullRunner {
  readonly jobId: string;
  readonly domain: string;
  readonly disk: string;
  readonly actor: PullActor;
  readonly states: string[] = [];
  readonly result: Promise<JobResult>;
  readonly stateChanges$ = new ReplaySubject<string>(1);
  readonly progress$ = new ReplaySubject<JobProgress>(1);
  progress: JobProgress | null = null;

  private readonly pause = { userPauseRequested: false, stoppedOnError: false };
  private settle: ((result: JobResult) => void) | null = null;
  private readonly polls$ = new Subject<void>();
  private readonly subscription = new Subscription();

  constructor(private readonly options: PullRunnerOptions) {
    this.jobId = options.jobId;
    this.domain = options.request.domain;
    this.disk = options.request.disk;
    const restore = options.restore;
    if (restore) {
      this.states.push(...restore.side.states);
      this.pause.userPauseRequested = restore.side.pause.userPauseRequested;
      this.pause.stoppedOnError = restore.side.pause.stoppedOnError;
      this.progress = restore.side.progress;
      const last = this.states[this.states.length - 1];
      if (last !== undefined) this.stateChanges$.next(last);
      if (this.progress) this.progress$.next(this.progress);
    }
    this.actor = createActor(options.machine, {
      input: { jobId: this.jobId, request: options.request },
      ...(restore ? { snapshot: restore.snapshot as never } : {}),
      ...(options.inspect ? { inspect: options.inspect } : {}),
    });
    let lastContext: unknown = null;
    let lastState = '';
    this.result = new Promise<JobResult>((resolve) => {
      this.settle = resolve;
      this.actor.subscribe({
        next: (snapshot) => {
          const name = stateName(snapshot.value);
          if (this.states[this.states.length - 1] !== name) {
            this.states.push(name);
            this.stateChanges$.next(name);
          }
          if (name !== lastState || snapshot.context !== lastContext) {
            lastState = name;
            lastContext = snapshot.context;
            options.onChange?.();
          }
          if (snapshot.status === 'done') {
            this.stop();
            resolve({ ...snapshot.output, ...this.ids(), states: [...this.states] });
          }
        },
        error: (e) => {
          this.stop();
          resolve({
            outcome: 'failed',
            pivoted: false,
            destinationConsistent: false,
            error: fromHypervisorError({ kind: 'invalid', command: 'engine', desc: String(e) }),
            ...this.ids(),
            states: [...this.states],
          });
        },
      });
    });
  }

  private ids() {
    return { jobId: this.jobId, domain: this.domain, disk: this.disk };
  }

  start(): void {
    this.subscription.add(
      this.options.events$.subscribe((event) => {
        if (event.kind === 'job-error') this.pause.stoppedOnError = event.action === 'stop';
        if (event.kind === 'job-status' && event.status === 'running') this.pause.stoppedOnError = false;
        if (event.kind === 'job-completed' || event.kind === 'job-cancelled')
          this.setProgress({ cur: event.offset, end: event.len, speed: event.speed, at: this.options.clock.now() });
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
    this.actor.start();
  }

  /** Sends a user request; returns the chart's refusal, if it refused at once. */
  request(event: UserEvent): BlockCopyError | null {
    let refused: BlockCopyError | null = null;
    const sub = this.actor.on('refused', (e: RefusedEmitted) => {
      refused = e.error;
    });
    this.actor.send(event);
    sub.unsubscribe();
    return refused;
  }

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

  side(): JobSideState {
    return { states: [...this.states], readyAnnounced: false, pause: { ...this.pause }, progress: this.progress };
  }

  setUserPause(paused: boolean): void {
    this.pause.userPauseRequested = paused;
  }

  detach(): void {
    if (this.actor.getSnapshot().status !== 'active') return;
    this.actor.stop();
    this.stop();
    this.settle?.({
      outcome: 'detached',
      pivoted: false,
      destinationConsistent: false,
      error: null,
      ...this.ids(),
      states: [...this.states],
    });
  }

  get snapshot() {
    return this.actor.getSnapshot();
  }

  refresh(): Promise<void> {
    return this.polled() ? this.poll() : Promise.resolve();
  }

  private polled(): boolean {
    const snapshot = this.actor.getSnapshot();
    return snapshot.status === 'active' && POLLED.some((s) => snapshot.matches(s));
  }

  private async poll(): Promise<void> {
    const result = await this.options.hypervisor.queryJob(this.jobId);
    if (result.isErr() || !this.polled()) return;
    const info = result.value;
    if (info) this.setProgress({ cur: info.offset, end: info.len, speed: info.speed, at: this.options.clock.now() });
    if (info && info.status === 'running') this.pause.stoppedOnError = false;
    if (info && info.status === 'paused' && info.ioStatus !== 'ok') this.pause.stoppedOnError = true;
    for (const observation of observeJobInfo(info, this.pause, false)) this.observe(observation);
  }

  private setProgress(progress: JobProgress): void {
    this.progress = progress;
    this.progress$.next(progress);
  }

  private observe(event: ObservationEvent): void {
    if (this.actor.getSnapshot().status === 'active') this.actor.send(event);
  }

  private stop(): void {
    this.subscription.unsubscribe();
    this.stateChanges$.complete();
    this.progress$.complete();
  }
}
