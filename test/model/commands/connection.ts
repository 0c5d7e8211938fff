/** The QMP monitor connection drops, and comes back. */
import type { Model } from '../model.js';
import type { System } from '../system.js';
import { Command } from './base.js';

export class Disconnect extends Command {
  check(m: Readonly<Model>): boolean {
    return m.alive && m.connected;
  }
  async exec(m: Model, s: System): Promise<void> {
    s.sim.disconnect();
    m.connected = false;
    for (const d of m.disks.values()) if (d.job) d.job.hvTrouble = true;
    await s.clock.advance(10);
  }
  toString(): string {
    return 'disconnect';
  }
}

export class Reconnect extends Command {
  check(m: Readonly<Model>): boolean {
    return m.alive && !m.connected;
  }
  async exec(m: Model, s: System): Promise<void> {
    s.sim.reconnect();
    m.connected = true;
    await s.clock.advance(10);
  }
  toString(): string {
    return 'reconnect';
  }
}
