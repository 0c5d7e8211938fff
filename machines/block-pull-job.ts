/**
 * The block-pull job statechart: one libvirt block pull (VIR_DOMAIN_BLOCK_JOB_TYPE_PULL) from
 * request to final outcome. QEMU's block-stream copies the data of the images above `base` (or
 * of the whole chain) into the active image and then drops them from the chain by itself.
 *
 *   validating → starting → streaming ──(hypervisor: completed)──→ finishing → completed
 *                              │ ↘ aborting ──(cancelled)──────────↗          canceled | failed
 *
 * Unlike a copy there is no ready phase and nothing to pivot: the job ends on its own, PIVOT is
 * refused in every state (libvirt checks readiness first: BLOCK_COPY_ACTIVE "not ready for pivot
 * yet"), and an abort that loses the race against the job's own end reports the completion that
 * happened. Pure: IO actors are provided by the engine (src/engine/pull-runner.ts).
 */
import { assign, emit, fromPromise, setup } from 'xstate';
import type { BlockCopyError } from '../src/core/errors.js';
import { blockCopyError, errors } from '../src/core/errors.js';
import type { PullFacts, PullPlan, PullRequest } from '../src/core/pull.js';
import { planPull, pullErrors } from '../src/core/pull.js';
import { toBlockCopyError, type BlockCopyJobOutput, type JobOutcome } from './block-copy-job.js';
import type { BlockCopyJobEvent, RefusedEmitted, UserEvent } from './events.js';

export interface BlockPullJobInput {
  readonly jobId: string;
  readonly request: PullRequest;
}

export interface BlockPullJobContext {
  readonly jobId: string;
  readonly request: PullRequest;
  readonly plan: PullPlan | null;
  /** The hypervisor job exists: public events are due and it must be dismissed. */
  readonly started: boolean;
  /** An abort was accepted by the chart. */
  readonly endRequest: 'abort' | null;
  /** The hypervisor accepted the cancel (libvirt returns from an ASYNC abort here). */
  readonly endAccepted: boolean;
  readonly outcome: JobOutcome | null;
  readonly error: BlockCopyError | null;
  readonly lastIoError: string | null;
  readonly cleanupError: BlockCopyError | null;
}

/** The copy job's output shape, so both kinds of job settle into one JobResult. */
export type BlockPullJobOutput = BlockCopyJobOutput;

const notProvided = (name: string) => () => Promise.reject(new Error(`actor '${name}' was not provided`));

function refusal(request: UserEvent['type'], error: BlockCopyError): RefusedEmitted {
  return { type: 'refused', request, error };
}

export const blockPullJobMachine = setup({
  types: {
    context: {} as BlockPullJobContext,
    events: {} as BlockCopyJobEvent,
    input: {} as BlockPullJobInput,
    output: {} as BlockPullJobOutput,
    emitted: {} as RefusedEmitted,
  },
  actors: {
    /** Read-only look at the domain and the disk's chain. */
    inspectFacts: fromPromise<PullFacts, { jobId: string; request: PullRequest }>(notProvided('inspectFacts')),
    /** block-stream with an explicit job id; idempotent. */
    startStream: fromPromise<undefined, { jobId: string; plan: PullPlan }>(notProvided('startStream')),
    /** block-job-cancel. */
    cancelJob: fromPromise<undefined, { jobId: string; force: boolean }>(notProvided('cancelJob')),
    /** job-dismiss (and release of the pulled-out nodes). */
    finishJob: fromPromise<undefined, { jobId: string; started: boolean; plan?: PullPlan | null }>(
      notProvided('finishJob'),
    ),
  },
  guards: {
    planValid: ({ context, event }) =>
      planPull(context.request, (event as unknown as { output: PullFacts }).output).isOk(),
    concludedWithError: ({ event }) => event.type === 'HV.CONCLUDED' && event.error !== null && !event.cancelled,
    concludedCancelled: ({ event }) => event.type === 'HV.CONCLUDED' && event.cancelled,
    pausedByIoError: ({ event }) => event.type === 'HV.PAUSED' && event.reason === 'io-error',
    pausedByUser: ({ event }) => event.type === 'HV.PAUSED' && event.reason === 'user',
    outcomeCompleted: ({ context }) => context.outcome === 'completed',
    outcomeCanceled: ({ context }) => context.outcome === 'canceled',
  },
  actions: {
    refusePivot: emit(({ context }) => refusal('PIVOT', pullErrors.notReadyForPivot(context.jobId))),
    refuseNoJob: emit(({ context, event }) =>
      refusal(event.type === 'PIVOT' ? 'PIVOT' : 'ABORT', errors.noActiveJob(context.request.disk)),
    ),
    // libvirt checks "still being ended" before a pivot's readiness.
    refuseStillEnding: emit(({ context, event }) =>
      refusal(event.type === 'PIVOT' ? 'PIVOT' : 'ABORT', errors.stillBeingEnded(context.request.disk)),
    ),
    markStarted: assign({ started: true }),
    acceptEnd: assign({ endAccepted: true }),
    complete: assign({ outcome: 'completed' as const }),
    recordIoError: assign({
      lastIoError: ({ event }) =>
        event.type === 'HV.IO_ERROR' ? `${event.operation} error, action ${event.action}` : null,
    }),
    failWithHypervisorError: assign({
      outcome: 'failed' as const,
      error: ({ context, event }) =>
        pullErrors.failed(context.request.disk, event.type === 'HV.CONCLUDED' ? (event.error ?? undefined) : undefined),
    }),
    failCancelledOutside: assign({
      outcome: 'failed' as const,
      error: ({ context }) => pullErrors.failed(context.request.disk, 'the job was cancelled outside blockcopy'),
    }),
    failVanished: assign({
      outcome: 'failed' as const,
      error: ({ context }) =>
        pullErrors.failed(context.request.disk, 'the job vanished from the hypervisor; outcome unknown'),
    }),
    failGone: assign({
      outcome: 'failed' as const,
      error: ({ event }) =>
        blockCopyError(
          'VIR_ERR_OPERATION_FAILED',
          event.type === 'HV.GONE' ? `domain is not running: ${event.reason}` : 'domain is not running',
        ),
    }),
  },
}).createMachine({
  id: 'blockPullJob',
  context: ({ input }) => ({
    jobId: input.jobId,
    request: input.request,
    plan: null,
    started: false,
    endRequest: null,
    endAccepted: false,
    outcome: null,
    error: null,
    lastIoError: null,
    cleanupError: null,
  }),
  initial: 'validating',
  states: {
    validating: {
      invoke: {
        src: 'inspectFacts',
        input: ({ context }) => ({ jobId: context.jobId, request: context.request }),
        onDone: [
          {
            guard: 'planValid',
            target: 'starting',
            actions: assign({ plan: ({ context, event }) => planPull(context.request, event.output)._unsafeUnwrap() }),
          },
          {
            target: 'failed',
            actions: assign({
              outcome: 'failed' as const,
              error: ({ context, event }) => planPull(context.request, event.output)._unsafeUnwrapErr(),
            }),
          },
        ],
        onError: {
          target: 'failed',
          actions: assign({ outcome: 'failed' as const, error: ({ event }) => toBlockCopyError(event.error) }),
        },
      },
      on: { PIVOT: { actions: 'refuseNoJob' }, ABORT: { actions: 'refuseNoJob' } },
    },
    starting: {
      invoke: {
        src: 'startStream',
        input: ({ context }) => ({ jobId: context.jobId, plan: context.plan! }),
        onDone: { target: 'streaming' },
        onError: {
          target: 'finishing',
          actions: assign({ outcome: 'failed' as const, error: ({ event }) => toBlockCopyError(event.error) }),
        },
      },
      on: {
        // QEMU may conclude a tiny stream before block-stream's reply reaches us.
        'HV.CONCLUDED': [
          { guard: 'concludedWithError', target: 'finishing', actions: ['markStarted', 'failWithHypervisorError'] },
          { guard: 'concludedCancelled', target: 'finishing', actions: ['markStarted', 'failCancelledOutside'] },
          { target: 'finishing', actions: ['markStarted', 'complete'] },
        ],
        'HV.GONE': { target: 'finishing', actions: 'failGone' },
        PIVOT: { actions: 'refuseNoJob' },
        ABORT: { actions: 'refuseNoJob' },
      },
    },
    streaming: {
      entry: 'markStarted',
      initial: 'running',
      states: {
        running: {
          on: {
            'HV.PAUSED': [
              { guard: 'pausedByIoError', target: 'errorPaused' },
              { guard: 'pausedByUser', target: 'paused' },
            ],
          },
        },
        paused: {
          on: { 'HV.RUNNING': { target: 'running' }, 'HV.PAUSED': { guard: 'pausedByIoError', target: 'errorPaused' } },
        },
        errorPaused: {
          on: { 'HV.RUNNING': { target: 'running' } },
        },
      },
      on: {
        'HV.IO_ERROR': { actions: 'recordIoError' },
        // A pull is never ready: libvirt's readiness check refuses a pivot first.
        PIVOT: { actions: 'refusePivot' },
        ABORT: { target: 'aborting', actions: assign({ endRequest: 'abort' as const }) },
        'HV.CONCLUDED': [
          { guard: 'concludedWithError', target: 'finishing', actions: 'failWithHypervisorError' },
          { guard: 'concludedCancelled', target: 'finishing', actions: 'failCancelledOutside' },
          // The pull ends by itself: BLOCK_JOB_COMPLETED without an error is the chain rewritten.
          { target: 'finishing', actions: 'complete' },
        ],
        'HV.VANISHED': { target: 'finishing', actions: 'failVanished' },
        'HV.GONE': { target: 'finishing', actions: 'failGone' },
      },
    },
    aborting: {
      invoke: {
        src: 'cancelJob',
        input: ({ context }) => ({ jobId: context.jobId, force: false }),
        onDone: { actions: 'acceptEnd' },
        onError: {
          target: 'streaming',
          actions: [assign({ endRequest: null }), emit(({ event }) => refusal('ABORT', toBlockCopyError(event.error)))],
        },
      },
      on: {
        'HV.CONCLUDED': [
          { guard: 'concludedCancelled', target: 'finishing', actions: assign({ outcome: 'canceled' as const }) },
          { guard: 'concludedWithError', target: 'finishing', actions: 'failWithHypervisorError' },
          // The stream finished before the cancel took effect: the pull happened, say so.
          { target: 'finishing', actions: 'complete' },
        ],
        'HV.VANISHED': { target: 'finishing', actions: assign({ outcome: 'canceled' as const }) },
        'HV.GONE': { target: 'finishing', actions: 'failGone' },
        'HV.IO_ERROR': { actions: 'recordIoError' },
        PIVOT: { actions: 'refuseStillEnding' },
        ABORT: { actions: 'refuseStillEnding' },
      },
    },
    finishing: {
      invoke: {
        src: 'finishJob',
        input: ({ context }) => ({ jobId: context.jobId, started: context.started, plan: context.plan }),
        onDone: { target: 'settled' },
        onError: {
          target: 'settled',
          actions: assign({ cleanupError: ({ event }) => toBlockCopyError(event.error) }),
        },
      },
      on: { PIVOT: { actions: 'refuseStillEnding' }, ABORT: { actions: 'refuseStillEnding' } },
    },
    settled: {
      always: [
        { guard: 'outcomeCompleted', target: 'completed' },
        { guard: 'outcomeCanceled', target: 'canceled' },
        { target: 'failed' },
      ],
    },
    completed: { type: 'final' },
    canceled: { type: 'final' },
    failed: {
      type: 'final',
      entry: assign({
        outcome: 'failed' as const,
        error: ({ context }) => context.error ?? blockCopyError('VIR_ERR_INTERNAL_ERROR', 'job failed'),
      }),
    },
  },
  output: ({ context }) => ({
    outcome: context.outcome ?? 'failed',
    pivoted: false,
    destinationConsistent: false,
    error: context.error,
  }),
});

export type BlockPullJobMachine = typeof blockPullJobMachine;
