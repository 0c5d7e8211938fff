/** The hypervisor is killed (every job dies with it, FAILED), and a new one is started. */
import type { Model } from '../model.js';
import type { System } from '../system.js';
import { Command } from './base.js';

export class Kill extends Command {
  check(m: Readonly<Model>): boolean {
    return m.alive;
  }
  async exec(m: Model, s: System): Promise<void> {
    for (const d of m.disks.values())
      if (d.job) {
        d.job.hvMayEnd = true;
        d.job.hvTrouble = true;
      }
    m.alive = false;
    s.sim.kill();
    await s.clock.advance(10);
  }
  toString(): string {
    return 'kill';
  }
}

export class Restart extends Command {
  check(m: Readonly<Model>): boolean {
    return !m.alive;
  }
  async exec(m: Model, s: System): Promise<void> {
    s.sim.restart();
    m.alive = true;
    m.connected = true;
    await s.clock.advance(10);
  }
  toString(): string {
    return 'restart';
  }
}
