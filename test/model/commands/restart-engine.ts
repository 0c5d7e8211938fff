/**
 * The engine process is replaced: the old engine is dropped as a kill would drop it, a new one
 * on the same job store and the same simulated hypervisor runs recover(). A restart must change
 * no outcome: the model only gives the new engine the time of one poll to catch up, as after a
 * reconnection.
 */
import type { Model } from '../model.js';
import { reconnected } from '../model.js';
import type { System } from '../system.js';
import { Command } from './base.js';

export class RestartEngine extends Command {
  check(m: Readonly<Model>): boolean {
    // Recovery asks the hypervisor before it resumes a job: it must be there to answer. And no
    // job may be just becoming ready in the engine's eyes: READY is recorded before it is sent,
    // so a restart between the two loses that event (never sends it twice), and when that
    // happens is the engine's timing, which the model does not predict. Jobs being ended are fine.
    return m.alive && m.connected && m.jobs().every((j) => j.ending !== null || m.view(j) !== 'unknown');
  }
  async exec(m: Model, s: System): Promise<void> {
    await s.restartEngine();
    m.advanceTo(s.clock.now());
    for (const job of m.jobs()) reconnected(m, job);
  }
  toString(): string {
    return 'restartEngine';
  }
}
