/**
 * The block-copy job statechart: one libvirt block copy from request to final outcome.
 *
 *   validating → preparingDestination → starting → mirroring → ready → pivoting → confirmingPivot
 *                                                      ↓          ↓ ↘ aborting ↙
 *                                                      └──────────┴→ finishing → completed | canceled | failed
 *   mirroring | ready.synced ─CONVERGE.RESTART→ restarting (cancel, dismiss; the destination stays) → starting
 *
 * The machine is pure: every IO step is an invoked actor provided by the engine
 * (`machine.provide({ actors })`), context is plain JSON, and hypervisor facts arrive as
 * observation events (machines/events.ts). Guards make the invalid impossible: a pivot is only
 * ever requested from `ready`, which is only entered on the hypervisor's own word that the
 * mirror is synchronised, never on cur == end.
 */
import { assign, emit, fromPromise, setup } from 'xstate';
import type { BlockCopyError } from '../src/core/errors.js';
import { blockCopyError, errors } from '../src/core/errors.js';
import type { CopyMode } from '../src/core/hypervisor-port.js';
import type { CopyFacts, CopyPlan, CopyRequest } from '../src/core/plan.js';
import { planCopy } from '../src/core/validate.js';
import type { BlockCopyJobEvent, RefusedEmitted, UserEvent } from './events.js';

export type JobOutcome = 'completed' | 'canceled' | 'failed';

export interface BlockCopyJobInput {
  readonly jobId: string;
  readonly request: CopyRequest;
}

export interface BlockCopyJobContext {
  readonly jobId: string;
  readonly request: CopyRequest;
  readonly plan: CopyPlan | null;
  /** The engine created the destination (so it may remove it); never true for a reused file. */
  readonly destinationCreated: boolean;
  /** The hypervisor job exists (libvirt's RUNNING and later): public events are due. */
  readonly started: boolean;
  /** The hypervisor said ready at least once. */
  readonly readySeen: boolean;
  /** How the job is being ended, once a request was accepted. */
  readonly endRequest: 'pivot' | 'abort' | 'abort-force' | null;
  /** The hypervisor accepted the end request (libvirt returns from an ASYNC abort here). */
  readonly endAccepted: boolean;
  readonly outcome: JobOutcome | null;
  readonly pivoted: boolean;
  /** The destination holds a consistent copy (a confirmed pivot, or a soft abort after ready). */
  readonly destinationConsistent: boolean;
  readonly error: BlockCopyError | null;
  /** The last I/O error decision QEMU reported (BLOCK_JOB_ERROR action), for reports. */
  readonly lastIoError: string | null;
  /** Removing a created destination failed; the outcome stands, the file is left behind. */
  readonly cleanupError: BlockCopyError | null;
  /** A convergence restart under way: the mode and speed the next mirror starts with. */
  readonly restartTo?: { readonly copyMode: CopyMode; readonly speed: number } | null;
  /** Convergence restarts done so far. */
  readonly restarts?: number;
  /** The convergence policy gave up: the job ends failed with this error (guest on its source). */
  readonly convergenceError?: BlockCopyError | null;
}

export interface BlockCopyJobOutput {
  readonly outcome: JobOutcome;
  readonly pivoted: boolean;
  readonly destinationConsistent: boolean;
  readonly error: BlockCopyError | null;
}

/** Input of the final clean-up step. */
export interface FinishInput {
  readonly jobId: string;
  readonly started: boolean;
  /** Destination to remove (only ever one the engine created), or null to keep it. */
  readonly removeDestination: string | null;
  /** A destination the engine created (kept or removed): its ownership claim is released last. */
  readonly releaseDestination?: string | null;
}

/** Normalizes what an IO actor rejected with into a BlockCopyError. */
export function toBlockCopyError(value: unknown): BlockCopyError {
  if (
    typeof value === 'object' &&
    value !== null &&
    'code' in value &&
    'number' in value &&
    'message' in value &&
    'detail' in value
  ) {
    return value as BlockCopyError;
  }
  const detail = value instanceof Error ? value.message : String(value);
  return blockCopyError('VIR_ERR_INTERNAL_ERROR', detail);
}

const notProvided = (name: string) => () => Promise.reject(new Error(`actor '${name}' was not provided`));

function refusal(request: UserEvent['type'], error: BlockCopyError): RefusedEmitted {
  return { type: 'refused', request, error };
}

export const blockCopyJobMachine = setup({
  types: {
    context: {} as BlockCopyJobContext,
    events: {} as BlockCopyJobEvent,
    input: {} as BlockCopyJobInput,
    output: {} as BlockCopyJobOutput,
    emitted: {} as RefusedEmitted,
  },
  actors: {
    /** Read-only look at the domain, disk and destination. */
    inspectFacts: fromPromise<CopyFacts, { jobId: string; request: CopyRequest }>(notProvided('inspectFacts')),
    /** Creates the destination (plan.destinationAction 'create') or re-checks the reused one. */
    prepareDestination: fromPromise<{ created: boolean }, { jobId: string; plan: CopyPlan }>(
      notProvided('prepareDestination'),
    ),
    /** blockdev-mirror with an explicit job id; idempotent. */
    startMirror: fromPromise<undefined, { jobId: string; plan: CopyPlan }>(notProvided('startMirror')),
    /** block-job-complete. */
    completeJob: fromPromise<undefined, { jobId: string }>(notProvided('completeJob')),
    /** block-job-cancel. */
    cancelJob: fromPromise<undefined, { jobId: string; force: boolean }>(notProvided('cancelJob')),
    /** True when the guest now reads from the destination. */
    confirmPivot: fromPromise<boolean, { jobId: string; plan: CopyPlan }>(notProvided('confirmPivot')),
    /** job-dismiss and, if asked, removal of a destination the engine created. */
    finishJob: fromPromise<undefined, FinishInput>(notProvided('finishJob')),
  },
  guards: {
    planValid: ({ context, event }) =>
      planCopy(context.request, (event as unknown as { output: CopyFacts }).output).isOk(),
    concludedWithError: ({ event }) => event.type === 'HV.CONCLUDED' && event.error !== null,
    concludedCancelled: ({ event }) => event.type === 'HV.CONCLUDED' && event.cancelled,
    concludedNotCancelled: ({ event }) => event.type === 'HV.CONCLUDED' && !event.cancelled && event.error === null,
    pausedByIoError: ({ event }) => event.type === 'HV.PAUSED' && event.reason === 'io-error',
    pausedByUser: ({ event }) => event.type === 'HV.PAUSED' && event.reason === 'user',
    pauseIsInternal: ({ event }) => event.type === 'HV.PAUSED' && event.reason === 'internal',
    forceRequested: ({ event }) => event.type === 'ABORT' && event.force,
    pivotConfirmed: ({ event }) => (event as unknown as { output: boolean }).output,
    outcomeCompleted: ({ context }) => context.outcome === 'completed',
    outcomeCanceled: ({ context }) => context.outcome === 'canceled',
    givenUp: ({ context }) => Boolean(context.convergenceError),
    endRequested: ({ context }) => context.endRequest !== null,
  },
  actions: {
    refusePivotNotReady: emit(({ context }) => refusal('PIVOT', errors.notReadyForPivot(context.request.disk))),
    refuseStillEnding: emit(({ context, event }) =>
      refusal(event.type === 'PIVOT' ? 'PIVOT' : 'ABORT', errors.stillBeingEnded(context.request.disk)),
    ),
    refuseNoJob: emit(({ context, event }) =>
      refusal(event.type === 'PIVOT' ? 'PIVOT' : 'ABORT', errors.noActiveJob(context.request.disk)),
    ),
    markStarted: assign({ started: true }),
    acceptEnd: assign({ endAccepted: true }),
    requestForceAbort: assign({ endRequest: 'abort-force' as const }),
    markReady: assign({ started: true, readySeen: true }),
    recordIoError: assign({
      lastIoError: ({ event }) =>
        event.type === 'HV.IO_ERROR' ? `${event.operation} error, action ${event.action}` : null,
    }),
    failWithHypervisorError: assign({
      outcome: 'failed' as const,
      error: ({ context, event }) =>
        event.type === 'HV.CONCLUDED' && event.error !== null
          ? blockCopyError('VIR_ERR_OPERATION_FAILED', `block job '${context.request.disk}' failed: ${event.error}`)
          : blockCopyError('VIR_ERR_OPERATION_FAILED', `block job '${context.request.disk}' failed`),
    }),
    failEndedUnrequested: assign({
      outcome: 'failed' as const,
      error: ({ context, event }) =>
        blockCopyError(
          'VIR_ERR_OPERATION_FAILED',
          event.type === 'HV.CONCLUDED' && event.cancelled
            ? `block job '${context.request.disk}' was cancelled outside blockcopy`
            : `block job '${context.request.disk}' ended without a pivot or abort request`,
        ),
    }),
    failVanished: assign({
      outcome: 'failed' as const,
      error: ({ context }) =>
        blockCopyError(
          'VIR_ERR_OPERATION_FAILED',
          `block job '${context.request.disk}' vanished from the hypervisor; outcome unknown`,
        ),
    }),
    requestRestart: assign({
      restartTo: ({ event }) =>
        event.type === 'CONVERGE.RESTART' ? { copyMode: event.copyMode, speed: event.speed } : null,
    }),
    giveUp: assign({
      endRequest: 'abort-force' as const,
      convergenceError: ({ event }) => (event.type === 'CONVERGE.GIVE_UP' ? event.error : null),
    }),
    failGivenUp: assign({
      outcome: 'failed' as const,
      error: ({ context }) => context.convergenceError ?? null,
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
  id: 'blockCopyJob',
  context: ({ input }) => ({
    jobId: input.jobId,
    request: input.request,
    plan: null,
    destinationCreated: false,
    started: false,
    readySeen: false,
    endRequest: null,
    endAccepted: false,
    outcome: null,
    pivoted: false,
    destinationConsistent: false,
    error: null,
    lastIoError: null,
    cleanupError: null,
    restartTo: null,
    restarts: 0,
    convergenceError: null,
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
            target: 'preparingDestination',
            actions: assign({ plan: ({ context, event }) => planCopy(context.request, event.output)._unsafeUnwrap() }),
          },
          {
            target: 'failed',
            actions: assign({
              outcome: 'failed' as const,
              error: ({ context, event }) => planCopy(context.request, event.output)._unsafeUnwrapErr(),
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
    preparingDestination: {
      invoke: {
        src: 'prepareDestination',
        input: ({ context }) => ({ jobId: context.jobId, plan: context.plan! }),
        onDone: {
          target: 'starting',
          actions: assign({ destinationCreated: ({ event }) => event.output.created }),
        },
        onError: {
          target: 'failed',
          actions: assign({ outcome: 'failed' as const, error: ({ event }) => toBlockCopyError(event.error) }),
        },
      },
      on: { PIVOT: { actions: 'refuseNoJob' }, ABORT: { actions: 'refuseNoJob' } },
    },
    starting: {
      invoke: {
        src: 'startMirror',
        input: ({ context }) => ({ jobId: context.jobId, plan: context.plan! }),
        onDone: { target: 'mirroring' },
        onError: {
          target: 'finishing',
          actions: assign({ outcome: 'failed' as const, error: ({ event }) => toBlockCopyError(event.error) }),
        },
      },
      on: {
        // QEMU sends events before the reply to blockdev-mirror (qemu-mirror.md §0.1).
        'HV.READY': { target: 'ready' },
        'HV.CONCLUDED': [
          { guard: 'concludedWithError', target: 'finishing', actions: ['markStarted', 'failWithHypervisorError'] },
          { target: 'finishing', actions: ['markStarted', 'failEndedUnrequested'] },
        ],
        'HV.GONE': { target: 'finishing', actions: 'failGone' },
        PIVOT: { actions: 'refuseNoJob' },
        ABORT: { actions: 'refuseNoJob' },
      },
    },
    mirroring: {
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
        'HV.READY': { target: 'ready' },
        'HV.IO_ERROR': { actions: 'recordIoError' },
        PIVOT: { actions: 'refusePivotNotReady' },
        // Before ready QEMU treats every cancel as a force cancel (mirror_cancel), and a soft
        // cancel of a paused job is refused, so force is always right here.
        ABORT: { target: 'aborting', actions: 'requestForceAbort' },
        'CONVERGE.RESTART': { target: 'restarting', actions: 'requestRestart' },
        'CONVERGE.GIVE_UP': { target: 'aborting', actions: 'giveUp' },
        'HV.CONCLUDED': [
          { guard: 'concludedWithError', target: 'finishing', actions: 'failWithHypervisorError' },
          { target: 'finishing', actions: 'failEndedUnrequested' },
        ],
        'HV.VANISHED': { target: 'finishing', actions: 'failVanished' },
        'HV.GONE': { target: 'finishing', actions: 'failGone' },
      },
    },
    ready: {
      entry: 'markReady',
      initial: 'synced',
      states: {
        synced: {
          on: {
            'HV.PAUSED': { target: 'standby' },
            ABORT: [
              { guard: 'forceRequested', target: '#blockCopyJob.aborting', actions: 'requestForceAbort' },
              // A soft cancel after ready leaves a consistent point-in-time copy (QEMU 6.2+).
              { target: '#blockCopyJob.aborting', actions: assign({ endRequest: 'abort' as const }) },
            ],
            // Ready but falling behind again: the policy may restart it (never a pivot).
            'CONVERGE.RESTART': { target: '#blockCopyJob.restarting', actions: 'requestRestart' },
          },
        },
        // QEMU's standby: ready, but paused. Still ready (sticky).
        standby: {
          on: {
            'HV.RUNNING': { target: 'synced' },
            'HV.READY': { target: 'synced' },
            // QEMU refuses a soft cancel of a paused job ("is currently paused").
            ABORT: { target: '#blockCopyJob.aborting', actions: 'requestForceAbort' },
          },
        },
      },
      on: {
        'HV.IO_ERROR': { actions: 'recordIoError' },
        PIVOT: { target: 'pivoting', actions: assign({ endRequest: 'pivot' as const }) },
        'HV.CONCLUDED': [
          { guard: 'concludedWithError', target: 'finishing', actions: 'failWithHypervisorError' },
          // Completed without our pivot: another client (virsh blockjob --pivot) may have
          // pivoted. Only the disk's active image can tell; never assumed.
          { guard: 'concludedNotCancelled', target: 'confirmingPivot' },
          { target: 'finishing', actions: 'failEndedUnrequested' },
        ],
        'HV.VANISHED': { target: 'finishing', actions: 'failVanished' },
        'HV.GONE': { target: 'finishing', actions: 'failGone' },
      },
    },
    // QEMU 7.2 cannot switch a running job's copy mode: cancel it (force: the destination is
    // rewritten anyway), dismiss it, keep the destination (the engine's own file, or the user's
    // reused one, never removed here), and start again under the same job id.
    restarting: {
      initial: 'cancelling',
      states: {
        cancelling: {
          invoke: {
            src: 'cancelJob',
            input: ({ context }) => ({ jobId: context.jobId, force: true }),
            // Still running as before: the policy hears "not converging" again and decides.
            onError: { target: '#blockCopyJob.mirroring', actions: assign({ restartTo: null }) },
          },
          on: {
            'HV.CONCLUDED': [
              { guard: 'givenUp', target: '#blockCopyJob.finishing', actions: 'failGivenUp' },
              {
                guard: 'endRequested',
                target: '#blockCopyJob.finishing',
                actions: assign({ outcome: 'canceled' as const }),
              },
              { target: 'dismissing' },
            ],
            'HV.VANISHED': [
              { guard: 'givenUp', target: '#blockCopyJob.finishing', actions: 'failGivenUp' },
              {
                guard: 'endRequested',
                target: '#blockCopyJob.finishing',
                actions: assign({ outcome: 'canceled' as const }),
              },
              { target: 'dismissing' },
            ],
          },
        },
        dismissing: {
          invoke: {
            src: 'finishJob',
            input: ({ context }) => ({
              jobId: context.jobId,
              started: true,
              removeDestination: null,
              releaseDestination: null,
            }),
            onDone: [
              { guard: 'givenUp', target: '#blockCopyJob.finishing', actions: 'failGivenUp' },
              {
                guard: 'endRequested',
                target: '#blockCopyJob.finishing',
                actions: assign({ outcome: 'canceled' as const }),
              },
              {
                target: '#blockCopyJob.starting',
                actions: assign({
                  plan: ({ context }) =>
                    context.plan && context.restartTo ? { ...context.plan, ...context.restartTo } : context.plan,
                  restartTo: null,
                  restarts: ({ context }) => (context.restarts ?? 0) + 1,
                }),
              },
            ],
            onError: {
              target: '#blockCopyJob.finishing',
              actions: assign({ outcome: 'failed' as const, error: ({ event }) => toBlockCopyError(event.error) }),
            },
          },
        },
      },
      on: {
        // The job is being cancelled already: an abort or the policy's give-up ends it here.
        ABORT: { actions: ['requestForceAbort', 'acceptEnd'] },
        'CONVERGE.GIVE_UP': { actions: 'giveUp' },
        PIVOT: { actions: 'refusePivotNotReady' },
        'HV.GONE': { target: 'finishing', actions: 'failGone' },
      },
    },
    pivoting: {
      invoke: {
        src: 'completeJob',
        input: ({ context }) => ({ jobId: context.jobId }),
        onDone: { actions: 'acceptEnd' },
        // QEMU refused the pivot: the mirror stays synchronised (libvirt 8a609afb6).
        onError: {
          target: 'ready',
          actions: [assign({ endRequest: null }), emit(({ event }) => refusal('PIVOT', toBlockCopyError(event.error)))],
        },
      },
      on: {
        'HV.CONCLUDED': [
          {
            guard: 'concludedWithError',
            target: 'finishing',
            actions: assign({
              outcome: 'failed' as const,
              error: ({ context, event }) => errors.failedWhilePivoting(context.request.disk, event.error ?? undefined),
            }),
          },
          {
            guard: 'concludedCancelled',
            target: 'finishing',
            actions: assign({
              outcome: 'failed' as const,
              error: ({ context }) => errors.failedWhilePivoting(context.request.disk, 'job was cancelled'),
            }),
          },
          // COMPLETED alone does not mean pivoted (a soft cancel looks the same): confirm.
          { target: 'confirmingPivot' },
        ],
        // The job is gone without a conclusion seen: only the block graph can tell.
        'HV.VANISHED': { target: 'confirmingPivot' },
        'HV.GONE': { target: 'finishing', actions: 'failGone' },
        'HV.IO_ERROR': { actions: 'recordIoError' },
        PIVOT: { actions: 'refuseStillEnding' },
        ABORT: { actions: 'refuseStillEnding' },
      },
    },
    confirmingPivot: {
      invoke: {
        src: 'confirmPivot',
        input: ({ context }) => ({ jobId: context.jobId, plan: context.plan! }),
        onDone: [
          {
            guard: 'pivotConfirmed',
            target: 'finishing',
            actions: assign({ outcome: 'completed' as const, pivoted: true, destinationConsistent: true }),
          },
          {
            guard: ({ context }) => context.endRequest === null,
            target: 'finishing',
            actions: assign({
              outcome: 'failed' as const,
              error: ({ context }) =>
                blockCopyError(
                  'VIR_ERR_OPERATION_FAILED',
                  `block job '${context.request.disk}' ended outside blockcopy without a pivot`,
                ),
            }),
          },
          {
            target: 'finishing',
            actions: assign({
              outcome: 'failed' as const,
              error: ({ context }) =>
                errors.failedWhilePivoting(context.request.disk, 'the disk is still on its source'),
            }),
          },
        ],
        onError: {
          target: 'finishing',
          actions: assign({
            outcome: 'failed' as const,
            error: ({ context, event }) =>
              errors.failedWhilePivoting(context.request.disk, toBlockCopyError(event.error).message),
          }),
        },
      },
      on: { PIVOT: { actions: 'refuseStillEnding' }, ABORT: { actions: 'refuseStillEnding' } },
    },
    aborting: {
      invoke: {
        src: 'cancelJob',
        input: ({ context }) => ({ jobId: context.jobId, force: context.endRequest === 'abort-force' }),
        onDone: { actions: 'acceptEnd' },
        onError: [
          {
            guard: ({ context }) => context.readySeen,
            target: 'ready',
            actions: [
              assign({ endRequest: null, convergenceError: null }),
              emit(({ event }) => refusal('ABORT', toBlockCopyError(event.error))),
            ],
          },
          {
            target: 'mirroring',
            actions: [
              assign({ endRequest: null, convergenceError: null }),
              emit(({ event }) => refusal('ABORT', toBlockCopyError(event.error))),
            ],
          },
        ],
      },
      on: {
        // libvirt a887da529c: whatever QEMU reports for a job being aborted, it was cancelled.
        'HV.CONCLUDED': [
          { guard: 'givenUp', target: 'finishing', actions: 'failGivenUp' },
          {
            target: 'finishing',
            actions: assign({
              outcome: 'canceled' as const,
              destinationConsistent: ({ context, event }) =>
                context.readySeen && context.endRequest === 'abort' && !event.cancelled && event.error === null,
            }),
          },
        ],
        'HV.VANISHED': [
          { guard: 'givenUp', target: 'finishing', actions: 'failGivenUp' },
          { target: 'finishing', actions: assign({ outcome: 'canceled' as const }) },
        ],
        'HV.GONE': { target: 'finishing', actions: 'failGone' },
        PIVOT: { actions: 'refuseStillEnding' },
        ABORT: { actions: 'refuseStillEnding' },
      },
    },
    finishing: {
      invoke: {
        src: 'finishJob',
        input: ({ context }) => ({
          jobId: context.jobId,
          started: context.started,
          // Only a file the engine created is ever removed, and never one that is now the
          // disk (pivot) or a consistent copy the user asked to keep (abort after ready).
          removeDestination:
            context.destinationCreated && !context.pivoted && !context.destinationConsistent && context.plan
              ? context.plan.destination.path
              : null,
          releaseDestination: context.destinationCreated && context.plan ? context.plan.destination.path : null,
        }),
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
    pivoted: context.pivoted,
    destinationConsistent: context.destinationConsistent,
    error: context.error,
  }),
});

export type BlockCopyJobMachine = typeof blockCopyJobMachine;
