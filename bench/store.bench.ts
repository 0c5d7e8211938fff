/**
 * `npm run bench:store`: what persisting costs. Side by side in one run: (1) start → ready and
 * pivot latency of a copy on the simulator in real time (default poll interval) with the SQLite
 * store against the in-memory store, rounds interleaved; the same in virtual time, where only CPU
 * counts, as the worst case; (2) recovery of 10,000 stored jobs (mirrors at ready on the
 * simulator) by a fresh engine, wall and CPU time (CPU time tells a loaded machine from a slow
 * recovery); (3) SQLite store bytes per job. BENCH_RECOVERY_JOBS sets the fleet (default 10,000);
 * BENCH_ONLY=recovery skips the latency part.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MiB, SimulatedHypervisor } from '../adapters/sim/index.js';
import type { SimDomainSpec } from '../adapters/sim/index.js';
import { MemoryJobStore } from '../adapters/store/memory.js';
import { openSqliteStore } from '../adapters/store/sqlite.js';
import { VirtualClock, systemClock } from '../src/core/clock.js';
import type { Clock } from '../src/core/clock.js';
import { AbortFlags, RebaseFlags } from '../src/core/flags.js';
import type { JobStore } from '../src/core/job-store.js';
import { createEngine } from '../src/engine/engine.js';

const dir = mkdtempSync(join(tmpdir(), 'blockcopy-store-bench-'));
let n = 0;
const sqlite = () => openSqliteStore(join(dir, `s${n++}.db`))._unsafeUnwrap();

async function oneCopy(store: JobStore, virtual: boolean): Promise<{ ready: number; pivot: number }> {
  const clock: Clock & Partial<VirtualClock> = virtual ? new VirtualClock() : systemClock;
  const sim = new SimulatedHypervisor({ clock, copyRate: 512 * MiB });
  const engine = createEngine({ hypervisor: sim, clock, store, pollIntervalMs: virtual ? 500 : 100 });
  const wait = async (done: () => boolean) => {
    if (clock instanceof VirtualClock) await clock.runUntil(done, 600_000, 10);
    else while (!done()) await new Promise((r) => setTimeout(r, 1));
  };
  const t0 = performance.now();
  const job = (
    await engine.blockRebase('demo', 'vda', `/var/lib/blockcopy/c${n++}.qcow2`, 0, RebaseFlags.COPY)
  )._unsafeUnwrap();
  await wait(() => job.state().startsWith('ready'));
  const t1 = performance.now();
  let ended = false;
  void engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT).then(() => (ended = true));
  await wait(() => ended);
  const t2 = performance.now();
  await engine.shutdown();
  await sim.close();
  return { ready: t1 - t0, pivot: t2 - t1 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function latency(virtual: boolean, rounds: number) {
  const mem = { ready: [] as number[], pivot: [] as number[] };
  const sql = { ready: [] as number[], pivot: [] as number[] };
  const memStore = new MemoryJobStore();
  const sqlStore = sqlite();
  for (let i = 0; i < rounds + 2; i++) {
    const a = await oneCopy(memStore, virtual);
    const b = await oneCopy(sqlStore, virtual);
    if (i < 2) continue; // warm-up
    mem.ready.push(a.ready);
    mem.pivot.push(a.pivot);
    sql.ready.push(b.ready);
    sql.pivot.push(b.pivot);
  }
  sqlStore.close();
  const row = (what: 'ready' | 'pivot') =>
    `  ${what === 'ready' ? 'start → ready' : 'pivot        '}  memory ${median(mem[what]).toFixed(2)} ms   sqlite ${median(sql[what]).toFixed(2)} ms   ratio ${(median(sql[what]) / median(mem[what])).toFixed(3)}×`;
  console.log(row('ready'));
  console.log(row('pivot'));
}

/** A store of `jobs` mirrors at ready, left by an engine that went away (nothing of it stays in memory). */
async function storedFleet(jobs: number) {
  const domains: SimDomainSpec[] = Array.from({ length: jobs }, (_, i) => ({
    name: `vm${i}`,
    disks: [{ name: 'vda', virtualSize: 64 * MiB, chain: [{ path: `/fleet/vm${i}.qcow2`, allocated: 8 * MiB }] }],
  }));
  const clock = new VirtualClock();
  const sim = new SimulatedHypervisor({ clock, domains, copyRate: 1024 * MiB });
  const store = sqlite();
  const a = createEngine({ hypervisor: sim, clock, store, pollIntervalMs: 500, jobId: (d) => `copy-${d}` });
  const started = await Promise.all(
    domains.map((d) => a.blockRebase(d.name, 'vda', `/fleet/${d.name}-copy.qcow2`, 0, RebaseFlags.COPY)),
  );
  const handles = started.map((r) => r._unsafeUnwrap());
  await clock.runUntil(() => handles.every((h) => h.state().startsWith('ready')), 600_000, 100);
  await a.shutdown(); // the process goes away; the mirrors stay at ready
  return { clock, sim, store };
}

async function recovery(jobs: number) {
  const { clock, sim, store } = await storedFleet(jobs);
  const bytes = (await store.size())._unsafeUnwrap();
  (globalThis as { gc?: () => void }).gc?.(); // the first engine's garbage is not recovery's cost
  const b = createEngine({ hypervisor: sim, clock, store, pollIntervalMs: 500 });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const report = (await b.recover())._unsafeUnwrap();
  const t1 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  const resumedReady = b.jobs().filter((j) => j.state().startsWith('ready')).length;
  console.log(
    `  recovered ${report.resumed.length} of ${jobs} stored jobs (${resumedReady} at ready) in ${((t1 - t0) / 1000).toFixed(2)} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s CPU (target < 2 s); skipped ${report.skipped.length}`,
  );
  console.log(`  SQLite store: ${bytes} bytes for ${jobs} jobs = ${Math.round(bytes / jobs)} bytes per job`);
  b.close();
  store.close();
}

console.log('store benchmark: SQLite (WAL, synchronous=NORMAL) vs in-memory store, same run');
if (process.env['BENCH_ONLY'] !== 'recovery') {
  console.log('latency on the simulator in real time (poll 100 ms), median of 10 interleaved rounds:');
  await latency(false, 10);
  console.log('latency on the simulator in virtual time (CPU only, the worst case), median of 30 rounds:');
  await latency(true, 30);
}
console.log('recovery:');
await recovery(Number(process.env['BENCH_RECOVERY_JOBS'] ?? 10_000));
rmSync(dir, { recursive: true, force: true });
process.exit(0);
