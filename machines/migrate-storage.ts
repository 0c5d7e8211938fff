/**
 * The whole-chain live storage migration statechart (the seed's closing use case): one or more
 * disks of a running domain move, each with its entire backing chain, to another directory.
 *
 *   planning → copyingBacking → rebasingBacking → creatingTops → mirroring (the copies mirror
 *     while the backing copies are verified) → pivoting (one disk after the other, once every
 *     copy is ready and every layer verified) → confirming → releasing → migrated | partial
 *   with deleteSource, once every disk pivoted, every layer was verified and the guest was seen
 *     reading every new chain: releasing → deletingSource (the old chains' files) → migrated
 *   any failure or cancel before the first pivot → abortingCopies → rollingBack → rolledBack
 *
 * Each disk's block copy (REUSE_EXT|SHALLOW into the pre-created top) runs as a child actor
 * `copy:<disk>` of this chart, spawned in `mirroring`; its logic is the engine's block-copy job
 * (machines/block-copy-job.ts), which the child drives through the engine's public API and
 * reports back as COPY.* events. The chart is pure: every IO step is an invoked actor the
 * workflow provides (src/workflows/migrate-storage.ts), context is plain JSON, so the workflow
 * record in the store says where a migration stands and what it created.
 */
import { and, assign, enqueueActions, fromCallback, fromPromise, not, setup } from 'xstate';
import type { BlockCopyError } from '../src/core/errors.js';
import { blockCopyError } from '../src/core/errors.js';
import type { ImageFormat } from '../src/core/hypervisor-port.js';

/** One backing image to copy: from the old chain to DEST-DIR. */
export interface LayerPlan {
  readonly from: string;
  readonly to: string;
  readonly format: ImageFormat;
  /** The backing name to write into the copy (relative to DEST-DIR); null for the chain's base. */
  readonly backingName: string | null;
  readonly backingFormat: ImageFormat | null;
}

export interface DiskPlan {
  /** Canonical disk name. */
  readonly disk: string;
  /** The active image the guest reads now. */
  readonly source: string;
  /** The new active image in DEST-DIR. */
  readonly top: string;
  readonly topFormat: ImageFormat;
  readonly virtualSize: number;
  /** The backing images below the top, top first; empty for a disk without backing (full copy). */
  readonly backing: readonly LayerPlan[];
  /** Every image of the old chain, top first. */
  readonly oldChain: readonly string[];
}

/**
 * Where one disk stands. `refused`: its pivot was refused while its copy still runs (failed, but
 * live until the copy has ended: nothing of it may be removed before).
 */
export type DiskState = 'pending' | 'mirroring' | 'ready' | 'refused' | 'pivoted' | 'aborted' | 'failed';

export interface DiskStatus {
  readonly state: DiskState;
  readonly jobId: string | null;
  readonly error: BlockCopyError | null;
  /** The chain the guest reads after the pivot, as listDisks reported it (confirming). */
  readonly observedChain: readonly string[] | null;
}

export interface MigrationRequest {
  readonly domain: string;
  /** Disks as the caller named them; resolved to canonical names in planning. */
  readonly disks: readonly string[] | 'all';
  readonly destDir: string;
  /**
   * After a verified pivot of every disk, delete the files of the old chains (never one a node of
   * the domain still uses, never a new file). Absent in records written before the option.
   */
  readonly deleteSource?: boolean;
}

/** What `deleteSource` did: the old files deleted, and those kept with the reason. */
export interface SourceDeletion {
  readonly deleted: readonly string[];
  readonly kept: readonly { readonly path: string; readonly reason: string }[];
}

export type MigrationOutcome = 'migrated' | 'partial' | 'rolled-back' | 'failed';

export interface MigrationContext {
  readonly workflowId: string;
  readonly request: MigrationRequest;
  readonly plan: readonly DiskPlan[] | null;
  readonly status: Readonly<Record<string, DiskStatus>>;
  /** The disk being pivoted (index into plan). */
  readonly pivotIndex: number;
  /** The children were spawned (mirroring entered, or attached after a restart). */
  readonly spawned: boolean;
  /** The user asked to cancel: honoured at the next step boundary before the first pivot. */
  readonly canceled: boolean;
  /** Set when this run resumes a recorded migration after a restart. */
  readonly resumed: boolean;
  readonly error: BlockCopyError | null;
  /** Rolling back could not remove everything the migration created. */
  readonly cleanupFailed: boolean;
  /** Every backing copy was verified (qemu-img compare): no pivot before. */
  readonly verified: boolean;
  /** The verification found a bad copy (or could not run). */
  readonly verifyFailed: boolean;
  /** What deletingSource did (deleteSource only); null until it ran. */
  readonly sourceDeletion: SourceDeletion | null;
}

export interface MigrationInput {
  readonly workflowId: string;
  readonly request: MigrationRequest;
  /** A recorded context to resume from (after a restart); the chart reconciles first. */
  readonly resume?: MigrationContext;
}

export interface MigrationOutput {
  readonly outcome: MigrationOutcome;
  readonly status: Readonly<Record<string, DiskStatus>>;
  readonly error: BlockCopyError | null;
  /** deleteSource only: the old files deleted and kept; null when the deletion did not run. */
  readonly sourceDeletion: SourceDeletion | null;
}

/** What reconciling found after a restart: per disk, and whether to go on or roll back. */
export interface Reconciled {
  readonly decision: 'forward' | 'rollback';
  /** pivoted: the guest reads the new top; job: the copy runs in this engine; none: neither. */
  readonly disks: Readonly<Record<string, 'pivoted' | 'job' | 'none'>>;
}

/** Input of a child copy actor. */
export interface CopyChildInput {
  readonly domain: string;
  readonly plan: DiskPlan;
  /** Take over the engine's (recovered) job on the disk instead of starting one. */
  readonly attach: boolean;
  /** Abort as soon as the job is held (rolling back after a restart). */
  readonly abortAtOnce: boolean;
}

export type CopyChildEvent = { readonly type: 'PIVOT' } | { readonly type: 'ABORT' };

export type MigrationEvent =
  | { readonly type: 'CANCEL' }
  | { readonly type: 'COPY.STARTED'; readonly disk: string; readonly jobId: string }
  | { readonly type: 'COPY.READY'; readonly disk: string }
  | { readonly type: 'COPY.PIVOT_REFUSED'; readonly disk: string; readonly error: BlockCopyError }
  | {
      readonly type: 'COPY.ENDED';
      readonly disk: string;
      readonly pivoted: boolean;
      readonly error: BlockCopyError | null;
    };

export const copyChildId = (disk: string): string => `copy:${disk}`;

/** States from which a restarted migration goes forward (a pivot may have happened). */
export const FORWARD_STATES = /^(pivoting|confirming|releasing|deletingSource)(\.|$)/;

function notProvided(name: string): () => never {
  return () => {
    throw new Error(`migrate-storage actor '${name}' was not provided`);
  };
}

/** The disk's copy job may still run. */
const LIVE: readonly DiskState[] = ['pending', 'mirroring', 'ready', 'refused'];
const FAILED: readonly DiskState[] = ['aborted', 'failed', 'refused'];

function disksOf(ctx: MigrationContext): readonly DiskPlan[] {
  return ctx.plan ?? [];
}

function errorOf(event: { error?: unknown }): BlockCopyError {
  const e = event.error;
  if (typeof e === 'object' && e !== null && 'code' in e && 'message' in e) return e as BlockCopyError;
  return blockCopyError('VIR_ERR_INTERNAL_ERROR', e instanceof Error ? e.message : String(e));
}

function setStatus(
  ctx: MigrationContext,
  disk: string,
  patch: Partial<DiskStatus>,
): Readonly<Record<string, DiskStatus>> {
  const old = ctx.status[disk] ?? { state: 'pending', jobId: null, error: null, observedChain: null };
  return { ...ctx.status, [disk]: { ...old, ...patch } };
}

export const migrateStorageMachine = setup({
  types: {
    context: {} as MigrationContext,
    events: {} as MigrationEvent,
    input: {} as MigrationInput,
    output: {} as MigrationOutput,
  },
  actors: {
    /** Reads the domain's disks and chains, checks DEST-DIR and every target name: the plan. */
    planMigration: fromPromise<readonly DiskPlan[], { workflowId: string; request: MigrationRequest }>(
      notProvided('planMigration'),
    ),
    /** Copies every backing image to DEST-DIR under the workflow's claim. */
    copyBacking: fromPromise<undefined, { plan: readonly DiskPlan[] }>(notProvided('copyBacking')),
    /** qemu-img rebase -u: the copies name each other by relative names. */
    rebaseBacking: fromPromise<undefined, { plan: readonly DiskPlan[] }>(notProvided('rebaseBacking')),
    /** qemu-img compare of every copied layer (through its new chain) with the original. */
    verifyBacking: fromPromise<undefined, { plan: readonly DiskPlan[] }>(notProvided('verifyBacking')),
    /** Pre-creates each new top with a relative backing name. */
    createTops: fromPromise<undefined, { plan: readonly DiskPlan[] }>(notProvided('createTops')),
    /** The child: one disk's block copy through the engine (machines/block-copy-job.ts). */
    copyDisk: fromCallback<CopyChildEvent, CopyChildInput>(notProvided('copyDisk')),
    /** Write-ahead barrier: the record says "pivoting disk N" before the pivot is asked. */
    recordPivot: fromPromise<undefined, { disk: string }>(notProvided('recordPivot')),
    /** The guest's view (listDisks): the chain each pivoted disk now reads. */
    confirmChains: fromPromise<Readonly<Record<string, readonly string[]>>, { disks: readonly DiskPlan[] }>(
      notProvided('confirmChains'),
    ),
    /** Hands the new chains over (claims dropped); removes what was made for disks not pivoted. */
    release: fromPromise<undefined, { keep: readonly DiskPlan[]; remove: readonly DiskPlan[] }>(notProvided('release')),
    /**
     * deleteSource: deletes the old chains' files once every disk pivoted onto its verified new
     * chain (a file a node of the domain still uses, or a new file, is kept). Idempotent.
     */
    deleteSource: fromPromise<SourceDeletion, { disks: readonly DiskPlan[] }>(notProvided('deleteSource')),
    /** Removes every file the migration created (never one it did not). */
    removeCreated: fromPromise<undefined, { remove: readonly DiskPlan[] }>(notProvided('removeCreated')),
    /** After a restart: what the guest reads and which copies still run. */
    reconcile: fromPromise<Reconciled, { context: MigrationContext }>(notProvided('reconcile')),
  },
  guards: {
    resuming: ({ context }) => context.resumed,
    canceled: ({ context }) => context.canceled,
    allReady: ({ context }) =>
      disksOf(context).every((d) => ['ready', 'pivoted'].includes(context.status[d.disk]?.state ?? 'pending')),
    anyFailed: ({ context }) =>
      disksOf(context).some((d) => FAILED.includes(context.status[d.disk]?.state ?? 'pending')),
    anyPivoted: ({ context }) => disksOf(context).some((d) => context.status[d.disk]?.state === 'pivoted'),
    allPivoted: ({ context }) => disksOf(context).every((d) => context.status[d.disk]?.state === 'pivoted'),
    verified: ({ context }) => context.verified,
    verifyFailed: ({ context }) => context.verifyFailed,
    anyLive: ({ context }) => disksOf(context).some((d) => LIVE.includes(context.status[d.disk]?.state ?? 'pending')),
    currentPivoted: ({ context }) => {
      const d = disksOf(context)[context.pivotIndex];
      return d !== undefined && context.status[d.disk]?.state === 'pivoted';
    },
    currentReady: ({ context }) => {
      const d = disksOf(context)[context.pivotIndex];
      return d !== undefined && context.status[d.disk]?.state === 'ready';
    },
    morePivots: ({ context }) => context.pivotIndex + 1 < disksOf(context).length,
    decidedForward: ({ event }) => (event as unknown as { output: Reconciled }).output.decision === 'forward',
    spawned: ({ context }) => context.spawned,
    /**
     * The old chains may go: asked for, every disk pivoted, every layer verified, the guest seen
     * reading every new chain (confirming), and no error anywhere.
     */
    sourceDeletable: ({ context }) =>
      context.request.deleteSource === true &&
      context.verified &&
      context.error === null &&
      disksOf(context).length > 0 &&
      disksOf(context).every(
        (d) => context.status[d.disk]?.state === 'pivoted' && context.status[d.disk]?.observedChain != null,
      ),
  },
  actions: {
    /** One child per disk not yet pivoted or ended (attached to a recovered job after a restart). */
    spawnCopies: enqueueActions(({ context, enqueue }, params: { abortAtOnce: boolean }) => {
      for (const d of disksOf(context)) {
        if (!LIVE.includes(context.status[d.disk]?.state ?? 'pending')) continue;
        enqueue.spawnChild('copyDisk', {
          id: copyChildId(d.disk),
          input: { domain: context.request.domain, plan: d, attach: context.resumed, abortAtOnce: params.abortAtOnce },
        });
      }
      enqueue.assign({ spawned: true });
    }),
    abortCopies: enqueueActions(({ context, enqueue }) => {
      for (const d of disksOf(context))
        if (LIVE.includes(context.status[d.disk]?.state ?? 'pending'))
          enqueue.sendTo(copyChildId(d.disk), { type: 'ABORT' } satisfies CopyChildEvent);
    }),
    sendPivot: enqueueActions(({ context, enqueue }) => {
      const d = disksOf(context)[context.pivotIndex];
      if (d) enqueue.sendTo(copyChildId(d.disk), { type: 'PIVOT' } satisfies CopyChildEvent);
    }),
    markCanceled: assign({
      canceled: true,
      error: ({ context }) =>
        context.error ??
        blockCopyError('VIR_ERR_OPERATION_ABORTED', 'storage migration cancelled; the guest stays on its old chain'),
    }),
    recordStepError: assign({ error: ({ context, event }) => context.error ?? errorOf(event as { error?: unknown }) }),
    copyStarted: assign({
      status: ({ context, event }) => {
        const e = event as Extract<MigrationEvent, { type: 'COPY.STARTED' }>;
        return setStatus(context, e.disk, { state: 'mirroring', jobId: e.jobId });
      },
    }),
    copyReady: assign({
      status: ({ context, event }) => {
        const e = event as Extract<MigrationEvent, { type: 'COPY.READY' }>;
        return context.status[e.disk]?.state === 'mirroring' || context.status[e.disk]?.state === 'pending'
          ? setStatus(context, e.disk, { state: 'ready' })
          : context.status;
      },
    }),
    copyEnded: assign({
      status: ({ context, event }) => {
        const e = event as Extract<MigrationEvent, { type: 'COPY.ENDED' }>;
        const old = context.status[e.disk];
        if (e.pivoted) return setStatus(context, e.disk, { state: 'pivoted', error: null });
        const state: DiskState =
          old?.state === 'failed' || old?.state === 'refused' ? 'failed' : e.error ? 'failed' : 'aborted';
        return setStatus(context, e.disk, { state, error: old?.error ?? e.error });
      },
      error: ({ context, event }) => {
        const e = event as Extract<MigrationEvent, { type: 'COPY.ENDED' }>;
        const old = context.status[e.disk];
        // Refused, then pivoted after all (the request failed, the pivot landed): that refusal
        // is no failure; another disk's failure, if any, stays the migration's error.
        if (e.pivoted && old?.state === 'refused' && context.error === old.error) {
          const others = disksOf(context).filter((d) => d.disk !== e.disk);
          return others.map((d) => context.status[d.disk]?.error ?? null).find((x) => x !== null) ?? null;
        }
        if (e.pivoted || context.error) return context.error;
        return (
          e.error ?? blockCopyError('VIR_ERR_OPERATION_FAILED', `block copy of disk '${e.disk}' ended before its pivot`)
        );
      },
    }),
    pivotRefused: assign({
      status: ({ context, event }) => {
        const e = event as Extract<MigrationEvent, { type: 'COPY.PIVOT_REFUSED' }>;
        return context.status[e.disk]?.state === 'pivoted'
          ? context.status
          : setStatus(context, e.disk, { state: 'refused', error: e.error });
      },
      // A refusal that comes after its disk pivoted is no failure: the pivot happened.
      error: ({ context, event }) => {
        const e = event as Extract<MigrationEvent, { type: 'COPY.PIVOT_REFUSED' }>;
        return context.status[e.disk]?.state === 'pivoted' ? context.error : (context.error ?? e.error);
      },
    }),
    nextPivot: assign({ pivotIndex: ({ context }) => context.pivotIndex + 1 }),
    firstUnpivoted: assign({
      pivotIndex: ({ context }) => {
        const i = disksOf(context).findIndex((d) => context.status[d.disk]?.state !== 'pivoted');
        return i < 0 ? disksOf(context).length : i;
      },
    }),
  },
}).createMachine({
  id: 'migrateStorage',
  context: ({ input }) =>
    input.resume
      ? {
          ...input.resume,
          // Records written before deleteSource have no such field.
          sourceDeletion: (input.resume.sourceDeletion as SourceDeletion | null | undefined) ?? null,
          resumed: true,
          spawned: false,
        }
      : {
          workflowId: input.workflowId,
          request: input.request,
          plan: null,
          status: {},
          pivotIndex: 0,
          spawned: false,
          canceled: false,
          resumed: false,
          error: null,
          cleanupFailed: false,
          verified: false,
          verifyFailed: false,
          sourceDeletion: null,
        },
  initial: 'starting',
  output: ({ context }) => {
    const disks = disksOf(context);
    const pivoted = disks.filter((d) => context.status[d.disk]?.state === 'pivoted').length;
    const outcome: MigrationOutcome =
      disks.length > 0 && pivoted === disks.length && context.error === null
        ? 'migrated'
        : pivoted > 0
          ? 'partial'
          : context.plan === null || context.cleanupFailed
            ? 'failed'
            : 'rolled-back';
    return { outcome, status: context.status, error: context.error, sourceDeletion: context.sourceDeletion ?? null };
  },
  on: { CANCEL: { actions: 'markCanceled' } },
  states: {
    starting: {
      always: [{ guard: 'resuming', target: 'reconciling' }, { target: 'planning' }],
    },
    planning: {
      invoke: {
        src: 'planMigration',
        input: ({ context }) => ({ workflowId: context.workflowId, request: context.request }),
        onDone: [
          { guard: 'canceled', target: 'failed', actions: assign({ plan: ({ event }) => event.output }) },
          {
            target: 'copyingBacking',
            actions: assign({
              plan: ({ event }) => event.output,
              status: ({ event }) =>
                Object.fromEntries(
                  event.output.map((d) => [
                    d.disk,
                    { state: 'pending', jobId: null, error: null, observedChain: null } satisfies DiskStatus,
                  ]),
                ),
            }),
          },
        ],
        onError: { target: 'failed', actions: 'recordStepError' },
      },
    },
    copyingBacking: {
      invoke: {
        src: 'copyBacking',
        input: ({ context }) => ({ plan: disksOf(context) }),
        onDone: [{ guard: 'canceled', target: 'rollingBack' }, { target: 'rebasingBacking' }],
        onError: { target: 'rollingBack', actions: 'recordStepError' },
      },
    },
    rebasingBacking: {
      invoke: {
        src: 'rebaseBacking',
        input: ({ context }) => ({ plan: disksOf(context) }),
        onDone: [{ guard: 'canceled', target: 'rollingBack' }, { target: 'creatingTops' }],
        onError: { target: 'rollingBack', actions: 'recordStepError' },
      },
    },
    creatingTops: {
      invoke: {
        src: 'createTops',
        input: ({ context }) => ({ plan: disksOf(context) }),
        onDone: [{ guard: 'canceled', target: 'rollingBack' }, { target: 'mirroring' }],
        onError: { target: 'rollingBack', actions: 'recordStepError' },
      },
    },
    mirroring: {
      description:
        'one child copy:<disk> per disk (the block-copy job chart), all mirroring together while the backing copies are verified',
      entry: [{ type: 'spawnCopies', params: { abortAtOnce: false } }],
      // Verified beside the mirrors (the guest reads the old chain until the pivot, which waits for it).
      invoke: {
        src: 'verifyBacking',
        input: ({ context }) => ({ plan: context.verified ? [] : disksOf(context) }),
        onDone: { actions: assign({ verified: true }) },
        onError: { actions: ['recordStepError', assign({ verifyFailed: true })] },
      },
      always: [
        { guard: 'verifyFailed', target: 'abortingCopies' },
        { guard: 'anyFailed', target: 'abortingCopies' },
        { guard: 'canceled', target: 'abortingCopies' },
        { guard: and(['allReady', 'verified']), target: 'pivoting', actions: 'firstUnpivoted' },
      ],
      on: {
        'COPY.STARTED': { actions: 'copyStarted' },
        'COPY.READY': { actions: 'copyReady' },
        'COPY.ENDED': { actions: 'copyEnded' },
        'COPY.PIVOT_REFUSED': { actions: 'pivotRefused' },
      },
    },
    pivoting: {
      description: 'every copy is ready: the disks pivot back to back, each recorded before it is asked',
      initial: 'recording',
      on: {
        'COPY.STARTED': { actions: 'copyStarted' },
        'COPY.READY': { actions: 'copyReady' },
        // The current disk's end moves on in `waiting`; another disk's end is only recorded.
        'COPY.ENDED': { actions: 'copyEnded' },
        'COPY.PIVOT_REFUSED': { actions: 'pivotRefused' },
      },
      states: {
        recording: {
          always: [{ guard: 'allPivoted', target: '#migrateStorage.confirming' }],
          invoke: {
            src: 'recordPivot',
            input: ({ context }) => ({ disk: disksOf(context)[context.pivotIndex]?.disk ?? '' }),
            onDone: [
              { guard: 'currentPivoted', target: 'next' },
              { guard: 'anyFailed', target: 'next' },
              { guard: 'currentReady', target: 'waiting' },
              { target: 'next' },
            ],
            onError: { target: '#migrateStorage.abortingCopies', actions: 'recordStepError' },
          },
        },
        waiting: {
          entry: 'sendPivot',
          on: {
            'COPY.ENDED': { target: 'next', actions: 'copyEnded' },
            'COPY.PIVOT_REFUSED': { target: 'next', actions: 'pivotRefused' },
          },
        },
        next: {
          always: [
            { guard: 'allPivoted', target: '#migrateStorage.confirming' },
            {
              guard: and(['currentPivoted', 'morePivots', not('anyFailed')]),
              target: 'recording',
              actions: 'nextPivot',
            },
            { target: '#migrateStorage.abortingCopies' },
          ],
        },
      },
    },
    abortingCopies: {
      description: 'every copy still running is aborted; the guest stays on its sources',
      entry: enqueueActions(({ context, enqueue, check }) => {
        if (check('spawned')) enqueue('abortCopies');
        else if (context.plan !== null) enqueue({ type: 'spawnCopies', params: { abortAtOnce: true } });
      }),
      always: [
        { guard: and([not('anyLive'), 'anyPivoted']), target: 'confirming' },
        { guard: not('anyLive'), target: 'rollingBack' },
      ],
      on: {
        'COPY.STARTED': { actions: ['copyStarted', 'abortCopies'] },
        'COPY.READY': { actions: 'copyReady' },
        'COPY.ENDED': { actions: 'copyEnded' },
        'COPY.PIVOT_REFUSED': { actions: 'pivotRefused' },
      },
    },
    confirming: {
      invoke: {
        src: 'confirmChains',
        input: ({ context }) => ({
          disks: disksOf(context).filter((d) => context.status[d.disk]?.state === 'pivoted'),
        }),
        onDone: {
          target: 'releasing',
          actions: assign({
            status: ({ context, event }) => {
              let status = context.status;
              for (const [disk, chain] of Object.entries(event.output))
                status = setStatus({ ...context, status }, disk, { observedChain: chain });
              return status;
            },
          }),
        },
        onError: { target: 'releasing', actions: 'recordStepError' },
      },
    },
    releasing: {
      invoke: {
        src: 'release',
        input: ({ context }) => ({
          keep: disksOf(context).filter((d) => context.status[d.disk]?.state === 'pivoted'),
          remove: disksOf(context).filter((d) => context.status[d.disk]?.state !== 'pivoted'),
        }),
        onDone: [
          { guard: 'sourceDeletable', target: 'deletingSource' },
          { guard: 'allPivoted', target: 'migrated' },
          { target: 'partial' },
        ],
        onError: { target: 'partial', actions: 'recordStepError' },
      },
    },
    deletingSource: {
      description:
        'deleteSource: the old chains go, each file only if no node of the domain uses it; the decision is recorded first',
      invoke: {
        src: 'deleteSource',
        input: ({ context }) => ({ disks: disksOf(context) }),
        onDone: { target: 'migrated', actions: assign({ sourceDeletion: ({ event }) => event.output }) },
        // The guest is on its new chains whatever happened here: still migrated, the error said.
        onError: {
          target: 'migrated',
          actions: assign({
            sourceDeletion: ({ context, event }) => ({
              deleted: [],
              kept: [...new Set(disksOf(context).flatMap((d) => d.oldChain))].map((path) => ({
                path,
                reason: errorOf(event as { error?: unknown }).message,
              })),
            }),
          }),
        },
      },
    },
    rollingBack: {
      description: 'removes only what the migration created; the old chain was never written',
      invoke: {
        src: 'removeCreated',
        input: ({ context }) => ({ remove: disksOf(context) }),
        onDone: { target: 'rolledBack' },
        onError: { target: 'failed', actions: ['recordStepError', assign({ cleanupFailed: true })] },
      },
    },
    reconciling: {
      description: 'after a restart: forward once a pivot may have happened, else roll back',
      invoke: {
        src: 'reconcile',
        input: ({ context }) => ({ context }),
        onDone: [
          {
            guard: 'decidedForward',
            target: 'mirroring',
            actions: assign({
              // A pivot is only ever recorded once every layer was verified.
              verified: true,
              status: ({ context, event }) => {
                let status = context.status;
                for (const [disk, found] of Object.entries(event.output.disks)) {
                  const st: DiskState = found === 'pivoted' ? 'pivoted' : found === 'job' ? 'pending' : 'failed';
                  const error =
                    found === 'none'
                      ? blockCopyError(
                          'VIR_ERR_OPERATION_FAILED',
                          `block copy of disk '${disk}' was lost with the process that ran it`,
                        )
                      : null;
                  status = setStatus({ ...context, status }, disk, { state: st, error });
                }
                return status;
              },
            }),
          },
          {
            target: 'abortingCopies',
            actions: assign({
              error: ({ context }) =>
                context.error ??
                blockCopyError(
                  'VIR_ERR_OPERATION_ABORTED',
                  'storage migration interrupted before its pivot; rolled back after the restart',
                ),
              status: ({ context, event }) => {
                let status = context.status;
                for (const [disk, found] of Object.entries(event.output.disks))
                  status = setStatus({ ...context, status }, disk, {
                    state: found === 'job' ? 'pending' : found === 'pivoted' ? 'pivoted' : 'aborted',
                  });
                return status;
              },
            }),
          },
        ],
        onError: { target: 'failed', actions: 'recordStepError' },
      },
    },
    migrated: { type: 'final' },
    partial: { type: 'final' },
    rolledBack: { type: 'final' },
    failed: { type: 'final' },
  },
});
