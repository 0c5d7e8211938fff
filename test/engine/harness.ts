/** An engine on the simulated hypervisor in virtual time, with its public events recorded. */
import { SimulatedHypervisor } from '../../adapters/sim/index.js';
import type { SimulatedHypervisorOptions } from '../../adapters/sim/index.js';
import { VirtualClock } from '../../src/core/clock.js';
import type { BlockCopyJob, BlockJobEvent, EngineOptions } from '../../src/engine/engine.js';
import { createEngine } from '../../src/engine/engine.js';

export const DEST = '/var/lib/blockcopy/copy.qcow2';

export function engineOnSim(simOptions: SimulatedHypervisorOptions = {}, engineOptions: Partial<EngineOptions> = {}) {
  const clock = new VirtualClock();
  const sim = new SimulatedHypervisor({ clock, ...simOptions });
  const engine = createEngine({ hypervisor: sim, clock, pollIntervalMs: 500, ...engineOptions });
  const events: BlockJobEvent[] = [];
  engine.events$.subscribe((e) => events.push(e));
  /** Advances virtual time until the job's state matches, or fails the test after 10 virtual minutes. */
  const until = async (job: BlockCopyJob, prefix: string) => {
    const reached = await clock.runUntil(() => job.state().startsWith(prefix), 600_000, 50);
    if (!reached) throw new Error(`job stayed in ${job.state()}, never reached ${prefix}`);
  };
  const settle = async (job: BlockCopyJob) => {
    let done = false;
    void job.result.then(() => (done = true));
    await clock.runUntil(() => done, 600_000, 50);
    return job.result;
  };
  return { clock, sim, engine, events, until, settle };
}
