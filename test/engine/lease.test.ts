/**
 * Lease renewal: an engine keeps renewing the lease of a job that runs for longer than a lease
 * lasts, so that an engine on another host (judged by the lease expiry alone) leaves the job
 * alone; once the first engine is gone and its lease has run out, the other one takes it over.
 */
import { describe, expect, it } from 'vitest';
import { MiB, SimulatedHypervisor } from '../../adapters/sim/index.js';
import { MemoryJobStore } from '../../adapters/store/memory.js';
import { VirtualClock } from '../../src/core/clock.js';
import { RebaseFlags } from '../../src/core/flags.js';
import { createEngine } from '../../src/engine/engine.js';
import { LEASE_MS } from '../../src/engine/lease.js';
import { DEST } from './harness.js';

/** Two engines on two other hosts (never this one: a local holder is judged by its process). */
const HOST_A = { id: 'host-a.example:4242:1' };
const HOST_B = { id: 'host-b.example:4343:1' };

describe('lease renewal', () => {
  it('a job that runs for ten leases keeps its lease; another host takes it only after its engine is gone', async () => {
    const clock = new VirtualClock();
    // 1 GiB at 8 MiB/s: two minutes of copying, then ready for as long as nobody ends it.
    const sim = new SimulatedHypervisor({ clock, copyRate: 8 * MiB });
    const store = new MemoryJobStore();
    const now = () => clock.now();
    const a = createEngine({ hypervisor: sim, clock, store, owner: HOST_A, now, pollIntervalMs: 500 });
    const job = (await a.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY))._unsafeUnwrap();
    const leases: number[] = [];
    for (let i = 0; i < 10; i++) {
      await clock.advance(LEASE_MS);
      const record = (await store.load(job.jobId))._unsafeUnwrap()!;
      expect(record.owner).toBe(HOST_A.id);
      leases.push(record.leaseUntil! - clock.now());
    }
    // Every time we looked, the lease still had time to run.
    expect(leases.every((left) => left > 0)).toBe(true);
    expect(job.state()).toMatch(/^ready/);

    const b = createEngine({ hypervisor: sim, clock, store, owner: HOST_B, now, pollIntervalMs: 500 });
    const early = (await b.recover())._unsafeUnwrap();
    expect(early.resumed).toEqual([]);
    expect(early.skipped.map((s) => s.reason)).toEqual([`run by a live process (${HOST_A.id})`]);

    a.close(); // host A goes away: nobody renews
    await clock.advance(LEASE_MS + 1);
    const late = (await b.recover())._unsafeUnwrap();
    expect(late.resumed.map((r) => r.jobId)).toEqual([job.jobId]);
    expect((await store.load(job.jobId))._unsafeUnwrap()!.owner).toBe(HOST_B.id);
    b.close();
    await sim.close();
  });

  it('an engine with no job left keeps no renewal timer (the process can exit)', async () => {
    // The same copy with and without a store: once it has ended, as many timers wait.
    const timersLeft = async (withStore: boolean) => {
      const clock = new VirtualClock();
      const sim = new SimulatedHypervisor({ clock });
      const store = withStore ? { store: new MemoryJobStore() } : {};
      const a = createEngine({ hypervisor: sim, clock, ...store, now: () => clock.now(), pollIntervalMs: 500 });
      const job = (await a.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY))._unsafeUnwrap();
      await clock.runUntil(() => job.state().startsWith('ready'), 600_000, 50);
      await clock.advance(LEASE_MS); // renewals ran meanwhile
      void a.blockJobAbort('demo', 'vda', 0);
      let done = false;
      void job.result.then(() => (done = true));
      await clock.runUntil(() => done, 600_000, 50);
      await clock.advance(LEASE_MS);
      const left = clock.pending;
      a.close();
      await sim.close();
      return left;
    };
    expect(await timersLeft(true)).toBe(await timersLeft(false));
  });
});
