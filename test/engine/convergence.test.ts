/**
 * Convergence in virtual time: the detector on its own, the policy chart on its own, and whole
 * copies on the simulator whose guest writes faster than the throttled mirror copies (escalated
 * to write-blocking and pivoted; given up at the deadline with the guest on its source).
 */
import { describe, expect, it } from 'vitest';
import { createActor, fromPromise } from 'xstate';
import { MiB } from '../../adapters/sim/index.js';
import { ConvergenceDetector, checkConvergencePolicy } from '../../src/core/convergence.js';
import type { ResolvedConvergencePolicy } from '../../src/core/convergence.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import { convergencePolicyMachine } from '../../machines/convergence-policy.js';
import type { BlockCopyError } from '../../src/core/errors.js';
import { DEST, engineOnSim } from './harness.js';
import { VirtualClock } from '../../src/core/clock.js';
import { createEngine } from '../../src/engine/engine.js';
import { MemoryJobStore } from '../../adapters/store/index.js';
import { stateName } from '../../src/engine/job-runner.js';

describe('ConvergenceDetector', () => {
  it('says "not converging" once per window in which remaining reaches no new low', () => {
    const d = new ConvergenceDetector(5_000);
    // remaining grows: 100, 110, 120, ... sampled every 500 ms
    const verdicts: number[] = [];
    for (let t = 0; t <= 12_000; t += 500) if (d.sample(0, 100 + t / 50, t)) verdicts.push(t);
    expect(verdicts).toEqual([5_000, 10_000]);
  });

  it('stays quiet while remaining keeps shrinking, however slowly, and at zero', () => {
    const d = new ConvergenceDetector(1_000);
    for (let t = 0; t <= 60_000; t += 100) expect(d.sample(t / 100, 1_000_000, t)).toBe(false);
    const z = new ConvergenceDetector(1_000);
    for (let t = 0; t <= 10_000; t += 100) expect(z.sample(500, 500, t)).toBe(false);
  });

  it('a bumpy copy that sets a new low within each window converges; minShrinkBytes ignores creeping', () => {
    const d = new ConvergenceDetector(2_000);
    // up and down, but every 1.5 s a new low
    const remaining = (t: number) => 1_000_000 - Math.floor(t / 1_500) * 1_000 + (t % 1_500 === 500 ? 50_000 : 0);
    for (let t = 0; t <= 30_000; t += 500) expect(d.sample(0, remaining(t), t)).toBe(false);
    const creeping = new ConvergenceDetector(2_000, 4_096);
    const verdicts: number[] = [];
    for (let t = 0; t <= 4_000; t += 500) if (creeping.sample(t / 500, 1_000_000, t)) verdicts.push(t);
    expect(verdicts).toEqual([2_000, 4_000]);
  });

  it('reset() forgets the window (a pause, an escalation)', () => {
    const d = new ConvergenceDetector(1_000);
    d.sample(0, 100, 0);
    d.reset();
    expect(d.sample(0, 200, 1_500)).toBe(false);
    expect(d.sample(0, 200, 2_500)).toBe(true);
  });

  it('checks a policy and fills in its defaults; bad values are typed errors', () => {
    expect(checkConvergencePolicy({ timeoutMs: 30_000 })._unsafeUnwrap()).toEqual({
      timeoutMs: 30_000,
      windowMs: 10_000,
      raiseBandwidthTo: 0,
      writeBlocking: true,
      minShrinkBytes: 0,
    });
    for (const bad of [
      null,
      {},
      { timeoutMs: 0 },
      { timeoutMs: 1, windowMs: -1 },
      { timeoutMs: 1, raiseBandwidthTo: 1.5 },
    ])
      expect(checkConvergencePolicy(bad)._unsafeUnwrapErr()).toMatchObject({ code: 'VIR_ERR_INVALID_ARG', number: 8 });
  });
});

function policyActor(
  policy: Partial<ResolvedConvergencePolicy>,
  speed: number,
  copyMode: 'background' | 'write-blocking',
) {
  const calls: string[] = [];
  let gaveUp: BlockCopyError | null = null;
  const actor = createActor(
    convergencePolicyMachine.provide({
      actors: {
        raiseBandwidth: fromPromise(({ input }: { input: { jobId: string; speed: number } }) => {
          calls.push(`raise ${input.speed}`);
          return Promise.resolve(undefined);
        }),
        restartWriteBlocking: fromPromise(({ input }: { input: { jobId: string; speed: number } }) => {
          calls.push(`restart ${input.speed}`);
          return Promise.resolve(undefined);
        }),
        giveUp: fromPromise(({ input }: { input: { jobId: string; error: BlockCopyError } }) => {
          gaveUp = input.error;
          calls.push('give up');
          return Promise.resolve(undefined);
        }),
      },
    }),
    {
      input: {
        jobId: 'job-1',
        disk: 'vda',
        policy: {
          timeoutMs: 60_000,
          windowMs: 1_000,
          raiseBandwidthTo: 0,
          writeBlocking: true,
          minShrinkBytes: 0,
          ...policy,
        },
        speed,
        copyMode,
      },
    },
  );
  actor.start();
  const tick = () => new Promise((r) => setTimeout(r, 0));
  return { actor, calls, gaveUp: () => gaveUp, tick };
}

describe('convergence policy chart', () => {
  it('escalates in order: raise the bandwidth, restart write-blocking, then only the deadline', async () => {
    const { actor, calls, gaveUp, tick } = policyActor({ raiseBandwidthTo: 32 * MiB }, 8 * MiB, 'background');
    actor.send({ type: 'NOT_CONVERGING', remaining: 100 });
    await tick();
    expect(stateName(actor.getSnapshot().value)).toBe('escalating.watchingRaised');
    actor.send({ type: 'NOT_CONVERGING', remaining: 200 });
    await tick();
    expect(stateName(actor.getSnapshot().value)).toBe('escalating.watchingWriteBlocking');
    actor.send({ type: 'NOT_CONVERGING', remaining: 300 });
    expect(stateName(actor.getSnapshot().value)).toBe('escalating.exhausted');
    actor.send({ type: 'DEADLINE', jobReady: false });
    await tick();
    expect(stateName(actor.getSnapshot().value)).toBe('gaveUp');
    expect(calls).toEqual([`raise ${32 * MiB}`, `restart ${32 * MiB}`, 'give up']);
    expect(gaveUp()).toMatchObject({
      code: 'VIR_ERR_OPERATION_TIMEOUT',
      number: 68,
      detail:
        "block copy of disk 'vda' did not converge within 60000 ms (bandwidth raised to 32 MiB/s, then restarted in write-blocking mode, 300 bytes still to copy); the copy was cancelled and the guest stays on its source",
    });
  });

  it('skips what cannot help: an unthrottled copy is not raised, a write-blocking one not restarted', async () => {
    const unthrottled = policyActor({}, 0, 'background');
    unthrottled.actor.send({ type: 'NOT_CONVERGING', remaining: 1 });
    await unthrottled.tick();
    expect(unthrottled.calls).toEqual(['restart 0']);
    const blocking = policyActor({}, 8 * MiB, 'write-blocking');
    blocking.actor.send({ type: 'NOT_CONVERGING', remaining: 1 });
    await blocking.tick();
    blocking.actor.send({ type: 'NOT_CONVERGING', remaining: 1 });
    expect(blocking.calls).toEqual(['raise 0']);
    expect(stateName(blocking.actor.getSnapshot().value)).toBe('escalating.exhausted');
    const slower = policyActor({ raiseBandwidthTo: 4 * MiB, writeBlocking: false }, 8 * MiB, 'background');
    slower.actor.send({ type: 'NOT_CONVERGING', remaining: 1 });
    expect(stateName(slower.actor.getSnapshot().value)).toBe('escalating.exhausted');
    expect(slower.calls).toEqual([]);
  });

  it('a deadline while the job is ready gives nothing up; the job ending stops the policy', async () => {
    const { actor, calls, tick } = policyActor({}, 8 * MiB, 'background');
    actor.send({ type: 'DEADLINE', jobReady: true });
    await tick();
    expect(stateName(actor.getSnapshot().value)).toBe('escalating.watching');
    actor.send({ type: 'JOB.ENDED' });
    expect(actor.getSnapshot().status).toBe('done');
    expect(stateName(actor.getSnapshot().value)).toBe('stopped');
    expect(calls).toEqual([]);
  });
});

describe('engine on the simulator: a guest that outruns a throttled mirror', () => {
  const outrun = { raiseBandwidthTo: 16 * MiB, windowMs: 5_000 };

  it('raises the bandwidth, restarts in write-blocking mode, becomes ready and pivots', async () => {
    const { engine, sim, clock, events, until, settle } = engineOnSim();
    sim.setGuestWriteRate('demo', 'vda', 64 * MiB)._unsafeUnwrap();
    const job = (
      await engine.blockRebase('demo', 'vda', DEST, 8, RebaseFlags.COPY, {
        convergence: { timeoutMs: 600_000, ...outrun },
      })
    )._unsafeUnwrap();
    const speeds: number[] = [];
    job.progress$.subscribe((p) => {
      if (speeds[speeds.length - 1] !== p.speed) speeds.push(p.speed);
    });
    await clock.advance(8_000);
    // Remaining grows at 64 - 8 MiB/s: the first window ends in a raise, not a restart.
    expect(job.states()).not.toContain('restarting.cancelling');
    expect(sim.listJobs()[0]?.speed).toBe(16 * MiB);
    await until(job, 'ready');
    expect(job.states()).toEqual([
      'validating',
      'preparingDestination',
      'starting',
      'mirroring.running',
      'restarting.cancelling',
      'restarting.dismissing',
      'starting',
      'mirroring.running',
      'ready.synced',
    ]);
    expect(job.plan).toMatchObject({ copyMode: 'write-blocking', speed: 16 * MiB });
    expect(sim.listJobs()).toHaveLength(1);
    expect(sim.listJobs()[0]?.spec).toMatchObject({ copyMode: 'write-blocking', speed: 16 * MiB });
    expect(speeds).toEqual([8 * MiB, 16 * MiB]);
    // The guest is still writing: the pivot goes through in write-blocking mode.
    const pivot = engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT);
    const result = await settle(job);
    expect((await pivot).isOk()).toBe(true);
    expect(result).toMatchObject({ outcome: 'completed', pivoted: true, error: null });
    expect((await sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe(DEST);
    expect(events.map((e) => e.status)).toEqual(['READY', 'COMPLETED']);
  });

  it('gives up at the deadline: VIR_ERR_OPERATION_TIMEOUT, the guest on its source, the created file removed', async () => {
    const { engine, sim, clock, events, settle } = engineOnSim();
    sim.setGuestWriteRate('demo', 'vda', 64 * MiB)._unsafeUnwrap();
    const job = (
      await engine.blockRebase('demo', 'vda', DEST, 8, RebaseFlags.COPY, {
        convergence: { timeoutMs: 60_000, writeBlocking: false, ...outrun },
      })
    )._unsafeUnwrap();
    await clock.advance(59_000);
    expect(job.state()).toBe('mirroring.running');
    const result = await settle(job);
    expect(clock.now()).toBeGreaterThanOrEqual(60_000);
    expect(result).toMatchObject({ outcome: 'failed', pivoted: false, destinationConsistent: false });
    expect(result.error).toMatchObject({ code: 'VIR_ERR_OPERATION_TIMEOUT', number: 68 });
    expect(result.error?.detail).toMatch(
      /^block copy of disk 'vda' did not converge within 60000 ms \(bandwidth raised to 16 MiB\/s, \d+ bytes still to copy\); the copy was cancelled and the guest stays on its source$/,
    );
    expect(result.states.slice(-3)).toEqual(['aborting', 'finishing', 'failed']);
    expect((await sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe('/var/lib/blockcopy/snap2.qcow2');
    expect((await sim.probeDestination(DEST))._unsafeUnwrap()).toEqual({ exists: false });
    expect(sim.listJobs()).toEqual([]);
    expect(events.map((e) => e.status)).toEqual(['FAILED']);
  });

  it('a reused destination is kept across the restart and after giving up, never removed', async () => {
    const { engine, sim, clock, settle } = engineOnSim({
      images: [{ path: DEST, format: 'qcow2', virtualSize: 1024 * MiB }],
    });
    sim.setGuestWriteRate('demo', 'vda', 64 * MiB)._unsafeUnwrap();
    const job = (
      await engine.blockRebase('demo', 'vda', DEST, 8, RebaseFlags.COPY | RebaseFlags.REUSE_EXT, {
        convergence: { timeoutMs: 600_000, ...outrun },
      })
    )._unsafeUnwrap();
    await clock.runUntil(() => job.states().includes('restarting.dismissing'), 600_000, 50);
    expect(job.states()).toContain('restarting.dismissing');
    expect((await sim.probeDestination(DEST))._unsafeUnwrap()).toMatchObject({ exists: true });
    const abort = engine.blockJobAbort('demo', 'vda', 0);
    const result = await settle(job);
    expect((await abort).isOk()).toBe(true);
    expect(result.outcome).toBe('canceled');
    expect((await sim.probeDestination(DEST))._unsafeUnwrap()).toMatchObject({ exists: true });
  });

  it('a copy that converges by itself is left alone (no escalation, no give-up)', async () => {
    const { engine, sim, clock, until } = engineOnSim();
    sim.setGuestWriteRate('demo', 'vda', 4 * MiB)._unsafeUnwrap();
    const job = (
      await engine.blockRebase('demo', 'vda', DEST, 64, RebaseFlags.COPY, {
        convergence: { timeoutMs: 600_000, ...outrun },
      })
    )._unsafeUnwrap();
    await until(job, 'ready');
    await clock.advance(700_000);
    expect(job.state()).toBe('ready.synced');
    expect(job.states()).not.toContain('restarting.cancelling');
    expect(sim.listJobs()[0]?.spec.speed).toBe(64 * MiB);
    expect(sim.listJobs()[0]?.speed).toBe(64 * MiB);
  });

  it('a bad policy is refused before anything starts; the engine default applies to every copy', async () => {
    const { engine, sim } = engineOnSim();
    const bad = await engine.blockRebase('demo', 'vda', DEST, 8, RebaseFlags.COPY, {
      convergence: { timeoutMs: -5 },
    });
    expect(bad._unsafeUnwrapErr()).toMatchObject({ code: 'VIR_ERR_INVALID_ARG' });
    expect(sim.listJobs()).toEqual([]);
    expect((await sim.probeDestination(DEST))._unsafeUnwrap()).toEqual({ exists: false });
    const withDefault = engineOnSim(
      {},
      {
        convergence: { timeoutMs: 30_000, writeBlocking: false, windowMs: 2_000, raiseBandwidthTo: 16 * MiB },
      },
    );
    withDefault.sim.setGuestWriteRate('demo', 'vda', 64 * MiB)._unsafeUnwrap();
    const job = (await withDefault.engine.blockRebase('demo', 'vda', DEST, 8, RebaseFlags.COPY))._unsafeUnwrap();
    const result = await withDefault.settle(job);
    expect(result.error).toMatchObject({ code: 'VIR_ERR_OPERATION_TIMEOUT' });
  });
});

describe('a recovered copy keeps its convergence policy', () => {
  it('a restarted engine gives up at the deadline counted from the original start, not from the restart', async () => {
    const clock = new VirtualClock();
    const store = new MemoryJobStore();
    const now = () => 1_000_000 + clock.now();
    const first = engineOnSim({ clock }, { store, now, clock });
    first.sim.setGuestWriteRate('demo', 'vda', 64 * MiB)._unsafeUnwrap();
    const job = (
      await first.engine.blockRebase('demo', 'vda', DEST, 8, RebaseFlags.COPY, {
        convergence: { timeoutMs: 60_000, windowMs: 5_000, raiseBandwidthTo: 16 * MiB, writeBlocking: false },
      })
    )._unsafeUnwrap();
    await clock.advance(30_000);
    expect(first.sim.listJobs()[0]?.speed).toBe(16 * MiB);
    await first.engine.shutdown();
    const record = (await store.load(job.jobId))._unsafeUnwrap()!;
    expect(record.side.convergence).toMatchObject({ policy: { timeoutMs: 60_000 }, startedAt: 1_000_000 });

    const second = createEngine({ hypervisor: first.sim, clock, store, now, pollIntervalMs: 500 });
    const report = (await second.recover())._unsafeUnwrap();
    expect(report.resumed.map((r) => r.jobId)).toEqual([job.jobId]);
    const resumed = second.jobById(job.jobId)!;
    let done = false;
    void resumed.result.then(() => (done = true));
    await clock.runUntil(() => done, 120_000, 50);
    const result = await resumed.result;
    expect(result.error).toMatchObject({ code: 'VIR_ERR_OPERATION_TIMEOUT' });
    // The step reached before the restart is remembered: the message names the raise.
    expect(result.error?.detail).toContain('bandwidth raised to 16 MiB/s');
    expect(clock.now()).toBeGreaterThanOrEqual(60_000);
    expect(clock.now()).toBeLessThan(62_000);
    expect((await first.sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe('/var/lib/blockcopy/snap2.qcow2');
  });
});
