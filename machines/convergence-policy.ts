/**
 * The convergence policy chart: what the engine does, step by step, for a copy whose guest
 * writes faster than it copies, until the user's deadline.
 *
 *   escalating: watching ─NOT_CONVERGING→ raisingBandwidth → watchingRaised ─NOT_CONVERGING→
 *     restarting → watchingWriteBlocking ─NOT_CONVERGING→ exhausted  (steps skipped when they cannot help)
 *   escalating ─DEADLINE (job not ready)→ givingUp → gaveUp;  escalating ─JOB.ENDED→ stopped
 *
 * The chart sees only verdicts (NOT_CONVERGING, from the detector in src/core/convergence.ts that
 * reads the progress samples beside it), the deadline and the job's end. Its IO is provided by
 * the engine (src/engine/convergence.ts): block-job-set-speed, and requests to the job chart
 * (CONVERGE.RESTART, CONVERGE.GIVE_UP), which owns every hypervisor step of a restart.
 */
import { assign, fromPromise, setup } from 'xstate';
import type { BlockCopyError } from '../src/core/errors.js';
import type { ResolvedConvergencePolicy } from '../src/core/convergence.js';
import { notConverging } from '../src/core/convergence.js';
import type { CopyMode } from '../src/core/hypervisor-port.js';

export interface ConvergencePolicyInput {
  /** The copy job the policy watches. */
  readonly jobId: string;
  readonly disk: string;
  readonly policy: ResolvedConvergencePolicy;
  /** The copy's bandwidth limit now, bytes/s (0 = unlimited). */
  readonly speed: number;
  readonly copyMode: CopyMode;
}

export interface ConvergencePolicyContext extends ConvergencePolicyInput {
  /** Remaining bytes at the last verdict, for the give-up message. */
  readonly remaining: number | null;
  /** What has been tried, in words, for the give-up message. */
  readonly tried: readonly string[];
}

export type ConvergencePolicyEvent =
  /** The detector's verdict: remaining bytes reached no new low for a whole window. */
  | { readonly type: 'NOT_CONVERGING'; readonly remaining: number }
  /** The user's deadline passed; `jobReady`: the copy is ready now (then it is not given up). */
  | { readonly type: 'DEADLINE'; readonly jobReady: boolean }
  /** The job is being ended (pivot, abort) or has ended: nothing more to do. */
  | { readonly type: 'JOB.ENDED' };

const notProvided = (name: string) => () => Promise.reject(new Error(`actor '${name}' was not provided`));

const mib = (bytes: number) => `${Math.round((bytes / 1048576) * 10) / 10} MiB/s`;

export const convergencePolicyMachine = setup({
  types: {
    context: {} as ConvergencePolicyContext,
    events: {} as ConvergencePolicyEvent,
    input: {} as ConvergencePolicyInput,
  },
  actors: {
    /** block-job-set-speed on the running job. */
    raiseBandwidth: fromPromise<undefined, { jobId: string; speed: number }>(notProvided('raiseBandwidth')),
    /** CONVERGE.RESTART to the job chart (write-blocking, at `speed`); resolves once it is accepted. */
    restartWriteBlocking: fromPromise<undefined, { jobId: string; speed: number }>(notProvided('restartWriteBlocking')),
    /** CONVERGE.GIVE_UP to the job chart. */
    giveUp: fromPromise<undefined, { jobId: string; error: BlockCopyError }>(notProvided('giveUp')),
  },
  guards: {
    canRaise: ({ context }) =>
      context.speed > 0 && (context.policy.raiseBandwidthTo === 0 || context.policy.raiseBandwidthTo > context.speed),
    canRestart: ({ context }) => context.policy.writeBlocking && context.copyMode !== 'write-blocking',
    jobNotReady: ({ event }) => event.type === 'DEADLINE' && !event.jobReady,
  },
  actions: {
    noteRemaining: assign({
      remaining: ({ context, event }) => (event.type === 'NOT_CONVERGING' ? event.remaining : context.remaining),
    }),
  },
}).createMachine({
  id: 'convergencePolicy',
  context: ({ input }) => ({ ...input, remaining: null, tried: [] }),
  initial: 'escalating',
  states: {
    escalating: {
      initial: 'watching',
      on: {
        DEADLINE: { guard: 'jobNotReady', target: 'givingUp' },
        'JOB.ENDED': { target: 'stopped' },
      },
      states: {
        watching: {
          on: {
            NOT_CONVERGING: [
              { guard: 'canRaise', target: 'raisingBandwidth', actions: 'noteRemaining' },
              { guard: 'canRestart', target: 'restarting', actions: 'noteRemaining' },
              { target: 'exhausted', actions: 'noteRemaining' },
            ],
          },
        },
        raisingBandwidth: {
          invoke: {
            src: 'raiseBandwidth',
            input: ({ context }) => ({ jobId: context.jobId, speed: context.policy.raiseBandwidthTo }),
            onDone: {
              target: 'watchingRaised',
              actions: assign({
                speed: ({ context }) => context.policy.raiseBandwidthTo,
                tried: ({ context }) => [
                  ...context.tried,
                  context.policy.raiseBandwidthTo === 0
                    ? 'bandwidth limit lifted'
                    : `bandwidth raised to ${mib(context.policy.raiseBandwidthTo)}`,
                ],
              }),
            },
            // QEMU refused the new speed: go on with the next step.
            onError: 'watchingRaised',
          },
        },
        watchingRaised: {
          on: {
            NOT_CONVERGING: [
              { guard: 'canRestart', target: 'restarting', actions: 'noteRemaining' },
              { target: 'exhausted', actions: 'noteRemaining' },
            ],
          },
        },
        restarting: {
          invoke: {
            src: 'restartWriteBlocking',
            input: ({ context }) => ({ jobId: context.jobId, speed: context.speed }),
            onDone: {
              target: 'watchingWriteBlocking',
              actions: assign({
                copyMode: 'write-blocking' as const,
                tried: ({ context }) => [...context.tried, 'restarted in write-blocking mode'],
              }),
            },
            onError: 'exhausted',
          },
        },
        watchingWriteBlocking: {
          on: { NOT_CONVERGING: { target: 'exhausted', actions: 'noteRemaining' } },
        },
        // Nothing left to try: the deadline decides.
        exhausted: {
          on: { NOT_CONVERGING: { actions: 'noteRemaining' } },
        },
      },
    },
    givingUp: {
      invoke: {
        src: 'giveUp',
        input: ({ context }) => ({
          jobId: context.jobId,
          error: notConverging(
            context.disk,
            context.policy.timeoutMs,
            context.tried.length > 0 ? context.tried.join(', then ') : 'no escalation step applied',
            context.remaining,
          ),
        }),
        onDone: 'gaveUp',
        onError: 'gaveUp',
      },
    },
    gaveUp: { type: 'final' },
    stopped: { type: 'final' },
  },
});

export type ConvergencePolicyMachine = typeof convergencePolicyMachine;
