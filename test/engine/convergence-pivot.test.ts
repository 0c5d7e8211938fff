/**
 * Convergence while a pivot is under way (virtual time, simulator): once the job chart has sent
 * block-job-complete (entered `pivoting`), the policy has ended for good. A guest that outruns
 * the mirror during a slow pivot, the deadline passing meanwhile, a pivot QEMU refuses (the job
 * ready again) and an engine restarted mid-pivot with the policy's record: no bandwidth raise, no
 * restart, no give-up, and the pivot's outcome is reported as it happened.
 */
import { ResultAsync, errAsync } from 'neverthrow';
import { describe, expect, it } from 'vitest';
import { MiB } from '../../adapters/sim/index.js';
import { SimulatedHypervisor } from '../../adapters/sim/hypervisor.js';
import { MemoryJobStore } from '../../adapters/store/memory.js';
import { VirtualClock } from '../../src/core/clock.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import type { HypervisorPort } from '../../src/core/hypervisor-port.js';
import type { BlockCopyJob } from '../../src/engine/engine.js';
import { createEngine } from '../../src/engine/engine.js';
import { DEST } from './harness.js';

/** Calls the policy could make (and the pivot), with the job state at the time. */
const WATCHED = ['setJobSpeed', 'cancelJob', 'startMirror', 'completeJob'];

interface Gate {
  open: () => void;
}

/**
 * The simulator behind a port that logs the watched calls and answers block-job-complete as told:
 * 'hold' until the gate opens, 'refuse' (QEMU's refusal) or 'never' (a process killed meanwhile).
 */
function port(sim: SimulatedHypervisor, log: string[], complete: 'hold' | 'refuse' | 'never' | 'pass', gate?: Gate) {
  let opened: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (opened = resolve));
  if (gate) gate.open = opened;
  return new Proxy(sim, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      const name = String(prop);
      return (...args: unknown[]) => {
        if (WATCHED.includes(name)) log.push(name);
        if (name === 'completeJob') {
          if (complete === 'never') return new ResultAsync(new Promise<never>(() => undefined));
          if (complete === 'hold' || complete === 'refuse')
            return new ResultAsync<void, unknown>(
              held.then(async () =>
                complete === 'refuse'
                  ? errAsync({
                      kind: 'qmp' as const,
                      errorClass: 'GenericError',
                      command: 'block-job-complete',
                      desc: `The active block job '${String(args[0])}' cannot be completed`,
                    })
                  : (value as (id: string) => ResultAsync<void, never>).call(target, String(args[0])),
              ),
            );
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as HypervisorPort;
}

const policy = { timeoutMs: 40_000, windowMs: 2_000, raiseBandwidthTo: 256 * MiB, writeBlocking: true };

async function readyThenOutrun(clock: VirtualClock, sim: SimulatedHypervisor, job: BlockCopyJob): Promise<void> {
  await clock.runUntil(() => job.state() === 'ready.synced', 600_000, 50);
  expect(job.state(), JSON.stringify(await Promise.race([job.result, Promise.resolve(null)]))).toBe('ready.synced');
  expect(clock.now()).toBeLessThan(policy.timeoutMs);
  // Ready (no speed limit applies after ready, QEMU's §0.7): now the copy engine manages only
  // 16 MiB/s and the guest writes 128 MiB/s.
  sim.setCopyRate(16 * MiB);
  sim.setGuestWriteRate('demo', 'vda', 128 * MiB)._unsafeUnwrap();
}

describe('convergence while a pivot is under way (simulator)', () => {
  it('control: without a pivot, the same outrun ready copy is escalated (raised, then restarted)', async () => {
    const clock = new VirtualClock();
    const sim = new SimulatedHypervisor({ clock });
    const log: string[] = [];
    const engine = createEngine({ hypervisor: port(sim, log, 'pass'), clock, pollIntervalMs: 500 });
    sim.setGuestWriteRate('demo', 'vda', 1 * MiB)._unsafeUnwrap();
    const job = (
      await engine.blockRebase('demo', 'vda', DEST, 64, RebaseFlags.COPY, { convergence: policy })
    )._unsafeUnwrap();
    await readyThenOutrun(clock, sim, job);
    const before = log.length;
    await clock.runUntil(() => job.states().includes('restarting.cancelling'), 60_000, 50);
    expect(log.slice(before).slice(0, 2)).toEqual(['setJobSpeed', 'cancelJob']);
    await engine.shutdown();
  });

  it('a slow pivot outrun by the guest and overtaken by the deadline: nothing raised, restarted or given up', async () => {
    const clock = new VirtualClock();
    const sim = new SimulatedHypervisor({ clock });
    const log: string[] = [];
    const gate: Gate = { open: () => undefined };
    const engine = createEngine({ hypervisor: port(sim, log, 'hold', gate), clock, pollIntervalMs: 500 });
    sim.setGuestWriteRate('demo', 'vda', 1 * MiB)._unsafeUnwrap();
    const job = (
      await engine.blockRebase('demo', 'vda', DEST, 64, RebaseFlags.COPY, { convergence: policy })
    )._unsafeUnwrap();
    await readyThenOutrun(clock, sim, job);
    const pivot = engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT | AbortFlags.ASYNC);
    await clock.runUntil(() => log.includes('completeJob'), 10_000, 50);
    const sent = log.length;
    // Many detector windows and the deadline pass while block-job-complete is unanswered.
    await clock.advance(45_000);
    expect(job.state()).toBe('pivoting');
    expect(log.slice(sent)).toEqual([]);
    // The guest pauses (QEMU's pivot waits for the mirror to catch up): the pivot goes through.
    sim.setGuestWriteRate('demo', 'vda', 0)._unsafeUnwrap();
    gate.open();
    let done = false;
    void job.result.then(() => (done = true));
    await clock.runUntil(() => done, 600_000, 50);
    expect((await pivot).isOk()).toBe(true);
    const result = await job.result;
    expect(result).toMatchObject({ outcome: 'completed', pivoted: true, error: null });
    expect(log.slice(sent).filter((c) => c !== 'completeJob')).toEqual([]);
    expect(job.states().slice(job.states().indexOf('pivoting'))).not.toContain('restarting.cancelling');
    expect((await sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe(DEST);
  });

  it('a pivot QEMU refuses after the deadline: the job is ready again and the policy stays ended', async () => {
    const clock = new VirtualClock();
    const sim = new SimulatedHypervisor({ clock });
    const log: string[] = [];
    const gate: Gate = { open: () => undefined };
    const engine = createEngine({ hypervisor: port(sim, log, 'refuse', gate), clock, pollIntervalMs: 500 });
    sim.setGuestWriteRate('demo', 'vda', 1 * MiB)._unsafeUnwrap();
    const job = (
      await engine.blockRebase('demo', 'vda', DEST, 64, RebaseFlags.COPY, { convergence: policy })
    )._unsafeUnwrap();
    await readyThenOutrun(clock, sim, job);
    const pivot = engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT | AbortFlags.ASYNC);
    await clock.runUntil(() => log.includes('completeJob'), 10_000, 50);
    const sent = log.length;
    await clock.advance(45_000); // past the deadline
    gate.open();
    await clock.runUntil(() => job.state() === 'ready.synced', 10_000, 50);
    expect(job.state()).toBe('ready.synced');
    // As libvirt: block-job-complete's refusal is the pivot call's answer, ASYNC or not.
    expect((await pivot)._unsafeUnwrapErr().message).toContain('cannot be completed');
    // Still outrun, windows and the deadline long past: the policy does nothing more.
    await clock.advance(20_000);
    expect(job.state()).toBe('ready.synced');
    expect(log.slice(sent)).toEqual([]);
    expect(sim.listJobs()[0]?.spec).toMatchObject({ speed: 64 * MiB, copyMode: 'background' });
    // The user decides: an abort leaves the guest on its source (once the guest pauses, the
    // consistent copy a soft cancel makes can be reached).
    sim.setGuestWriteRate('demo', 'vda', 0)._unsafeUnwrap();
    const abort = engine.blockJobAbort('demo', 'vda', 0);
    let done = false;
    void job.result.then(() => (done = true));
    await clock.runUntil(() => done, 600_000, 50);
    expect((await abort).isOk()).toBe(true);
    expect((await job.result).outcome).toBe('canceled');
  });

  it('an engine restarted mid-pivot, its policy recorded as still watching: the pivot refused, the policy never resumes', async () => {
    const clock = new VirtualClock();
    const sim = new SimulatedHypervisor({ clock });
    const store = new MemoryJobStore();
    const firstLog: string[] = [];
    const first = createEngine({ hypervisor: port(sim, firstLog, 'never'), clock, store, pollIntervalMs: 500 });
    sim.setGuestWriteRate('demo', 'vda', 1 * MiB)._unsafeUnwrap();
    const job = (
      await first.blockRebase('demo', 'vda', DEST, 64, RebaseFlags.COPY, {
        convergence: { ...policy, timeoutMs: 600_000 },
      })
    )._unsafeUnwrap();
    await readyThenOutrun(clock, sim, job);
    await clock.advance(1_000);
    const beforePivot = (await store.load(job.jobId))._unsafeUnwrap()!.side.convergence;
    expect(beforePivot?.snapshot).toMatchObject({ value: { escalating: 'watching' } });
    void first.blockJobAbort('demo', 'vda', AbortFlags.PIVOT | AbortFlags.ASYNC);
    await clock.runUntil(() => firstLog.includes('completeJob'), 10_000, 50);
    await clock.advance(1_000);
    const record = (await store.load(job.jobId))._unsafeUnwrap()!;
    expect(record.state).toBe('pivoting');
    expect(record.side.convergence).toMatchObject({ policy: { timeoutMs: 600_000 } });
    first.close();
    // Killed between the job's record (pivoting) and the policy's: the policy still says watching.
    (await store.save({ ...record, side: { ...record.side, convergence: beforePivot ?? null } }))._unsafeUnwrap();

    // The second process: QEMU refuses the pivot it asks again, the guest still outruns the mirror.
    const log: string[] = [];
    const gate: Gate = { open: () => undefined };
    const second = createEngine({ hypervisor: port(sim, log, 'refuse', gate), clock, store, pollIntervalMs: 500 });
    const report = (await second.recover())._unsafeUnwrap();
    expect(report.resumed.map((r) => r.jobId)).toEqual([job.jobId]);
    const resumed = second.jobById(job.jobId)!;
    await clock.advance(45_000); // many detector windows pass during the pivot
    gate.open();
    await clock.runUntil(() => resumed.state() === 'ready.synced', 10_000, 50);
    await clock.advance(20_000);
    expect(resumed.state()).toBe('ready.synced');
    expect(log.filter((c) => c !== 'completeJob')).toEqual([]);
    expect(sim.listJobs()[0]?.spec).toMatchObject({ speed: 64 * MiB, copyMode: 'background' });
    await second.shutdown();
  });
});
