/**
 * Concurrency limits on the simulator: at most N copies run at once (per host, per destination
 * filesystem), the rest queue in order, visible in jobs() and in the store, durable across an
 * engine restart; a cancelled queued copy creates nothing. A random-command property test checks
 * "never more than N running" and FIFO on every state change.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MiB, SimulatedHypervisor, demoDisk } from '../../adapters/sim/index.js';
import { MemoryJobStore } from '../../adapters/store/index.js';
import { VirtualClock } from '../../src/core/clock.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import type { BlockCopyJob, EngineOptions } from '../../src/engine/engine.js';
import { createEngine } from '../../src/engine/engine.js';
import { JobSlots } from '../../src/engine/job-slots.js';

const DISKS = ['vda', 'vdb', 'vdc', 'vdd'] as const;
const dest = (disk: string, fs = 'fs1') => `/var/lib/blockcopy/${fs}/${disk}-copy.qcow2`;

function host(engineOptions: Partial<EngineOptions> = {}, clock = new VirtualClock(), sim?: SimulatedHypervisor) {
  const hv =
    sim ??
    new SimulatedHypervisor({
      clock,
      copyRate: 256 * MiB,
      domains: [{ name: 'd', disks: DISKS.map((d) => demoDisk(d, `/var/lib/blockcopy/${d}`)) }],
      directories: ['/var/lib/blockcopy/fs1', '/var/lib/blockcopy/fs2'],
    });
  const engine = createEngine({ hypervisor: hv, clock, pollIntervalMs: 200, ...engineOptions });
  const until = async (check: () => boolean) => {
    if (!(await clock.runUntil(check, 600_000, 20))) throw new Error('condition not reached in 10 virtual minutes');
  };
  return { clock, sim: hv, engine, until };
}

const live = (sim: SimulatedHypervisor) => sim.listJobs().filter((j) => j.live).length;

describe('JobSlots', () => {
  it('admits up to the limit, queues the rest in order, and starts them as slots free', () => {
    const slots = new JobSlots({ maxJobs: 2 });
    const started: string[] = [];
    const t = (jobId: string, order: number) => ({ jobId, filesystem: '', order, start: () => started.push(jobId) });
    expect(slots.admit(t('a', 1))).toBe(true);
    expect(slots.admit(t('b', 2))).toBe(true);
    expect(slots.admit(t('c', 3))).toBe(false);
    expect(slots.admit(t('d', 4))).toBe(false);
    // An older one (a recovered queued job) goes before the younger ones.
    expect(slots.admit(t('z', 0))).toBe(false);
    expect(slots.queued()).toEqual(['z', 'c', 'd']);
    slots.release('c'); // a queued one cancelled: no start
    expect(started).toEqual([]);
    slots.release('a');
    expect(started).toEqual(['z']);
    slots.release('b');
    expect(started).toEqual(['z', 'd']);
    expect(slots.peak).toBe(2);
  });

  it('per filesystem: a full filesystem does not hold up a copy to another one', () => {
    const slots = new JobSlots({ maxJobs: 3, maxJobsPerFilesystem: 1 });
    const started: string[] = [];
    const t = (jobId: string, filesystem: string, order: number) => ({
      jobId,
      filesystem,
      order,
      start: () => started.push(jobId),
    });
    expect(slots.admit(t('a', 'x', 1))).toBe(true);
    expect(slots.admit(t('b', 'x', 2))).toBe(false);
    expect(slots.admit(t('c', 'y', 3))).toBe(true);
    expect(slots.admit(t('d', 'x', 4))).toBe(false);
    slots.release('a');
    expect(started).toEqual(['b']);
    expect(slots.queued()).toEqual(['d']);
  });
});

describe('engine on the simulator: at most N copies at once', () => {
  it('queues the third copy, shows it queued, starts it (FIFO) when a slot frees', async () => {
    const { engine, sim, until } = host({ maxJobs: 2 });
    const jobs: BlockCopyJob[] = [];
    for (const disk of ['vda', 'vdb', 'vdc', 'vdd'])
      jobs.push((await engine.blockRebase('d', disk, dest(disk), 0, RebaseFlags.COPY))._unsafeUnwrap());
    const [a, b, c, d] = jobs as [BlockCopyJob, BlockCopyJob, BlockCopyJob, BlockCopyJob];
    expect(c.state()).toBe('queued');
    expect(d.state()).toBe('queued');
    expect(engine.jobs().map((j) => [j.disk, j.state()])).toEqual([
      ['vda', a.state()],
      ['vdb', b.state()],
      ['vdc', 'queued'],
      ['vdd', 'queued'],
    ]);
    expect(live(sim)).toBe(2);
    // A queued job refuses what needs a hypervisor job, and a pivot, with typed errors.
    expect((await engine.blockJobSetSpeed('d', 'vdc', 1, 0))._unsafeUnwrapErr()).toMatchObject({
      code: 'VIR_ERR_OPERATION_INVALID',
      detail: "block job on disk 'vdc' is queued and has not started",
    });
    expect((await engine.blockJobAbort('d', 'vdc', AbortFlags.PIVOT))._unsafeUnwrapErr()).toMatchObject({
      code: 'VIR_ERR_BLOCK_COPY_ACTIVE',
    });
    await until(() => a.state().startsWith('ready') && b.state().startsWith('ready'));
    expect(c.state()).toBe('queued');
    const pivotB = engine.blockJobAbort('d', 'vdb', AbortFlags.PIVOT);
    await until(() => c.state() !== 'queued');
    expect((await pivotB).isOk()).toBe(true);
    expect(d.state()).toBe('queued');
    expect(c.states()[0]).toBe('queued');
    expect(live(sim)).toBe(2);
    const pivotA = engine.blockJobAbort('d', 'vda', AbortFlags.PIVOT);
    await until(() => d.state() !== 'queued');
    expect((await pivotA).isOk()).toBe(true);
    await until(() => c.state().startsWith('ready') && d.state().startsWith('ready'));
    expect(d.states().slice(0, 3)).toEqual(['queued', 'validating', 'preparingDestination']);
  });

  it('cancelling a queued copy creates nothing and reaches no hypervisor', async () => {
    const store = new MemoryJobStore();
    const { engine, sim, until } = host({ maxJobs: 1, store });
    const a = (await engine.blockRebase('d', 'vda', dest('vda'), 0, RebaseFlags.COPY))._unsafeUnwrap();
    const b = (await engine.blockRebase('d', 'vdb', dest('vdb'), 0, RebaseFlags.COPY))._unsafeUnwrap();
    expect(b.state()).toBe('queued');
    const queuedRecord = (await store.load(b.jobId))._unsafeUnwrap();
    expect(queuedRecord?.state).toBe('queued');
    expect((await engine.blockJobAbort('d', 'vdb', 0)).isOk()).toBe(true);
    const result = await b.result;
    expect(result).toMatchObject({ outcome: 'canceled', pivoted: false, error: null });
    expect(result.states).toEqual(['queued', 'canceled']);
    expect((await sim.probeDestination(dest('vdb')))._unsafeUnwrap()).toEqual({ exists: false });
    expect(sim.listJobs().map((j) => j.id)).toEqual([a.jobId]);
    expect((await store.load(b.jobId))._unsafeUnwrap()?.end).toMatchObject({ outcome: 'canceled' });
    // Its slot place is gone: the next copy queues behind nothing but the running one.
    await until(() => a.state().startsWith('ready'));
    const c = (await engine.blockRebase('d', 'vdc', dest('vdc'), 0, RebaseFlags.COPY))._unsafeUnwrap();
    expect(c.state()).toBe('queued');
    void engine.blockJobAbort('d', 'vda', 0);
    await until(() => c.state().startsWith('ready'));
  });

  it('per destination filesystem: a second copy into fs1 waits, one into fs2 runs', async () => {
    const { engine } = host({
      slots: new JobSlots({ maxJobsPerFilesystem: 1, filesystemOf: (p) => Promise.resolve(p.split('/')[4]!) }),
    });
    const a = (await engine.blockRebase('d', 'vda', dest('vda', 'fs1'), 0, RebaseFlags.COPY))._unsafeUnwrap();
    const b = (await engine.blockRebase('d', 'vdb', dest('vdb', 'fs1'), 0, RebaseFlags.COPY))._unsafeUnwrap();
    const c = (await engine.blockRebase('d', 'vdc', dest('vdc', 'fs2'), 0, RebaseFlags.COPY))._unsafeUnwrap();
    expect(a.state()).not.toBe('queued');
    expect(b.state()).toBe('queued');
    expect(c.state()).not.toBe('queued');
  });

  it('queued copies survive an engine restart and start in their order when a slot frees', async () => {
    const store = new MemoryJobStore();
    const clock = new VirtualClock();
    const first = host({ maxJobs: 1, store, now: () => 1_000_000 + clock.now() }, clock);
    const a = (await first.engine.blockRebase('d', 'vda', dest('vda'), 0, RebaseFlags.COPY))._unsafeUnwrap();
    await clock.advance(10);
    const b = (await first.engine.blockRebase('d', 'vdb', dest('vdb'), 0, RebaseFlags.COPY))._unsafeUnwrap();
    await clock.advance(10);
    const c = (await first.engine.blockRebase('d', 'vdc', dest('vdc'), 0, RebaseFlags.COPY))._unsafeUnwrap();
    await first.until(() => a.state().startsWith('ready'));
    expect([b.state(), c.state()]).toEqual(['queued', 'queued']);
    await first.engine.shutdown();
    const listed = (await store.list())._unsafeUnwrap();
    expect(listed.map((r) => [r.disk, r.state])).toEqual([
      ['vdc', 'queued'],
      ['vdb', 'queued'],
      ['vda', 'ready.synced'],
    ]);

    const second = host({ maxJobs: 1, store, now: () => 1_000_000 + clock.now() }, clock, first.sim);
    const report = (await second.engine.recover())._unsafeUnwrap();
    expect(report.resumed.map((r) => [r.disk, r.state]).sort()).toEqual([
      ['vda', 'ready.synced'],
      ['vdb', 'queued'],
      ['vdc', 'queued'],
    ]);
    const jobs = () => new Map(second.engine.jobs().map((j) => [j.disk, j]));
    expect(jobs().get('vdb')?.state()).toBe('queued');
    expect(jobs().get('vdc')?.state()).toBe('queued');
    expect(live(second.sim)).toBe(1);
    const pivot = second.engine.blockJobAbort('d', 'vda', AbortFlags.PIVOT);
    await second.until(() => jobs().get('vdb')?.state().startsWith('ready') ?? false);
    expect((await pivot).isOk()).toBe(true);
    expect(jobs().get('vdc')?.state()).toBe('queued');
    void second.engine.blockJobAbort('d', 'vdb', 0);
    await second.until(() => jobs().get('vdc')?.state().startsWith('ready') ?? false);
    expect(live(second.sim)).toBe(1);
  });

  it('property: never more than N running, FIFO starts, cancelled queued copies touch nothing', async () => {
    type Cmd =
      | { kind: 'start'; disk: number }
      | { kind: 'abort'; disk: number }
      | { kind: 'pivot'; disk: number }
      | { kind: 'advance'; ms: number };
    const cmd: fc.Arbitrary<Cmd> = fc.oneof(
      fc.record({ kind: fc.constant('start' as const), disk: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ kind: fc.constant('abort' as const), disk: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ kind: fc.constant('pivot' as const), disk: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 10, max: 6_000 }) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.array(cmd, { minLength: 1, maxLength: 25 }),
        async (n, cmds) => {
          const { engine, sim, clock } = host({ maxJobs: n });
          // Every job id that reached the hypervisor (a destination created or a mirror started).
          const touched = new Set<string>();
          const startMirror = sim.startMirror.bind(sim);
          const createDestination = sim.createDestination.bind(sim);
          sim.startMirror = (spec) => (touched.add(spec.jobId), startMirror(spec));
          sim.createDestination = (spec) => (
            spec.claim !== undefined && touched.add(spec.claim),
            createDestination(spec)
          );
          let running = 0;
          const queuedOrder: string[] = [];
          const startedFromQueue: string[] = [];
          const cancelledQueued: { jobId: string }[] = [];
          const seen = new Map<string, string>();
          const violations: string[] = [];
          engine.jobStates$.subscribe((change) => {
            const before = seen.get(change.jobId);
            seen.set(change.jobId, change.state);
            const isRunning = (s: string | undefined) =>
              s !== undefined && s !== 'queued' && !['completed', 'canceled', 'failed'].includes(s);
            running += (isRunning(change.state) ? 1 : 0) - (isRunning(before) ? 1 : 0);
            // Collected, not thrown: a throw inside a subscriber would not fail the property.
            if (running > n || live(sim) > n) violations.push(`${running} running, ${live(sim)} live, limit ${n}`);
            if (change.state === 'queued') queuedOrder.push(change.jobId);
            if (before === 'queued' && change.state !== 'canceled') startedFromQueue.push(change.jobId);
          });
          for (const c of cmds) {
            if (c.kind === 'advance') await clock.advance(c.ms);
            else {
              const disk = DISKS[c.disk]!;
              if (c.kind === 'start') void engine.blockRebase('d', disk, dest(disk, `fs1`), 0, RebaseFlags.COPY);
              else {
                const job = engine.job('d', disk);
                if (c.kind === 'abort' && job?.state() === 'queued') cancelledQueued.push({ jobId: job.jobId });
                void engine.blockJobAbort('d', disk, c.kind === 'pivot' ? AbortFlags.PIVOT : 0);
              }
              await clock.advance(1);
            }
          }
          await clock.advance(60_000);
          expect(violations).toEqual([]);
          // FIFO: the queued jobs that started did so in the order they were queued.
          const cancelled = new Set(cancelledQueued.map((q) => q.jobId));
          const expected = queuedOrder.filter((id) => !cancelled.has(id));
          expect(startedFromQueue).toEqual(expected.slice(0, startedFromQueue.length));
          for (const q of cancelledQueued) expect(touched.has(q.jobId)).toBe(false);
          engine.close();
        },
      ),
      { numRuns: 40, seed: Number(process.env['FC_SEED'] ?? 20261128), verbose: 1 },
    );
  }, 120_000);
});
