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
    // Recovery asks the hypervisor before it resumes a job: it must be there to answer.
    return m.alive && m.connected;
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
