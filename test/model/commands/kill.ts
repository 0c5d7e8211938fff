/** The hypervisor is killed (every job dies with it: FAILED), and a new one is started. */
import type { Model } from '../model.js';
import type { System } from '../system.js';
import { Command } from './base.js';

export class Kill extends Command {
  check(m: Readonly<Model>): boolean {
    return m.alive && m.jobs().every((j) => m.settled(j));
  }
  async exec(m: Model, s: System): Promise<void> {
    s.sim.kill();
    m.alive = false;
    m.connected = true;
    for (const job of m.jobs()) {
      job.frozenView = null;
      job.ending = { status: 'FAILED', by: m.now + 100, fate: 'killed' };
    }
    await Promise.resolve();
  }
  toString(): string {
    return 'kill';
  }
}

export class Restart extends Command {
  check(m: Readonly<Model>): boolean {
    // Not before the killed jobs have ended: the engine's cleanup of a failed job fails while the
    // hypervisor is dead, and would succeed if it came back first (which is timing, e.g. the job
    // store's writes ahead of each step, not something the model predicts).
    return !m.alive && m.jobs().every((j) => j.ending === null);
  }
  async exec(m: Model, s: System): Promise<void> {
    s.sim.restart();
    m.alive = true;
    m.connected = true;
    await Promise.resolve();
  }
  toString(): string {
    return 'restart';
  }
}
