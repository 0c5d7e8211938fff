/**
 * Restart from the store on the simulator: the engine is "killed" (closed: no later record, no
 * later side effect) at every chart state and right after every side effect before its record,
 * a second engine recovers from the same store, and each job must end as it would have without
 * the kill: same outcome, same disk, nothing left behind, READY announced once.
 */
import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import { MemoryJobStore } from '../../adapters/store/memory.js';
import { VirtualClock } from '../../src/core/clock.js';
import type { HypervisorPort } from '../../src/core/hypervisor-port.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import type { BlockCopyEngine, BlockJobEvent } from '../../src/engine/engine.js';
import { createEngine } from '../../src/engine/engine.js';
import type { JobResult } from '../../src/engine/job-runner.js';
import { DEST } from './harness.js';

/**
 * Engine A as a lease holder: a process of this host that is gone (no pid is above pid_max), so
 * B may take its jobs at once. (A holder on another host would keep them until its lease ran out.)
 */
const KILLED_HERE = { id: `${hostname()}:4194305:0` };

type Kill = { readonly state: string } | { readonly after: keyof HypervisorPort };
type Intent = 'pivot' | 'finish';

const STATES = [
  'validating',
  'preparingDestination',
  'starting',
  'mirroring.running',
  'ready.synced',
  'pivoting',
  'aborting',
  'confirmingPivot',
  'finishing',
];
const EFFECTS: (keyof HypervisorPort)[] = [
  'createDestination',
  'startMirror',
  'completeJob',
  'cancelJob',
  'dismissJob',
  'removeDestination',
];

/** The port, with a hook after each call returns (before the engine sees the result). */
function hooked(sim: SimulatedHypervisor, after: (method: string) => void): HypervisorPort {
  return new Proxy(sim, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || !EFFECTS.includes(prop as keyof HypervisorPort)) return value;
      return (...args: unknown[]) =>
        (value as (...a: unknown[]) => { map: (f: (v: unknown) => unknown) => unknown })
          .apply(target, args)
          .map((v) => {
            after(String(prop));
            return v;
          });
    },
  });
}

async function runWithKill(kill: Kill, intent: Intent) {
  const clock = new VirtualClock();
  const sim = new SimulatedHypervisor({ clock });
  const store = new MemoryJobStore();
  const events: BlockJobEvent[] = [];
  let killed = false;
  let a: BlockCopyEngine | null = null;
  const killA = () => {
    if (!killed) {
      killed = true;
      a?.close();
    }
  };
  a = createEngine({
    hypervisor: hooked(sim, (m) => 'after' in kill && kill.after === m && killA()),
    clock,
    store,
    owner: KILLED_HERE,
    pollIntervalMs: 500,
  });
  a.events$.subscribe((e) => events.push(e));
  let jobId = '';
  let endRequested = false;
  a.jobStates$.subscribe((s) => {
    jobId = s.jobId;
    if ('state' in kill && s.state === kill.state) killA();
    else if (s.state === 'ready.synced' && !endRequested) {
      endRequested = true;
      queueMicrotask(() => void a.blockJobAbort('demo', 'vda', intent === 'pivot' ? AbortFlags.PIVOT : 0));
    }
  });
  const first = a.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY, { endIntent: intent });
  let firstResult: JobResult | null = null;
  void first.map((job) => job.result.then((r) => (firstResult = r)));
  await clock.runUntil(() => killed || (firstResult !== null && firstResult.outcome !== 'detached'), 600_000, 50);
  if (!killed) return { killed, result: firstResult!, sim, events, store, report: null };

  const b = createEngine({ hypervisor: sim, clock, store, owner: { id: 'engine-b' }, pollIntervalMs: 500 });
  b.events$.subscribe((e) => events.push(e));
  const report = (await b.recover())._unsafeUnwrap();
  const job = b.jobById(jobId);
  let result: JobResult | null = null;
  if (job) {
    void job.result.then((r) => (result = r));
    await clock.runUntil(() => result !== null, 600_000, 50);
  }
  const stored = (await store.load(jobId))._unsafeUnwrap();
  b.close();
  return { killed, result: result ?? (stored?.end as JobResult | null), sim, events, store, report, stored };
}

const cases: [string, Kill, Intent][] = [];
for (const intent of ['pivot', 'finish'] as const) {
  for (const state of STATES) {
    if ((intent === 'pivot' && state === 'aborting') || (intent === 'finish' && /pivot/i.test(state))) continue;
    cases.push([`${intent}: killed on entering ${state}`, { state }, intent]);
  }
  for (const after of EFFECTS) {
    if ((intent === 'pivot' && after === 'cancelJob') || (intent === 'finish' && after === 'completeJob')) continue;
    if (after === 'removeDestination') continue; // neither a pivot nor a finish removes the copy
    cases.push([`${intent}: killed after ${after}, before its record`, { after }, intent]);
  }
}

describe('restart from the job store (simulator)', () => {
  it.each(cases)('%s', async (_name, kill, intent) => {
    const run = await runWithKill(kill, intent);
    expect(run.killed).toBe(true);
    expect(run.report?.resumed.length ?? 0).toBeLessThanOrEqual(1);
    expect(run.result).toMatchObject(
      intent === 'pivot'
        ? { outcome: 'completed', pivoted: true, destinationConsistent: true, error: null }
        : { outcome: 'canceled', pivoted: false, destinationConsistent: true },
    );
    const active = (await run.sim.activeImage('demo', 'vda'))._unsafeUnwrap();
    expect(active).toBe(intent === 'pivot' ? DEST : '/var/lib/blockcopy/snap2.qcow2');
    // Debris: no job left in the hypervisor, no record unfinished, the copy kept.
    expect(run.sim.listJobs()).toEqual([]);
    expect((await run.store.list())._unsafeUnwrap()).toEqual([]);
    expect(run.sim.images.get(DEST)).toBeDefined();
    expect(run.events.filter((e) => e.status === 'READY').length).toBe(1);
  });

  it('the kill points table covers every state and side effect', () => {
    expect(cases.length).toBe(8 + 4 + 7 + 4);
  });
});
