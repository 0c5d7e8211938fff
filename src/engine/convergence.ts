/**
 * Runs a copy's convergence policy beside its job: the detector reads every progress sample
 * (they stay here, beside the charts), and only its verdict, "not converging", reaches the
 * policy chart (machines/convergence-policy.ts), with the user's deadline and the job's end.
 * The policy's steps act through the hypervisor (block-job-set-speed) and through the job chart
 * (CONVERGE.RESTART, CONVERGE.GIVE_UP), which does every hypervisor step of a restart itself.
 */
import type { InspectionEvent } from 'xstate';
import { createActor, fromPromise } from 'xstate';
import { convergencePolicyMachine } from '../../machines/convergence-policy.js';
import type { Clock } from '../core/clock.js';
import type { ResolvedConvergencePolicy } from '../core/convergence.js';
import { ConvergenceDetector } from '../core/convergence.js';
import type { BlockCopyError } from '../core/errors.js';
import { fromHypervisorError } from '../core/hypervisor-error.js';
import type { HypervisorPort } from '../core/hypervisor-port.js';
import type { JobRunner } from './job-runner.js';
import { stateName } from './job-runner.js';

/**
 * The policy chart with its IO bound to a hypervisor and to the engine's jobs (by id). Built once
 * per engine: providing actors rebuilds XState's state-node tree, too costly to do per copy.
 */
export function provideConvergenceMachine(
  hypervisor: HypervisorPort,
  runnerOf: (jobId: string) => JobRunner | undefined,
) {
  const runner = (jobId: string): JobRunner => {
    const found = runnerOf(jobId);
    if (!found) throw new Error(`no job '${jobId}' in this engine`);
    return found;
  };
  return convergencePolicyMachine.provide({
    actors: {
      raiseBandwidth: fromPromise<undefined, { jobId: string; speed: number }>(async ({ input }) => {
        const set = await hypervisor.setJobSpeed(input.jobId, input.speed);
        if (set.isErr()) throw fromHypervisorError(set.error, input.jobId);
        return undefined;
      }),
      restartWriteBlocking: fromPromise<undefined, { jobId: string; speed: number }>(({ input }) => {
        const job = runner(input.jobId);
        job.converge({ type: 'CONVERGE.RESTART', copyMode: 'write-blocking', speed: input.speed });
        if (!job.snapshot.matches('restarting')) throw new Error('the job did not accept the restart');
        return Promise.resolve(undefined);
      }),
      giveUp: fromPromise<undefined, { jobId: string; error: BlockCopyError }>(({ input }) => {
        const job = runner(input.jobId);
        job.converge({ type: 'CONVERGE.GIVE_UP', error: input.error });
        if (!job.snapshot.context.convergenceError) throw new Error('the job did not accept the give-up');
        return Promise.resolve(undefined);
      }),
    },
  });
}

export type ProvidedConvergenceMachine = ReturnType<typeof provideConvergenceMachine>;

export interface ConvergenceWatchOptions {
  /** From provideConvergenceMachine, shared by every copy of an engine. */
  readonly machine: ProvidedConvergenceMachine;
  readonly runner: JobRunner;
  readonly policy: ResolvedConvergencePolicy;
  readonly clock: Clock;
  /** Time the copy has already run (a recovered job), ms. */
  readonly elapsedMs: number;
  /** The policy chart's persisted snapshot (a recovered job). */
  readonly snapshot?: unknown;
  readonly inspect?: ((event: InspectionEvent) => void) | undefined;
  /** The policy chart moved: its snapshot is due in the job's record. */
  readonly onChange?: (snapshot: unknown) => void;
}

/** Job states in which the copy is still converging towards ready (the detector samples here). */
const SAMPLED = new Set(['mirroring.running', 'ready.synced']);

/**
 * Job states after which there is nothing left for the policy to do. `pivoting` is entered as
 * block-job-complete is sent: from then on the policy has ended for good (stopped). It raises
 * nothing, restarts nothing and gives nothing up, even if QEMU refuses the pivot and the job is
 * ready again (the user asked for the pivot; the refusal is theirs to act on), or if the engine
 * restarts with a recorded policy mid-step (README: "Convergence while a pivot is under way").
 */
const ENDED = /^(pivoting|confirmingPivot|aborting|finishing|settled|completed|canceled|failed)/;

export interface ConvergenceWatch {
  /** The policy chart's current state, e.g. "watchingRaised". */
  state(): string;
  stop(): void;
}

export function watchConvergence(options: ConvergenceWatchOptions): ConvergenceWatch {
  const { runner, policy, clock, machine } = options;
  const detector = new ConvergenceDetector(policy.windowMs, policy.minShrinkBytes);
  const subscriptions: { unsubscribe(): void }[] = [];
  let deadlinePassed = false;
  let lastPolicyState = '';
  let jobState = '';
  type PolicyActor = ReturnType<typeof createActor<typeof machine>>;
  let actor: PolicyActor | null = null;
  /** The job reached a state in ENDED (a pivot was asked, or the job is ending): never again. */
  let ended = false;

  /**
   * The policy starts once the job has a plan (its speed and mode), or from its recorded
   * snapshot; never once the job has ended or a pivot was asked (a recorded step mid-way, such as
   * raisingBandwidth, would otherwise run again on start).
   */
  const ensureActor = (): PolicyActor | null => {
    if (actor) return actor;
    if (ended) return null;
    const plan = runner.snapshot.context.plan;
    if (!plan && !options.snapshot) return null;
    const made = createActor(machine, {
      input: {
        jobId: runner.jobId,
        disk: runner.disk,
        policy,
        speed: plan?.speed ?? 0,
        copyMode: plan?.copyMode ?? 'background',
      },
      ...(options.snapshot ? { snapshot: options.snapshot as never } : {}),
      ...(options.inspect ? { inspect: options.inspect } : {}),
    });
    actor = made;
    subscriptions.push(
      made.subscribe((snapshot) => {
        const name = stateName(snapshot.value);
        if (name !== lastPolicyState) {
          lastPolicyState = name;
          // A new regime (faster, or write-blocking): the old numbers say nothing about it.
          detector.reset();
          options.onChange?.(made.getPersistedSnapshot());
        }
        if (snapshot.status === 'done') queueMicrotask(stop);
      }),
    );
    made.start();
    return made;
  };
  const deadline = () => {
    if (ended) return;
    const ready = runner.snapshot.matches('ready');
    // Not even started mirroring by the deadline: the chart's own start path ends it (no plan yet).
    ensureActor()?.send({ type: 'DEADLINE', jobReady: ready });
  };

  subscriptions.push(
    runner.stateChanges$.subscribe((state) => {
      if (state === jobState) return;
      jobState = state;
      detector.reset();
      if (ENDED.test(state)) {
        ended = true;
        actor?.send({ type: 'JOB.ENDED' });
      } else if (ended) return;
      else if (state.startsWith('mirroring') || state.startsWith('ready')) {
        ensureActor();
        if (deadlinePassed && !state.startsWith('ready')) deadline();
      }
    }),
  );
  subscriptions.push(
    runner.progress$.subscribe((p) => {
      if (ended || !SAMPLED.has(jobState)) return;
      if (detector.sample(p.cur, p.end, p.at))
        ensureActor()?.send({ type: 'NOT_CONVERGING', remaining: p.end - p.cur });
    }),
  );
  const timer = clock.setTimeout(
    () => {
      deadlinePassed = true;
      deadline();
    },
    Math.max(0, policy.timeoutMs - options.elapsedMs),
  );
  if (options.snapshot) ensureActor();

  let stopped = false;
  function stop(): void {
    if (stopped) return;
    stopped = true;
    clock.clearTimeout(timer);
    for (const s of subscriptions) s.unsubscribe();
    actor?.stop();
  }
  void runner.result.then(stop);
  return { state: () => (actor ? stateName(actor.getSnapshot().value) : 'waiting for the plan'), stop };
}
