/**
 * Benchmark part 2: the whole engine (job runners, RxJS event and poll feeds, the chart) driving
 * N concurrent copies on the simulated hypervisor in virtual time, from start through ready to
 * a confirmed pivot. Reports wall time, heap per job while mirroring, and machine events.
 */
import { MiB, SimulatedHypervisor } from '../adapters/sim/index.js';
import type { SimDomainSpec } from '../adapters/sim/index.js';
import { VirtualClock } from '../src/core/clock.js';
import { createEngine } from '../src/engine/engine.js';
import type { BlockCopyJob } from '../src/engine/engine.js';
import { AbortFlags, RebaseFlags } from '../src/core/flags.js';
import { heapUsed } from './heap.js';

export interface EngineRow {
  readonly wallSeconds: number;
  readonly heapBytesPerJob: number;
  readonly machineEvents: number;
}

export async function measureEngine(jobs: number): Promise<EngineRow> {
  const disks = Array.from({ length: jobs }, (_, i) => ({
    name: `vd${i}`,
    virtualSize: 64 * MiB,
    chain: [
      { path: `/fleet/vd${i}-top.qcow2`, allocated: 8 * MiB },
      { path: `/fleet/vd${i}-base.qcow2`, allocated: 64 * MiB },
    ],
  }));
  // A fleet: many domains with a disk each.
  const domains: SimDomainSpec[] = disks.map((disk, i) => ({ name: `vm${i}`, disks: [disk] }));
  const clock = new VirtualClock();
  const sim = new SimulatedHypervisor({ clock, domains, copyRate: 1024 * MiB });
  let machineEvents = 0;
  const engine = createEngine({
    hypervisor: sim,
    clock,
    pollIntervalMs: 500,
    inspect: (e) => {
      if (e.type === '@xstate.event') machineEvents++;
    },
    jobId: (_domain, disk) => `copy-${disk}`,
  });
  const before = heapUsed();
  const t0 = performance.now();
  const started = await Promise.all(
    disks.map((d) =>
      engine.blockRebase(`vm${d.name.slice(2)}`, d.name, `/fleet/${d.name}-copy.qcow2`, 0, RebaseFlags.COPY),
    ),
  );
  const handles: BlockCopyJob[] = started.map((r) => r._unsafeUnwrap());
  await clock.advance(50);
  const heapBytesPerJob = (heapUsed() - before) / jobs;
  const allReady = await clock.runUntil(() => handles.every((h) => h.state().startsWith('ready')), 600_000, 100);
  if (!allReady) throw new Error('not every job reached ready');
  const pivots = await Promise.all(
    disks.map((d) => engine.blockJobAbort(`vm${d.name.slice(2)}`, d.name, AbortFlags.PIVOT | AbortFlags.ASYNC)),
  );
  if (pivots.some((p) => p.isErr())) throw new Error('a pivot was refused');
  let done = 0;
  for (const h of handles) void h.result.then((r) => (done += r.outcome === 'completed' ? 1 : 0));
  await clock.runUntil(() => done === jobs, 600_000, 100);
  if (done !== jobs) throw new Error(`only ${done} of ${jobs} jobs completed`);
  const wallSeconds = (performance.now() - t0) / 1000;
  engine.close();
  await sim.close();
  return { wallSeconds, heapBytesPerJob, machineEvents };
}
