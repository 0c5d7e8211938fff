/** The QMP monitor connection drops, and comes back. */
import type { Model } from '../model.js';
import { reconnected } from '../model.js';
import type { System } from '../system.js';
import { Command } from './base.js';

export class Disconnect extends Command {
  check(m: Readonly<Model>): boolean {
    return m.alive && m.connected && m.jobs().every((j) => m.settled(j));
  }
  async exec(m: Model, s: System): Promise<void> {
    s.sim.disconnect();
    // The engine hears nothing more until the monitor is back: its view of each job stays.
    for (const job of m.jobs()) job.frozenView = m.view(job);
    m.connected = false;
    await Promise.resolve();
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
    for (const job of m.jobs()) reconnected(m, job);
    await Promise.resolve();
  }
  toString(): string {
    return 'reconnect';
  }
}
