/**
 * The job's record carries its progress for `list` (the statechart never sees progress): QEMU
 * makes the job ready with JOB_STATUS_CHANGE before BLOCK_JOB_READY carries len and offset, so
 * the record written at the state change holds the last poll's figure; the READY event's extent
 * is then recorded once more.
 */
import { Subject, filter, merge } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import { MemoryJobStore } from '../../adapters/store/memory.js';
import { VirtualClock } from '../../src/core/clock.js';
import { RebaseFlags } from '../../src/core/flags.js';
import type { HypervisorEvent, HypervisorPort } from '../../src/core/hypervisor-port.js';
import { createEngine } from '../../src/engine/engine.js';
import { DEST } from './harness.js';

describe('the record of a ready job', () => {
  it('holds the full extent BLOCK_JOB_READY reported, even when it came after the state change was recorded', async () => {
    const clock = new VirtualClock();
    const sim = new SimulatedHypervisor({ clock, copyRate: 64 * 1024 * 1024 });
    // BLOCK_JOB_READY held back until the test lets it through (as when it comes in a later read).
    const held: HypervisorEvent[] = [];
    const release = new Subject<HypervisorEvent>();
    const events$ = merge(
      sim.events$.pipe(
        filter((e) => {
          if (e.kind !== 'job-ready') return true;
          held.push(e);
          return false;
        }),
      ),
      release,
    );
    const port = new Proxy(sim, {
      get: (target, prop, receiver) => (prop === 'events$' ? events$ : Reflect.get(target, prop, receiver)),
    }) as HypervisorPort;
    const store = new MemoryJobStore();
    // No poll in the way: only the events move the job (and the last poll is far behind).
    const engine = createEngine({ hypervisor: port, clock, store, pollIntervalMs: 3_600_000 });
    const job = (await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY))._unsafeUnwrap();
    expect(await clock.runUntil(() => job.state() === 'ready.synced', 600_000, 50)).toBe(true);
    const recorded = async () => (await store.load(job.jobId))._unsafeUnwrap()!;
    await clock.runUntil(() => false, 1_000, 50);
    const before = await recorded();
    expect(before.state).toBe('ready.synced');
    expect(before.side.progress?.cur ?? 0).toBeLessThan(before.side.progress?.end ?? 1);

    expect(held).toHaveLength(1);
    release.next(held[0]!);
    await clock.runUntil(() => false, 1_000, 50);
    const after = (await recorded()).side.progress!;
    expect(after.end).toBeGreaterThan(0);
    expect(after.cur).toBe(after.end);
    engine.close();
  });
});
