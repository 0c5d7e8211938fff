/** Lost, duplicated and reordered hypervisor events. Outcomes must not change, only timing. */
import type { Model } from '../model.js';
import type { System } from '../system.js';
import { Command } from './base.js';

export class EventNoise extends Command {
  constructor(
    readonly loss: number,
    readonly duplication: number,
  ) {
    super();
  }
  check(): boolean {
    return true;
  }
  async exec(m: Model, s: System): Promise<void> {
    s.sim.setEventLoss(this.loss > 0 ? this.loss : null);
    s.sim.setEventDuplication(this.duplication > 0 ? this.duplication : null);
    m.noisy = this.loss > 0 || this.duplication > 0 || s.holding;
    for (const d of m.disks.values()) if (d.job && m.noisy) d.job.hvTrouble = true;
    await s.clock.advance(10);
  }
  toString(): string {
    return `noise(loss ${this.loss}, dup ${this.duplication})`;
  }
}

/** Hold job events back for a while, then deliver them in reverse order. */
export class ReorderEvents extends Command {
  constructor(readonly holdMs: number) {
    super();
  }
  check(): boolean {
    return true;
  }
  async exec(m: Model, s: System): Promise<void> {
    s.holding = true;
    m.noisy = true;
    for (const d of m.disks.values()) if (d.job) d.job.hvTrouble = true;
    await s.clock.advance(this.holdMs);
    s.releaseHeld();
    await s.clock.advance(10);
  }
  toString(): string {
    return `reorder(${this.holdMs} ms)`;
  }
}
