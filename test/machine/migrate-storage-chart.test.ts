/**
 * The whole-chain migration chart alone, with IO actors the test answers by hand (each call waits
 * until the test resolves or rejects it) and child copies that only record what the chart sends
 * them: every step's input, the order of the steps, cancels at step boundaries, each step
 * failing, pivots one disk after the other, refusals, the rollback and the resume after a
 * restart. Expectations from the README (storage migration) and the chart's header contract.
 */
import { describe, expect, it } from 'vitest';
import type { AnyActorRef } from 'xstate';
import { createActor, fromCallback, fromPromise } from 'xstate';
import type {
  CopyChildEvent,
  CopyChildInput,
  DiskPlan,
  MigrationContext,
  MigrationEvent,
  MigrationInput,
  Reconciled,
} from '../../machines/migrate-storage.js';
import { copyChildId, FORWARD_STATES, migrateStorageMachine } from '../../machines/migrate-storage.js';
import { blockCopyError } from '../../src/core/errors.js';
import { stateName } from './steps.js';

const diskPlan = (disk: string): DiskPlan => ({
  disk,
  source: `/src/${disk}-snap.qcow2`,
  top: `/dst/${disk}-snap.qcow2`,
  topFormat: 'qcow2',
  virtualSize: 1 << 30,
  backing: [
    {
      from: `/src/${disk}-base.qcow2`,
      to: `/dst/${disk}-base.qcow2`,
      format: 'qcow2',
      backingName: null,
      backingFormat: null,
    },
  ],
  oldChain: [`/src/${disk}-snap.qcow2`, `/src/${disk}-base.qcow2`],
});
const VDA = diskPlan('vda');
const VDB = diskPlan('vdb');
const PLAN = [VDA, VDB];
const REQUEST = { domain: 'demo', disks: ['vda', 'vdb'], destDir: '/dst' } as const;
const failure = blockCopyError('VIR_ERR_INTERNAL_ERROR', 'injected');
const CANCELLED = blockCopyError(
  'VIR_ERR_OPERATION_ABORTED',
  'storage migration cancelled; the guest stays on its old chain',
);
const pending = { state: 'pending', jobId: null, error: null, observedChain: null } as const;

const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

interface Call {
  readonly name: string;
  readonly input: unknown;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

/** The migration chart with hand-answered IO and recording children. */
function harness(input: Partial<MigrationInput> = {}) {
  const calls: { name: string; input: unknown }[] = [];
  const open: Call[] = [];
  const children: { input: CopyChildInput; received: CopyChildEvent[] }[] = [];
  const io = (name: string): never =>
    fromPromise<unknown, unknown>(
      ({ input: i }) =>
        new Promise((resolve, reject) => {
          calls.push({ name, input: i });
          open.push({ name, input: i, resolve, reject });
        }),
    ) as never;
  const machine = migrateStorageMachine.provide({
    actors: {
      planMigration: io('planMigration'),
      copyBacking: io('copyBacking'),
      rebaseBacking: io('rebaseBacking'),
      verifyBacking: io('verifyBacking'),
      createTops: io('createTops'),
      recordPivot: io('recordPivot'),
      confirmChains: io('confirmChains'),
      release: io('release'),
      removeCreated: io('removeCreated'),
      reconcile: io('reconcile'),
      copyDisk: fromCallback<CopyChildEvent, CopyChildInput>(({ input: i, receive }) => {
        const child = { input: i, received: [] as CopyChildEvent[] };
        children.push(child);
        receive((e) => child.received.push(e));
      }),
    },
  });
  const states: string[] = [];
  const actor = createActor(machine, { input: { workflowId: 'wf-1', request: REQUEST, ...input } });
  actor.subscribe((s) => {
    const n = stateName(s.value);
    if (states.at(-1) !== n) states.push(n);
  });
  actor.start();
  const take = async (name: string): Promise<Call> => {
    await settle();
    const i = open.findIndex((c) => c.name === name);
    if (i < 0) throw new Error(`${name} was not called; open: ${open.map((c) => c.name).join(', ')}`);
    return open.splice(i, 1)[0]!;
  };
  return {
    actor: actor as typeof actor & AnyActorRef,
    calls,
    children,
    states,
    state: () => stateName(actor.getSnapshot().value),
    ctx: () => actor.getSnapshot().context,
    send: async (e: MigrationEvent) => {
      actor.send(e);
      await settle();
    },
    /** Answers the open call of `name` with `output`; returns that call's input. */
    answer: async (name: string, output?: unknown) => {
      const c = await take(name);
      c.resolve(output);
      await settle();
      return c.input;
    },
    refuse: async (name: string, error: unknown = failure) => {
      const c = await take(name);
      c.reject(error);
      await settle();
      return c.input;
    },
    received: (disk: string) => children.filter((c) => c.input.plan.disk === disk).flatMap((c) => c.received),
  };
}

/** Up to mirroring with both copies started. */
async function toMirroring(h: ReturnType<typeof harness>) {
  await h.answer('planMigration', PLAN);
  await h.answer('copyBacking');
  await h.answer('rebaseBacking');
  await h.answer('createTops');
  await h.send({ type: 'COPY.STARTED', disk: 'vda', jobId: 'job-a' });
  await h.send({ type: 'COPY.STARTED', disk: 'vdb', jobId: 'job-b' });
}

/** Both copies ready and verified: pivoting the first disk. */
async function toPivoting(h: ReturnType<typeof harness>) {
  await toMirroring(h);
  await h.answer('verifyBacking');
  await h.send({ type: 'COPY.READY', disk: 'vda' });
  await h.send({ type: 'COPY.READY', disk: 'vdb' });
}

describe('migrate-storage chart', () => {
  it('moves both disks: each step with the plan, children per disk, pivots one after the other', async () => {
    const h = harness();
    expect(h.state()).toBe('planning');
    expect(await h.answer('planMigration', PLAN)).toEqual({ workflowId: 'wf-1', request: REQUEST });
    expect(h.ctx().status).toEqual({ vda: pending, vdb: pending });
    expect(await h.answer('copyBacking')).toEqual({ plan: PLAN });
    expect(await h.answer('rebaseBacking')).toEqual({ plan: PLAN });
    expect(await h.answer('createTops')).toEqual({ plan: PLAN });
    expect(h.state()).toBe('mirroring');
    expect(h.ctx().spawned).toBe(true);
    expect(h.children.map((c) => c.input)).toEqual([
      { domain: 'demo', plan: VDA, attach: false, abortAtOnce: false },
      { domain: 'demo', plan: VDB, attach: false, abortAtOnce: false },
    ]);
    expect(h.actor.getSnapshot().children[copyChildId('vda')]).toBeDefined();
    await h.send({ type: 'COPY.STARTED', disk: 'vda', jobId: 'job-a' });
    await h.send({ type: 'COPY.STARTED', disk: 'vdb', jobId: 'job-b' });
    expect(h.ctx().status['vda']).toEqual({ ...pending, state: 'mirroring', jobId: 'job-a' });
    await h.send({ type: 'COPY.READY', disk: 'vda' });
    await h.send({ type: 'COPY.READY', disk: 'vdb' });
    // Every copy is ready, but no pivot before the backing copies are verified.
    expect(h.state()).toBe('mirroring');
    expect(await h.answer('verifyBacking')).toEqual({ plan: PLAN });
    expect(h.state()).toBe('pivoting.recording');
    expect(await h.answer('recordPivot')).toEqual({ disk: 'vda' });
    expect(h.state()).toBe('pivoting.waiting');
    expect(h.received('vda')).toEqual([{ type: 'PIVOT' }]);
    expect(h.received('vdb')).toEqual([]);
    await h.send({ type: 'COPY.ENDED', disk: 'vda', pivoted: true, error: null });
    expect(h.ctx().pivotIndex).toBe(1);
    expect(await h.answer('recordPivot')).toEqual({ disk: 'vdb' });
    expect(h.received('vdb')).toEqual([{ type: 'PIVOT' }]);
    await h.send({ type: 'COPY.ENDED', disk: 'vdb', pivoted: true, error: null });
    expect(h.state()).toBe('confirming');
    expect(h.calls.at(-1)).toEqual({ name: 'confirmChains', input: { disks: PLAN } });
    await h.answer('confirmChains', { vda: ['/dst/vda-snap.qcow2', '/dst/vda-base.qcow2'], vdb: ['x'] });
    expect(h.ctx().status['vda']).toEqual({
      state: 'pivoted',
      jobId: 'job-a',
      error: null,
      observedChain: ['/dst/vda-snap.qcow2', '/dst/vda-base.qcow2'],
    });
    expect(await h.answer('release')).toEqual({ keep: PLAN, remove: [] });
    expect(h.state()).toBe('migrated');
    expect(h.actor.getSnapshot().output).toMatchObject({ outcome: 'migrated', error: null });
    expect(h.states).toEqual([
      'planning',
      'copyingBacking',
      'rebasingBacking',
      'creatingTops',
      'mirroring',
      'pivoting.recording',
      'pivoting.waiting',
      'pivoting.recording',
      'pivoting.waiting',
      'confirming',
      'releasing',
      'migrated',
    ]);
  });

  it('a copy ready before it was reported started still counts; a late READY does not revive an ended copy', async () => {
    const h = harness();
    await h.answer('planMigration', PLAN);
    await h.answer('copyBacking');
    await h.answer('rebaseBacking');
    await h.answer('createTops');
    await h.send({ type: 'COPY.READY', disk: 'vda' });
    expect(h.ctx().status['vda']?.state).toBe('ready');
    await h.send({ type: 'COPY.ENDED', disk: 'vdb', pivoted: false, error: null });
    await h.send({ type: 'COPY.READY', disk: 'vdb' });
    expect(h.ctx().status['vdb']?.state).toBe('aborted');
  });

  describe('cancel and failures before the mirrors', () => {
    it('cancelled while planning: ends without a step, the plan kept for the record', async () => {
      const h = harness();
      await h.send({ type: 'CANCEL' });
      expect(h.ctx()).toMatchObject({ canceled: true, error: CANCELLED });
      await h.answer('planMigration', PLAN);
      expect(h.state()).toBe('failed');
      expect(h.ctx().plan).toEqual(PLAN);
      expect(h.calls.map((c) => c.name)).toEqual(['planMigration']);
      expect(h.actor.getSnapshot().output).toMatchObject({ outcome: 'rolled-back', error: CANCELLED });
    });
    it('planning refused: failed with its error, nothing made', async () => {
      const h = harness();
      await h.refuse('planMigration');
      expect(h.state()).toBe('failed');
      expect(h.actor.getSnapshot().output).toEqual({
        outcome: 'failed',
        status: {},
        error: failure,
        sourceDeletion: null,
      });
    });
    it.each(['copyBacking', 'rebaseBacking', 'createTops'])(
      'cancelled during %s: rolled back when the step is done',
      async (stepName) => {
        const h = harness();
        await h.answer('planMigration', PLAN);
        for (const s of ['copyBacking', 'rebaseBacking', 'createTops']) {
          if (s === stepName) {
            await h.send({ type: 'CANCEL' });
            await h.answer(s);
            break;
          }
          await h.answer(s);
        }
        expect(h.state()).toBe('rollingBack');
        expect(await h.answer('removeCreated')).toEqual({ remove: PLAN });
        expect(h.state()).toBe('rolledBack');
        expect(h.children).toEqual([]);
        expect(h.actor.getSnapshot().output).toMatchObject({ outcome: 'rolled-back', error: CANCELLED });
      },
    );
    it.each(['copyBacking', 'rebaseBacking', 'createTops'])(
      '%s failing: rolled back with its error',
      async (stepName) => {
        const h = harness();
        await h.answer('planMigration', PLAN);
        for (const s of ['copyBacking', 'rebaseBacking', 'createTops']) {
          if (s === stepName) {
            await h.refuse(s);
            break;
          }
          await h.answer(s);
        }
        expect(h.state()).toBe('rollingBack');
        await h.answer('removeCreated');
        expect(h.actor.getSnapshot().output).toMatchObject({ outcome: 'rolled-back', error: failure });
      },
    );
    it('the rollback failing: failed, the first error kept, clean-up marked failed', async () => {
      const h = harness();
      await h.answer('planMigration', PLAN);
      await h.refuse('copyBacking');
      await h.refuse('removeCreated', blockCopyError('VIR_ERR_SYSTEM_ERROR', 'rm'));
      expect(h.state()).toBe('failed');
      expect(h.ctx().cleanupFailed).toBe(true);
      expect(h.actor.getSnapshot().output).toMatchObject({ outcome: 'failed', error: failure });
    });
    it('a cancel keeps an earlier error', async () => {
      const h = harness();
      await h.answer('planMigration', PLAN);
      await h.refuse('copyBacking');
      await h.send({ type: 'CANCEL' });
      expect(h.ctx()).toMatchObject({ canceled: true, error: failure });
    });
  });

  describe('while mirroring', () => {
    it('the verification failing: every copy aborted, rolled back once they ended', async () => {
      const h = harness();
      await toMirroring(h);
      await h.refuse('verifyBacking');
      expect(h.state()).toBe('abortingCopies');
      expect(h.ctx()).toMatchObject({ verifyFailed: true, verified: false, error: failure });
      expect(h.received('vda')).toEqual([{ type: 'ABORT' }]);
      expect(h.received('vdb')).toEqual([{ type: 'ABORT' }]);
      await h.send({ type: 'COPY.ENDED', disk: 'vda', pivoted: false, error: null });
      expect(h.state()).toBe('abortingCopies');
      await h.send({ type: 'COPY.ENDED', disk: 'vdb', pivoted: false, error: null });
      expect(h.state()).toBe('rollingBack');
      expect(h.ctx().status['vda']).toMatchObject({ state: 'aborted', error: null });
      await h.answer('removeCreated');
      expect(h.actor.getSnapshot().output).toMatchObject({ outcome: 'rolled-back', error: failure });
    });
    it('one copy failing: the other aborted; the failure is the error', async () => {
      const h = harness();
      await toMirroring(h);
      const ioError = blockCopyError('VIR_ERR_OPERATION_FAILED', 'EIO');
      await h.send({ type: 'COPY.ENDED', disk: 'vda', pivoted: false, error: ioError });
      expect(h.state()).toBe('abortingCopies');
      expect(h.ctx().status['vda']).toMatchObject({ state: 'failed', error: ioError });
      expect(h.ctx().error).toEqual(ioError);
      expect(h.received('vda')).toEqual([]);
      expect(h.received('vdb')).toEqual([{ type: 'ABORT' }]);
      // A copy reported started while aborting is aborted (again).
      await h.send({ type: 'COPY.STARTED', disk: 'vdb', jobId: 'job-b2' });
      expect(h.received('vdb')).toEqual([{ type: 'ABORT' }, { type: 'ABORT' }]);
      await h.send({ type: 'COPY.ENDED', disk: 'vdb', pivoted: false, error: null });
      expect(h.state()).toBe('rollingBack');
    });
    it('a copy ending without an error before its pivot: aborted, and the migration says why', async () => {
      const h = harness();
      await toMirroring(h);
      await h.send({ type: 'COPY.ENDED', disk: 'vdb', pivoted: false, error: null });
      expect(h.ctx().status['vdb']).toMatchObject({ state: 'aborted', error: null });
      expect(h.ctx().error).toEqual(
        blockCopyError('VIR_ERR_OPERATION_FAILED', "block copy of disk 'vdb' ended before its pivot"),
      );
      expect(h.state()).toBe('abortingCopies');
    });
    it('cancelled: every copy aborted', async () => {
      const h = harness();
      await toMirroring(h);
      await h.send({ type: 'CANCEL' });
      expect(h.state()).toBe('abortingCopies');
      expect(h.received('vda')).toEqual([{ type: 'ABORT' }]);
    });
    it('a pivot refusal reported while mirroring: that disk refused (still live), all aborted', async () => {
      const h = harness();
      await toMirroring(h);
      await h.send({ type: 'COPY.PIVOT_REFUSED', disk: 'vda', error: failure });
      expect(h.ctx().status['vda']).toMatchObject({ state: 'refused', error: failure });
      expect(h.state()).toBe('abortingCopies');
      expect(h.received('vda')).toEqual([{ type: 'ABORT' }]);
      await h.send({ type: 'COPY.ENDED', disk: 'vda', pivoted: false, error: null });
      // Refused and then ended: failed, the refusal is its error.
      expect(h.ctx().status['vda']).toMatchObject({ state: 'failed', error: failure });
    });
  });

  describe('pivoting', () => {
    it('the first pivot refused: everything aborted, rolled back', async () => {
      const h = harness();
      await toPivoting(h);
      await h.answer('recordPivot');
      await h.send({ type: 'COPY.PIVOT_REFUSED', disk: 'vda', error: failure });
      expect(h.state()).toBe('abortingCopies');
      expect(h.received('vda')).toEqual([{ type: 'PIVOT' }, { type: 'ABORT' }]);
      expect(h.received('vdb')).toEqual([{ type: 'ABORT' }]);
      await h.send({ type: 'COPY.ENDED', disk: 'vda', pivoted: false, error: null });
      await h.send({ type: 'COPY.ENDED', disk: 'vdb', pivoted: false, error: null });
      expect(h.state()).toBe('rollingBack');
      expect(await h.answer('removeCreated')).toEqual({ remove: PLAN });
      expect(h.actor.getSnapshot().output).toMatchObject({ outcome: 'rolled-back', error: failure });
    });
    it('the second pivot refused after the first landed: partial, reported disk by disk', async () => {
      const h = harness();
      await toPivoting(h);
      await h.answer('recordPivot');
      await h.send({ type: 'COPY.ENDED', disk: 'vda', pivoted: true, error: null });
      await h.answer('recordPivot');
      await h.send({ type: 'COPY.PIVOT_REFUSED', disk: 'vdb', error: failure });
      expect(h.state()).toBe('abortingCopies');
      expect(h.received('vda')).toEqual([{ type: 'PIVOT' }]);
      expect(h.received('vdb')).toEqual([{ type: 'PIVOT' }, { type: 'ABORT' }]);
      await h.send({ type: 'COPY.ENDED', disk: 'vdb', pivoted: false, error: null });
      expect(h.state()).toBe('confirming');
      expect(await h.answer('confirmChains', { vda: ['/dst/vda-snap.qcow2'] })).toEqual({ disks: [VDA] });
      expect(await h.answer('release')).toEqual({ keep: [VDA], remove: [VDB] });
      expect(h.state()).toBe('partial');
      const out = h.actor.getSnapshot().output!;
      expect(out.outcome).toBe('partial');
      expect(out.error).toEqual(failure);
      expect(out.status['vda']?.state).toBe('pivoted');
      expect(out.status['vdb']).toMatchObject({ state: 'failed', error: failure });
    });
    it('a pivot refusal after that disk pivoted leaves it pivoted', async () => {
      const h = harness();
      await toPivoting(h);
      await h.answer('recordPivot');
      await h.send({ type: 'COPY.ENDED', disk: 'vda', pivoted: true, error: null });
      await h.send({ type: 'COPY.PIVOT_REFUSED', disk: 'vda', error: failure });
      expect(h.ctx().status['vda']).toMatchObject({ state: 'pivoted', error: null });
      // Never a failure for a pivot that happened: the migration ends migrated, without error.
      expect(h.ctx().error).toBeNull();
      await h.answer('recordPivot');
      await h.send({ type: 'COPY.ENDED', disk: 'vdb', pivoted: true, error: null });
      await h.answer('confirmChains', { vda: ['/dst/vda-snap.qcow2'], vdb: ['/dst/vdb-snap.qcow2'] });
      await h.answer('release');
      expect(h.state()).toBe('migrated');
      expect(h.actor.getSnapshot().output).toMatchObject({ outcome: 'migrated', error: null });
    });
    it('a pivot refused that landed after all: that disk pivoted without error, the other reported', async () => {
      const h = harness();
      await toPivoting(h);
      await h.answer('recordPivot');
      await h.send({ type: 'COPY.PIVOT_REFUSED', disk: 'vda', error: failure });
      expect(h.state()).toBe('abortingCopies');
      await h.send({ type: 'COPY.ENDED', disk: 'vda', pivoted: true, error: null });
      expect(h.ctx().status['vda']).toMatchObject({ state: 'pivoted', error: null });
      expect(h.ctx().error).toBeNull();
      await h.send({ type: 'COPY.ENDED', disk: 'vdb', pivoted: false, error: null });
      await h.answer('confirmChains', { vda: ['/dst/vda-snap.qcow2'] });
      await h.answer('release');
      const out = h.actor.getSnapshot().output!;
      expect(out.outcome).toBe('partial');
      expect(out.status['vda']).toMatchObject({ state: 'pivoted', error: null });
      expect(out.status['vdb']?.state).toBe('aborted');
      expect(out.error).toMatchObject({ code: 'VIR_ERR_OPERATION_FAILED' });
      expect(out.error?.message).toContain("disk 'vdb' ended before its pivot");
    });
    it('the write-ahead record failing: no pivot asked, everything aborted', async () => {
      const h = harness();
      await toPivoting(h);
      await h.refuse('recordPivot');
      expect(h.state()).toBe('abortingCopies');
      expect(h.ctx().error).toEqual(failure);
      expect(h.received('vda')).toEqual([{ type: 'ABORT' }]);
    });
    it('the other disk failing while the first is recorded: no pivot asked', async () => {
      const h = harness();
      await toPivoting(h);
      await h.send({ type: 'COPY.ENDED', disk: 'vdb', pivoted: false, error: failure });
      await h.answer('recordPivot');
      expect(h.state()).toBe('abortingCopies');
      expect(h.received('vda')).toEqual([{ type: 'ABORT' }]);
    });
    it('the current disk ended while it was recorded: no pivot asked, aborted', async () => {
      const h = harness();
      await toPivoting(h);
      await h.send({ type: 'COPY.ENDED', disk: 'vda', pivoted: false, error: null });
      await h.answer('recordPivot');
      expect(h.state()).toBe('abortingCopies');
      expect(h.received('vda')).toEqual([]);
    });
    it('the chains cannot be read after the pivots: released, partial with that error', async () => {
      const h = harness();
      await toPivoting(h);
      await h.answer('recordPivot');
      await h.send({ type: 'COPY.ENDED', disk: 'vda', pivoted: true, error: null });
      await h.answer('recordPivot');
      await h.send({ type: 'COPY.ENDED', disk: 'vdb', pivoted: true, error: null });
      await h.refuse('confirmChains');
      expect(h.state()).toBe('releasing');
      await h.answer('release');
      expect(h.state()).toBe('migrated');
      expect(h.actor.getSnapshot().output).toMatchObject({ outcome: 'partial', error: failure });
    });
    it('the release failing: partial', async () => {
      const h = harness();
      await toPivoting(h);
      await h.answer('recordPivot');
      await h.send({ type: 'COPY.ENDED', disk: 'vda', pivoted: true, error: null });
      await h.answer('recordPivot');
      await h.send({ type: 'COPY.ENDED', disk: 'vdb', pivoted: true, error: null });
      await h.answer('confirmChains', {});
      await h.refuse('release');
      expect(h.state()).toBe('partial');
      expect(h.ctx().error).toEqual(failure);
    });
  });

  describe('after a restart', () => {
    const recorded = (over: Partial<MigrationContext> = {}): MigrationContext => ({
      workflowId: 'wf-1',
      request: REQUEST,
      plan: PLAN,
      status: {
        vda: { ...pending, state: 'ready', jobId: 'job-a' },
        vdb: { ...pending, state: 'ready', jobId: 'job-b' },
      },
      pivotIndex: 0,
      spawned: true,
      canceled: false,
      resumed: false,
      error: null,
      cleanupFailed: false,
      verified: false,
      verifyFailed: false,
      sourceDeletion: null,
      ...over,
    });

    it('reconciles first, with the recorded context marked resumed', async () => {
      const h = harness({ resume: recorded() });
      expect(h.state()).toBe('reconciling');
      const input = (await h.answer('reconcile', { decision: 'rollback', disks: {} } satisfies Reconciled)) as {
        context: MigrationContext;
      };
      expect(input.context).toEqual({ ...recorded(), resumed: true, spawned: false });
    });
    it('forward: the pivoted disk kept, the running copy attached, no second verification', async () => {
      const h = harness({ resume: recorded({ pivotIndex: 0 }) });
      await h.answer('reconcile', { decision: 'forward', disks: { vda: 'pivoted', vdb: 'job' } } satisfies Reconciled);
      expect(h.state()).toBe('mirroring');
      expect(h.ctx()).toMatchObject({ verified: true, resumed: true, spawned: true });
      expect(h.ctx().status['vda']).toMatchObject({ state: 'pivoted', error: null });
      expect(h.ctx().status['vdb']).toMatchObject({ state: 'pending', error: null });
      expect(h.children.map((c) => c.input)).toEqual([{ domain: 'demo', plan: VDB, attach: true, abortAtOnce: false }]);
      expect(await h.answer('verifyBacking')).toEqual({ plan: [] });
      await h.send({ type: 'COPY.READY', disk: 'vdb' });
      // Pivoting resumes at the first disk not yet pivoted.
      expect(h.state()).toBe('pivoting.recording');
      expect(h.ctx().pivotIndex).toBe(1);
      expect(await h.answer('recordPivot')).toEqual({ disk: 'vdb' });
      expect(h.received('vdb')).toEqual([{ type: 'PIVOT' }]);
    });
    it('forward with a copy lost with the process: that disk failed, the rest aborted', async () => {
      const h = harness({ resume: recorded() });
      await h.answer('reconcile', { decision: 'forward', disks: { vda: 'pivoted', vdb: 'none' } } satisfies Reconciled);
      expect(h.ctx().status['vdb']).toMatchObject({
        state: 'failed',
        error: blockCopyError(
          'VIR_ERR_OPERATION_FAILED',
          "block copy of disk 'vdb' was lost with the process that ran it",
        ),
      });
      // Nothing live: straight on to confirming what pivoted.
      expect(h.state()).toBe('confirming');
      expect(await h.answer('confirmChains', {})).toEqual({ disks: [VDA] });
    });
    it('rollback: copies still running are taken over and aborted at once; the reason recorded', async () => {
      const h = harness({ resume: recorded() });
      await h.answer('reconcile', { decision: 'rollback', disks: { vda: 'job', vdb: 'none' } } satisfies Reconciled);
      expect(h.state()).toBe('abortingCopies');
      expect(h.ctx().error).toEqual(
        blockCopyError(
          'VIR_ERR_OPERATION_ABORTED',
          'storage migration interrupted before its pivot; rolled back after the restart',
        ),
      );
      expect(h.ctx().status['vda']?.state).toBe('pending');
      expect(h.ctx().status['vdb']?.state).toBe('aborted');
      expect(h.children.map((c) => c.input)).toEqual([{ domain: 'demo', plan: VDA, attach: true, abortAtOnce: true }]);
      await h.send({ type: 'COPY.ENDED', disk: 'vda', pivoted: false, error: null });
      expect(h.state()).toBe('rollingBack');
    });
    it('rollback keeps an earlier error and a pivoted disk', async () => {
      const h = harness({ resume: recorded({ error: failure }) });
      await h.answer('reconcile', {
        decision: 'rollback',
        disks: { vda: 'pivoted', vdb: 'none' },
      } satisfies Reconciled);
      expect(h.ctx().error).toEqual(failure);
      expect(h.ctx().status['vda']?.state).toBe('pivoted');
      expect(h.state()).toBe('confirming');
    });
    it('rollback before any plan: nothing to spawn', async () => {
      const h = harness({ resume: recorded({ plan: null, status: {} }) });
      await h.answer('reconcile', { decision: 'rollback', disks: {} } satisfies Reconciled);
      expect(h.children).toEqual([]);
      expect(h.state()).toBe('rollingBack');
      expect(await h.answer('removeCreated')).toEqual({ remove: [] });
      expect(h.actor.getSnapshot().output).toMatchObject({ outcome: 'failed' });
    });
    it('reconciling failing: failed with its error', async () => {
      const h = harness({ resume: recorded() });
      await h.refuse('reconcile');
      expect(h.state()).toBe('failed');
      expect(h.ctx().error).toEqual(failure);
    });
  });

  it('names children and forward states as the workflow reads them', () => {
    expect(copyChildId('vda')).toBe('copy:vda');
    for (const s of ['pivoting', 'pivoting.waiting', 'confirming', 'releasing.x'])
      expect(FORWARD_STATES.test(s)).toBe(true);
    for (const s of ['mirroring', 'xpivoting', 'pivotingx', 'abortingCopies', 'confirmingx'])
      expect(FORWARD_STATES.test(s), s).toBe(false);
  });

  it('without its IO actors, each throws naming itself', async () => {
    for (const name of Object.keys(migrateStorageMachine.implementations.actors)) {
      const logic = migrateStorageMachine.implementations.actors[name] as unknown as {
        config: (a: { input: unknown }) => unknown;
      };
      expect(() => logic.config({ input: {} }), name).toThrow(`migrate-storage actor '${name}' was not provided`);
    }
  });
});
