/**
 * Races: the engine on the simulator behind a port whose replies fast-check's scheduler delivers
 * in random order. The simulator acts at once (its events go out immediately), so an event can
 * overtake the reply to the command that caused it, and a poll result can arrive after newer
 * events.
 */
import type fc from 'fast-check';
import { ResultAsync } from 'neverthrow';
import type { HypervisorPort } from '../../src/core/hypervisor-port.js';
import { MiB, SimulatedHypervisor } from '../../adapters/sim/index.js';
import { VirtualClock } from '../../src/core/clock.js';
import type { BlockCopyJob, BlockJobEvent } from '../../src/engine/engine.js';
import { createEngine } from '../../src/engine/engine.js';

export const DEST = '/var/lib/blockcopy/race.qcow2';

export function racingEngine(s: fc.Scheduler, delayed: readonly string[]) {
  const clock = new VirtualClock();
  const sim = new SimulatedHypervisor({ clock, copyRate: 256 * MiB });
  const completes: { afterReady: boolean }[] = [];
  const events: BlockJobEvent[] = [];
  const port = new Proxy<HypervisorPort>(sim, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (prop === 'completeJob') completes.push({ afterReady: events.some((e) => e.status === 'READY') });
        const result = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (!delayed.includes(String(prop))) return result;
        return new ResultAsync(s.schedule(Promise.resolve(result as ResultAsync<unknown, never>), String(prop)));
      };
    },
  });
  const engine = createEngine({ hypervisor: port, clock, pollIntervalMs: 200, jobId: () => 'race-job' });
  engine.events$.subscribe((e) => events.push(e));
  /** Lets the scheduler and virtual time run until `done()` (or 10 virtual minutes). */
  const runUntil = async (done: () => boolean) => {
    const end = clock.now() + 600_000;
    while (!done() && clock.now() < end) {
      if (s.count() > 0) await s.waitOne();
      else await clock.advance(50);
    }
    return done();
  };
  const until = async <T>(p: PromiseLike<T>) => {
    let done = false;
    void Promise.resolve(p).then(() => (done = true));
    return runUntil(() => done);
  };
  const stateOf = (job: BlockCopyJob) => job.state();
  return { clock, sim, engine, events, completes, runUntil, until, stateOf };
}
