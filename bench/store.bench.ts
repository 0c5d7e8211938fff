/**
 * `npm run bench:store`: what persisting costs. Side by side in one run: (1) start → ready and
 * pivot latency of a copy on the simulator in real time (default poll interval) with the SQLite
 * store against the in-memory store, rounds interleaved; the same in virtual time, where only CPU
 * counts, as the worst case; (2) recovery of 10,000 stored unfinished jobs in every case recovery
 * reconciles (MIX below) by a fresh engine, timed until every job is reconciled, wall and CPU time
 * (CPU time tells a loaded machine from a slow recovery); (3) SQLite store bytes per job. BENCH_RECOVERY_JOBS sets the fleet (default 10,000);
 * BENCH_ONLY=recovery skips the latency part.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { MiB, SimulatedHypervisor } from '../adapters/sim/index.js';
import type { SimDomainSpec } from '../adapters/sim/index.js';
import { ResultAsync } from 'neverthrow';
import { MemoryJobStore } from '../adapters/store/memory.js';
import { openSqliteStore } from '../adapters/store/sqlite.js';
import { VirtualClock, systemClock } from '../src/core/clock.js';
import type { Clock } from '../src/core/clock.js';
import { AbortFlags, RebaseFlags } from '../src/core/flags.js';
import type { HypervisorPort } from '../src/core/hypervisor-port.js';
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

/**
 * What a stored job was doing when its engine went away, and what happened on the hypervisor
 * since: every case recovery reconciles (issue 9), in a fixed mix. Per 20 jobs: 9 at ready, 2
 * mirroring, 1 ready and paused (standby), 1 pivoted by another tool (concluded), 1 pivoted and
 * dismissed by another tool (unknown to the hypervisor, the guest reads the destination), 1
 * cancelled by another tool after ready (concluded, not pivoted), 1 cancelled and dismissed while
 * mirroring (unknown, the guest reads its source), 1 killed after block-job-complete (recorded
 * pivoting), 1 killed after block-job-cancel (recorded aborting), 1 killed after creating its
 * destination, 1 killed after blockdev-mirror (recorded starting).
 */
const MIX = [
  'ready',
  'ready',
  'ready',
  'ready',
  'ready',
  'ready',
  'ready',
  'ready',
  'ready',
  'mirroring',
  'mirroring',
  'standby',
  'pivoted-outside',
  'pivoted-dismissed-outside',
  'cancelled-outside',
  'vanished-mirroring',
  'killed-after-complete',
  'killed-after-cancel',
  'killed-after-create',
  'killed-after-mirror',
] as const;
type Case = (typeof MIX)[number];
const caseOf = (i: number): Case => MIX[i % MIX.length]!;
/** Kept below ready for the whole build (1 MiB/s on a 64 MiB disk): still mirroring, or still starting. */
const SLOW = new Set<Case>(['mirroring', 'vanished-mirroring', 'killed-after-mirror']);
/** The engine is "killed" right after this port call of the job: the call's answer never comes. */
const KILLED_AFTER: Partial<Record<Case, string>> = {
  'killed-after-complete': 'completeJob',
  'killed-after-cancel': 'cancelJob',
  'killed-after-create': 'createDestination',
  'killed-after-mirror': 'startMirror',
};

/** The first engine as a lease holder: a process of this host that is gone (no pid is above pid_max). */
const GONE = { id: `${hostname()}:4194305:0` };

/** The sim, with the calls of KILLED_AFTER done but never answered (the engine died right after). */
function killingPort(sim: SimulatedHypervisor): HypervisorPort {
  const jobOf = (method: string, args: unknown[]): string | undefined => {
    const a = args[0] as { claim?: string; jobId?: string } | string;
    if (method === 'createDestination') return (a as { claim?: string }).claim;
    if (method === 'startMirror') return (a as { jobId: string }).jobId;
    return typeof a === 'string' ? a : undefined;
  };
  return new Proxy(sim, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const answer = (value as (...a: unknown[]) => unknown).apply(target, args);
        const job = jobOf(String(prop), args);
        const i = job === undefined ? -1 : Number(/^copy-vm(\d+)$/.exec(job)?.[1] ?? -1);
        if (i < 0 || KILLED_AFTER[caseOf(i)] !== prop) return answer;
        return new ResultAsync(new Promise<never>(() => undefined));
      };
    },
  });
}

/**
 * A store of `jobs` unfinished jobs in the MIX above, left by an engine that went away (nothing of
 * it stays in memory), and the simulator as other tools then left it.
 */
async function storedFleet(jobs: number) {
  const domains: SimDomainSpec[] = Array.from({ length: jobs }, (_, i) => ({
    name: `vm${i}`,
    disks: [{ name: 'vda', virtualSize: 64 * MiB, chain: [{ path: `/fleet/vm${i}.qcow2`, allocated: 8 * MiB }] }],
  }));
  const clock = new VirtualClock();
  const sim = new SimulatedHypervisor({ clock, domains, copyRate: 1024 * MiB });
  const store = sqlite();
  const a = createEngine({
    hypervisor: killingPort(sim),
    clock,
    store,
    owner: GONE,
    pollIntervalMs: 500,
    jobId: (d) => `copy-${d}`,
  });
  // Bandwidth in MiB/s, 0: unlimited.
  const started = domains.map((d, i) =>
    a.blockRebase(d.name, 'vda', `/fleet/${d.name}-copy.qcow2`, SLOW.has(caseOf(i)) ? 1 : 0, RebaseFlags.COPY),
  );
  // A job killed before its mirror started never reports started.
  const runs = domains.map((_, i) => caseOf(i) !== 'killed-after-create' && caseOf(i) !== 'killed-after-mirror');
  const handles = (await Promise.all(started.filter((_, i) => runs[i]))).map((r) => r._unsafeUnwrap());
  const wanted = (h: (typeof handles)[number]) =>
    SLOW.has(caseOf(Number(h.domain.slice(2)))) ? h.state().startsWith('mirroring') : h.state().startsWith('ready');
  await clock.runUntil(() => handles.every(wanted), 600_000, 100);
  const at = (c: Case) => domains.flatMap((d, i) => (caseOf(i) === c ? [d.name] : []));
  for (const vm of at('standby')) (await a.blockJobPause(vm, 'vda'))._unsafeUnwrap();
  for (const vm of at('killed-after-complete')) void a.blockJobAbort(vm, 'vda', AbortFlags.PIVOT);
  for (const vm of at('killed-after-cancel')) void a.blockJobAbort(vm, 'vda', 0);
  await clock.advance(0);
  await a.shutdown(); // the process goes away; its calls in flight never answer
  // What other tools did while no engine ran (their events are lost with the engine).
  for (const vm of at('pivoted-outside')) (await sim.completeJob(`copy-${vm}`))._unsafeUnwrap();
  for (const vm of at('pivoted-dismissed-outside')) (await sim.completeJob(`copy-${vm}`))._unsafeUnwrap();
  for (const vm of at('cancelled-outside')) (await sim.cancelJob(`copy-${vm}`, false))._unsafeUnwrap();
  for (const vm of at('vanished-mirroring')) (await sim.cancelJob(`copy-${vm}`, true))._unsafeUnwrap();
  await clock.advance(100); // every ending concludes
  for (const vm of [...at('pivoted-dismissed-outside'), ...at('vanished-mirroring')])
    (await sim.dismissJob(`copy-${vm}`))._unsafeUnwrap();
  const unfinished = (await store.list())._unsafeUnwrap();
  if (unfinished.length !== jobs) throw new Error(`the fleet left ${unfinished.length} unfinished jobs, not ${jobs}`);
  const states = new Map<string, number>();
  for (const r of unfinished) states.set(r.state, (states.get(r.state) ?? 0) + 1);
  return { clock, sim, store, states };
}

/**
 * A fresh engine recovers the fleet, timed until every job is reconciled: each resumed job has met
 * the hypervisor's state (mirroring or ready, its first poll applied; a job killed before its
 * mirror started has started it), and each job the hypervisor had ended is finished with its end
 * recorded (by recovery itself, or by its chart).
 */
async function recovery(jobs: number) {
  const { clock, sim, store, states } = await storedFleet(jobs);
  const bytes = (await store.size())._unsafeUnwrap();
  console.log(`  stored: ${[...states].map(([s, k]) => `${k} ${s}`).join(', ')}`);
  (globalThis as { gc?: () => void }).gc?.(); // the first engine's garbage is not recovery's cost
  const b = createEngine({ hypervisor: sim, clock, store, pollIntervalMs: 500 });
  // Counted as they happen (a scan of 10,000 jobs per event-loop turn would be the bench's own cost).
  const latest = new Map<string, string>();
  const ended = new Set<string>();
  const live = /^(mirroring|ready)(\.|$)/;
  let liveCount = 0; // not ended, latest state mirroring or ready
  const isLive = (id: string) => !ended.has(id) && live.test(latest.get(id) ?? '');
  const stateSub = b.jobStates$.subscribe((c) => {
    const was = isLive(c.jobId);
    latest.set(c.jobId, c.state);
    liveCount += Number(isLive(c.jobId)) - Number(was);
  });
  const end = (id: string) => {
    if (ended.has(id)) return;
    if (isLive(id)) liveCount--;
    ended.add(id);
  };
  const endSub = b.events$.subscribe((e) => e.status !== 'READY' && end(e.jobId));
  const profile = globalThis as { __profStart?: () => Promise<void>; __profStop?: () => Promise<void> };
  await profile.__profStart?.();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const report = (await b.recover())._unsafeUnwrap();
  const t1 = performance.now();
  for (const f of report.finished) end(f.jobId);
  const reconciled = () => ended.size + liveCount === jobs;
  const deadline = t1 + 600_000;
  while (!reconciled() && performance.now() < deadline) await new Promise((r) => setImmediate(r));
  const t2 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  await profile.__profStop?.();
  stateSub.unsubscribe();
  endSub.unsubscribe();
  const live2 = b.jobs().filter((j) => live.test(j.state())).length;
  const stillUnfinished = (await store.list())._unsafeUnwrap().length;
  console.log(
    `  recovered ${jobs} stored jobs: ${report.resumed.length} resumed, ${report.finished.length} finished by recovery, ${report.skipped.length} skipped; recover() returned after ${((t1 - t0) / 1000).toFixed(2)} s`,
  );
  console.log(
    `  every job reconciled${reconciled() ? '' : ' (NOT: gave up)'} after ${((t2 - t0) / 1000).toFixed(2)} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s CPU (target < 2 s): ${ended.size} ended, ${live2} mirroring or ready, ${stillUnfinished} unfinished in the store`,
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
